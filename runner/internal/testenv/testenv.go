// Package testenv gives the runner's tests the real Docker and the language table, and
// fails (never skips) when an image is missing.
package testenv

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Docker returns a client of the local Docker Engine, failing the test when it is not
// reachable.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker.Ping(ctx); err != nil {
		t.Fatalf("docker is not reachable (is dockerd running? DOCKER_HOST=%q): %v", os.Getenv("DOCKER_HOST"), err)
	}
	t.Cleanup(func() { _ = docker.Close() })
	return docker
}

// Runtime returns the OCI runtime the tests' containers run with, as a runner would choose
// it (sandbox.ChooseRuntime): CODEEXEC_RUNTIME's when set, else crun where the daemon has
// it, else runc.
func Runtime(t testing.TB, docker *client.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := sandbox.ChooseRuntime(ctx, docker, os.Getenv("CODEEXEC_RUNTIME"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// Engine returns how the containers of runtime are made: CODEEXEC_ENGINE's choice, as a
// runner makes it (direct where it can be).
func Engine(t testing.TB, runtime string) string {
	t.Helper()
	engine, err := sandbox.ChooseEngine(os.Getenv("CODEEXEC_ENGINE"), runtime, nil)
	if err != nil {
		t.Fatal(err)
	}
	return engine
}

// Catalog returns the language table, CODEEXEC_LANGUAGES_FILE's when set.
func Catalog(t testing.TB) *languages.Catalog {
	t.Helper()
	c, err := languages.Load(os.Getenv("CODEEXEC_LANGUAGES_FILE"))
	if err != nil {
		t.Fatalf("language table: %v", err)
	}
	return c
}

// RequireImage fails the test when the image of lang is not on the Docker host.
func RequireImage(t testing.TB, docker *client.Client, c *languages.Catalog, lang string) {
	t.Helper()
	l, ok := c.Resolve(lang)
	if !ok {
		t.Fatalf("language %s is not in the table", lang)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker.ImageInspect(ctx, l.Image); err != nil {
		t.Fatalf("image %s of %s is missing: run `make images` (%v)", l.Image, lang, err)
	}
}

// Holds stands in for the ledger's ledger.reserve in the runner's own tests (the runner
// module does not import the ledger; the whole mesh, the real ledger included, is tested
// in deploy/integration). It grants every hold with HoldRemainingMs, unless refuse names
// the job's id: then it answers refuse's rpc error. It counts the requests per job.
type Holds struct {
	mu        sync.Mutex
	remaining time.Duration
	refuse    map[string]*rpc.Error
	asked     map[string]int
}

// ServeHolds answers ledger.reserve on nc for the rest of the test.
func ServeHolds(t testing.TB, nc *nats.Conn) *Holds {
	t.Helper()
	h := &Holds{remaining: 15 * time.Minute, refuse: map[string]*rpc.Error{}, asked: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := rpc.Handle(ctx, nc, slog.New(slog.DiscardHandler), subjects.Reserve, subjects.QueueLedger, h.reserve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe(); cancel() })
	return h
}

func (h *Holds) reserve(_ context.Context, req messages.ReserveRequest) (messages.ReserveReply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked[req.JobID]++
	if e, ok := h.refuse[req.JobID]; ok {
		return messages.ReserveReply{}, e
	}
	return messages.ReserveReply{V: messages.Version, PriceMicros: 10_000, BalanceMicros: 1_000_000,
		HoldRemainingMs: h.remaining.Milliseconds()}, nil
}

// Refuse makes the hold of jobID refused with e.
func (h *Holds) Refuse(jobID string, e *rpc.Error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refuse[jobID] = e
}

// SetRemaining sets the HoldRemainingMs of every later grant.
func (h *Holds) SetRemaining(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remaining = d
}

// Asked returns how many holds were asked for jobID.
func (h *Holds) Asked(jobID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.asked[jobID]
}
