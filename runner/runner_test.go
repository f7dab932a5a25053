package runner_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/runner"
	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/runner/internal/testenv"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/embedded/embeddedtest"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

type env struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	runner *runner.Runner
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	holds  *testenv.Holds
}

// start runs a runner serving langs against an embedded NATS with the streams provisioned.
func start(t *testing.T, langs ...string) *env {
	t.Helper()
	docker := testenv.Docker(t)
	catalog := testenv.Catalog(t)
	for _, l := range langs {
		testenv.RequireImage(t, docker, catalog, l)
	}
	_, nc, js := embeddedtest.NATS(t)
	holds := testenv.ServeHolds(t, nc)

	cfg := config.Defaults()
	cfg.Languages = langs
	cfg.LanguagesFile = os.Getenv("CODEEXEC_LANGUAGES_FILE")
	cfg.RunnerSlots = 2
	cfg.PoolSize = 1
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := runner.New(cfg, nc, docker, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	e := &env{nc: nc, js: js, runner: r, cancel: stop, done: make(chan error, 1), holds: holds}
	go func() { e.done <- r.Run(runCtx) }()
	t.Cleanup(func() { e.stop(t) })
	return e
}

// stop drains the runner and checks it left no container behind; only the first call does.
func (e *env) stop(t *testing.T) {
	t.Helper()
	e.once.Do(func() { e.drain(t) })
}

func (e *env) drain(t *testing.T) {
	t.Helper()
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("Run did not return after drain")
	}
	if n := e.containers(t); n != 0 {
		t.Errorf("%d containers left after Run returned", n)
	}
}

// containers counts the containers that carry the runner's id.
func (e *env) containers(t *testing.T) int {
	t.Helper()
	list, err := e.runner.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func job(id, lang, code, stdin, notify string) messages.Job {
	return messages.Job{
		V: messages.Version, JobID: id, UserID: "u1", Language: lang, Region: "local",
		Files: []messages.File{{Filename: map[string]string{"python": "main.py", "javascript": "main.js"}[lang], Code: code, IsEntryPoint: true}},
		Stdin: stdin, Notify: notify, SubmittedAt: time.Now(),
	}
}

func (e *env) publish(t *testing.T, j messages.Job) {
	t.Helper()
	data, _ := json.Marshal(j)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, subjects.Jobs("local", j.Language), data, jetstream.WithMsgID(j.JobID)); err != nil {
		t.Fatalf("publish job: %v", err)
	}
}

// stored waits for the job's result in the results stream.
func (e *env) stored(t *testing.T, jobID string, wait time.Duration) messages.Result {
	t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, subjects.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		m, err := stream.GetLastMsgForSubject(ctx, subjects.Results(jobID))
		if err == nil {
			var r messages.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result for %s after %s: %v", jobID, wait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestJobsRunEndToEnd(t *testing.T) {
	e := start(t, "python", "javascript")
	notify, err := e.nc.SubscribeSync(subjects.NotifyAll("edge1"))
	if err != nil {
		t.Fatal(err)
	}
	hb, err := e.nc.SubscribeSync(subjects.Heartbeat("local", e.runner.ID()))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id, lang, code string
	}{
		{"job-py-1", "python", "import sys\nprint('hello ' + sys.stdin.read().strip())\n"},
		{"job-js-1", "javascript", "let s='';process.stdin.on('data',d=>s+=d);process.stdin.on('end',()=>console.log('hello '+s.trim()));\n"},
	}
	for _, c := range cases {
		e.publish(t, job(c.id, c.lang, c.code, "world\n", subjects.Notify("edge1", c.id)))
	}
	got := map[string]messages.Result{}
	for range cases {
		m, err := notify.NextMsg(60 * time.Second)
		if err != nil {
			t.Fatalf("notify: %v", err)
		}
		var r messages.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		if m.Subject != subjects.Notify("edge1", r.JobID) {
			t.Errorf("notify subject: got %s, want %s", m.Subject, subjects.Notify("edge1", r.JobID))
		}
		got[r.JobID] = r
	}
	for _, c := range cases {
		r := got[c.id]
		if r.Status != messages.StatusSucceeded || r.Stdout != "hello world\n" {
			t.Errorf("%s: got %s %q (stderr %q, %s), want succeeded %q", c.id, r.Status, r.Stdout, r.Stderr, r.ErrorMessage, "hello world\n")
		}
		if r.UserID != "u1" || r.Language != c.lang || r.RunnerID != e.runner.ID() || r.Attempt != 1 {
			t.Errorf("%s: result fields: %+v", c.id, r)
		}
		if r.ExitCode == nil || *r.ExitCode != 0 || r.WallTimeMs <= 0 || r.MemoryBytes <= 0 {
			t.Errorf("%s: exit/usage: exit %v wall %d ms memory %d", c.id, r.ExitCode, r.WallTimeMs, r.MemoryBytes)
		}
		stored := e.stored(t, c.id, 5*time.Second)
		if stored.Stdout != r.Stdout || stored.Status != r.Status {
			t.Errorf("%s: stored result differs from the notified one", c.id)
		}
	}

	// Heartbeats: one at once, then every interval.
	m, err := hb.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	var beat messages.Heartbeat
	if err := json.Unmarshal(m.Data, &beat); err != nil {
		t.Fatal(err)
	}
	if beat.RunnerID != e.runner.ID() || len(beat.Languages) != 2 || beat.Slots != 2 {
		t.Errorf("heartbeat: %+v", beat)
	}

	// The job stream is a work queue: acked jobs are gone. The edge is told the result
	// before the job is acked, so the ack may come a moment after the notification.
	ctx := context.Background()
	s, err := e.js.Stream(ctx, subjects.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job stream holds %d messages 10s after the results, want 0", info.State.Msgs)
		}
	}
}

func TestRedeliveredJobWithStoredResultIsOnlyAcked(t *testing.T) {
	e := start(t, "python")
	// A result stored by an earlier delivery (a runner that crashed before its ack).
	prev := messages.Result{V: 1, JobID: "job-dup", UserID: "u1", Language: "python", Status: messages.StatusSucceeded, Stdout: "first\n"}
	data, _ := json.Marshal(prev)
	if _, err := e.js.Publish(context.Background(), subjects.Results("job-dup"), data, jetstream.WithMsgID(subjects.ResultMsgID("job-dup"))); err != nil {
		t.Fatal(err)
	}
	e.publish(t, job("job-dup", "python", "print('second')\n", "", ""))
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, _ := e.js.Stream(context.Background(), subjects.JobsStream)
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redelivered job not acked")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := e.stored(t, "job-dup", time.Second); r.Stdout != "first\n" {
		t.Errorf("stored result: got %q, want the first one", r.Stdout)
	}
}

func TestInvalidJobGetsInternalErrorAndIsTerminated(t *testing.T) {
	e := start(t, "python")
	j := job("job-bad", "python", "print(1)\n", "", "")
	j.Files[0].IsEntryPoint = false // no entry point: poison
	e.publish(t, j)
	r := e.stored(t, "job-bad", 30*time.Second)
	if r.Status != messages.StatusInternalError {
		t.Errorf("status: got %s, want internal_error", r.Status)
	}
}

func TestLimitsAndAbuseThroughTheAgent(t *testing.T) {
	e := start(t, "python")
	loop := job("job-loop", "python", "while True:\n    pass\n", "", "")
	loop.Limits = messages.Limits{RunTimeMs: 1000, MemoryBytes: 1 << 40} // the memory ask is clamped
	e.publish(t, loop)
	bomb := job("job-fork", "python", "import os, time\nfor _ in range(1000):\n    try:\n        os.fork()\n    except OSError:\n        pass\ntime.sleep(30)\n", "", "")
	bomb.Limits = messages.Limits{RunTimeMs: 2000}
	e.publish(t, bomb)
	if r := e.stored(t, "job-loop", 30*time.Second); r.Status != messages.StatusTimeLimit || r.WallTimeMs < 1000 {
		t.Errorf("loop: got %s after %d ms, want time_limit_exceeded after ≥1000 ms", r.Status, r.WallTimeMs)
	}
	if r := e.stored(t, "job-fork", 30*time.Second); r.Status != messages.StatusTimeLimit {
		t.Errorf("fork bomb: got %s (%s), want time_limit_exceeded", r.Status, r.ErrorMessage)
	}
	// The runner is still healthy.
	e.publish(t, job("job-after", "python", "print('ok')\n", "", ""))
	if r := e.stored(t, "job-after", 30*time.Second); r.Status != messages.StatusSucceeded || r.Stdout != "ok\n" {
		t.Errorf("after the abuse: got %s %q", r.Status, r.Stdout)
	}
}

// TestLateLeftoverIsRemovedOnExit: a runner killed while the daemon created a container for
// it leaves that container to appear after its next life has swept on start. The next life
// removes it by the time it exits.
func TestLateLeftoverIsRemovedOnExit(t *testing.T) {
	e := start(t, "python")
	docker := testenv.Docker(t)
	catalog := testenv.Catalog(t)
	py, _ := catalog.Resolve("python")
	ctx := context.Background()
	// The warm pool's container shows the start sweep is over.
	for deadline := time.Now().Add(30 * time.Second); e.containers(t) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no warm container after 30s")
		}
	}

	host, _ := os.Hostname()
	labels := map[string]string{
		sandbox.LabelManaged: "true", sandbox.LabelRunner: e.runner.ID(), sandbox.LabelHost: host,
		sandbox.LabelPID: "2147483646", sandbox.LabelLife: "earlier-life", sandbox.LabelLanguage: "python",
	}
	if e.runner.Engine() == sandbox.EngineDirect {
		// What a create cut short leaves under the direct engine: a bundle, with its labels.
		bundle := filepath.Join(sandbox.DefaultStateDir, "bundles", "codeexec-late-"+e.runner.ID())
		if err := os.MkdirAll(bundle, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(bundle) })
		b, _ := json.Marshal(labels)
		if err := os.WriteFile(filepath.Join(bundle, "labels.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		late, err := docker.ContainerCreate(ctx, &container.Config{Image: py.Image, Cmd: []string{"true"}, Labels: labels},
			&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = docker.ContainerRemove(ctx, late.ID, container.RemoveOptions{Force: true}) })
	}
	e.stop(t) // fails the test if any container of the runner's id is left
}
