package embedded_test

// Tests of shared/rpc against a real nats-server. They live in this module because
// shared itself does not depend on nats-server.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/rpc"
)

type ping struct {
	N    int `json:"n"`
	Size int `json:"size,omitempty"`
}

type pong struct {
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	ns, err := embedded.StartNATS(t.TempDir(), embedded.NATSOptions{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestCallWithoutDeadlineEnds: a responder that never answers cannot hold a caller whose
// ctx has no deadline; Call gives up after its default.
func TestCallWithoutDeadlineEnds(t *testing.T) {
	nc := startNATS(t)
	if _, err := nc.Subscribe("test.silent", func(*nats.Msg) {}); err != nil { // hears, never answers
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const fallback = 200 * time.Millisecond
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := rpc.CallWithin[ping, pong](context.Background(), nc, "test.silent", ping{N: 1}, fallback)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, rpc.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		if took := time.Since(start); took < fallback {
			t.Fatalf("gave up after %s, before the fallback deadline %s", took, fallback)
		}
	case <-time.After(rpc.DefaultCallTimeout):
		t.Fatalf("Call still waiting after %s; want it to end after %s", rpc.DefaultCallTimeout, fallback)
	}
	// A deadline of the caller's own is kept.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := rpc.Call[ping, pong](ctx, nc, "test.silent", ping{N: 2}); !errors.Is(err, rpc.ErrTimeout) {
		t.Fatalf("with a deadline: got %v, want ErrTimeout", err)
	}
}

// TestReplyTooLargeIsAnswered: a reply over the connection's maximum payload comes back
// as a reply_too_large error rather than never.
func TestReplyTooLargeIsAnswered(t *testing.T) {
	nc := startNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := rpc.Handle(ctx, nc, quiet, "test.big", "q", func(_ context.Context, p ping) (pong, error) {
		return pong{N: p.N, Pad: strings.Repeat("x", p.Size)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	max := int(nc.MaxPayload())
	cases := []struct {
		name string
		size int
		code string // "" for a normal answer
	}{
		{"small", 10, ""},
		{"just over the payload", max, rpc.CodeReplyTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			defer ccancel()
			got, err := rpc.Call[ping, pong](cctx, nc, "test.big", ping{N: 7, Size: tc.size})
			if tc.code == "" {
				if err != nil || got.N != 7 || len(got.Pad) != tc.size {
					t.Fatalf("got %d-byte pad, %v; want the answer", len(got.Pad), err)
				}
				return
			}
			if !rpc.IsCode(err, tc.code) {
				t.Fatalf("got %v, want the error %s", err, tc.code)
			}
		})
	}
}

// TestGateBoundsRequestsInFlight: a flood of requests over two subjects that share a
// gate runs at most the gate's size at once; the rest queue and are answered in turn.
func TestGateBoundsRequestsInFlight(t *testing.T) {
	nc := startNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const limit, requests = 4, 40
	gate := rpc.NewGate(limit)
	var inFlight, most atomic.Int64
	entered := make(chan struct{}, requests)
	release := make(chan struct{})
	slow := func(hctx context.Context, p ping) (pong, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		entered <- struct{}{}
		select {
		case <-release:
		case <-hctx.Done():
		}
		return pong{N: p.N}, nil
	}
	for _, subject := range []string{"test.gate.a", "test.gate.b"} {
		if _, err := rpc.Handle(ctx, nc, quiet, subject, "q", slow, rpc.WithGate(gate)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := "test.gate.a"
			if i%2 == 1 {
				subject = "test.gate.b"
			}
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			defer ccancel()
			got, err := rpc.Call[ping, pong](cctx, nc, subject, ping{N: i})
			if err == nil && got.N != i {
				err = errors.New("answer to another request")
			}
			errs <- err
		}()
	}
	for range limit {
		<-entered // the gate is full
	}
	close(release) // every handler from now on returns at once
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a queued request failed: %v", err)
		}
	}
	if got := most.Load(); got != limit {
		t.Fatalf("at most %d requests ran at once, want exactly the gate's %d", got, limit)
	}
}
