package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/runner/internal/testenv"
	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/embedded/embeddedtest"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// fakeSandbox stands in for Docker on the error paths only; the real path is tested in
// package runner against real Docker.
type fakeSandbox struct {
	run   func(ctx context.Context, job sandbox.Job) (sandbox.Outcome, error)
	calls atomic.Int32
}

// Run honours job.Ready as the sandbox does; calls counts the runs that got past it.
func (f *fakeSandbox) Run(ctx context.Context, _ *sandbox.Container, job sandbox.Job) (sandbox.Outcome, error) {
	if job.Ready != nil {
		if err := job.Ready(ctx); err != nil {
			return sandbox.Outcome{}, err
		}
	}
	f.calls.Add(1)
	if f.run == nil {
		zero := 0
		return sandbox.Outcome{Status: messages.StatusSucceeded, ExitCode: &zero}, nil
	}
	return f.run(ctx, job)
}
func (f *fakeSandbox) Remove(context.Context, *sandbox.Container) {}

type fakePool struct{}

func (fakePool) Take(context.Context, string, string, messages.Limits) (*sandbox.Container, bool, error) {
	return &sandbox.Container{ID: "fake-container-id"}, true, nil
}
func (fakePool) Refill(string) {}

type fixture struct {
	agent  *Agent
	nc     *nats.Conn
	js     jetstream.JetStream
	cancel context.CancelFunc
	done   chan error
	holds  *testenv.Holds
}

func startAgent(t *testing.T, sb Sandbox, cfg Config) *fixture {
	t.Helper()
	_, nc, js := embeddedtest.NATS(t)
	holds := testenv.ServeHolds(t, nc)
	a := newAgent(t, nc, "r1", sb, cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{agent: a, nc: nc, js: js, cancel: cancel, done: make(chan error, 1), holds: holds}
	go func() { f.done <- a.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { cancel(); <-f.done }) })
	return f
}

// newAgent makes the runner agent id of region local, serving python on nc.
func newAgent(t *testing.T, nc *nats.Conn, id string, sb Sandbox, cfg Config, log *slog.Logger) *Agent {
	t.Helper()
	catalog, err := languages.Default()
	if err != nil {
		t.Fatal(err)
	}
	py, _ := catalog.Resolve("python")
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RunnerID, cfg.Region = id, "local"
	a, err := New(cfg, nc, sb, fakePool{}, catalog, []*languages.Language{py}, m, log)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runAgent runs a until the test ends; the channel gets what Run returned.
func runAgent(t *testing.T, a *Agent) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return done
}

func (f *fixture) publish(t *testing.T, id string) {
	t.Helper()
	j := messages.Job{V: 1, JobID: id, UserID: "u1", Language: "py", Region: "local",
		Files: []messages.File{{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}}}
	data, _ := json.Marshal(j)
	if _, err := f.js.Publish(context.Background(), subjects.Jobs("local", "python"), data, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) result(t *testing.T, id string, wait time.Duration) messages.Result {
	t.Helper()
	s, err := f.js.Stream(context.Background(), subjects.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		m, err := s.GetLastMsgForSubject(context.Background(), subjects.Results(id))
		if err == nil {
			var r messages.Result
			_ = json.Unmarshal(m.Data, &r)
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result for %s: %v", id, err)
		}
	}
}

func (f *fixture) jobsLeft(t *testing.T) uint64 {
	t.Helper()
	s, _ := f.js.Stream(context.Background(), subjects.JobsStream)
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestInfraFailureIsRetriedThenInternalError(t *testing.T) {
	sb := &fakeSandbox{run: func(context.Context, sandbox.Job) (sandbox.Outcome, error) {
		return sandbox.Outcome{}, &sandbox.InfraError{Op: "create container", Err: errors.New("daemon gone")}
	}}
	f := startAgent(t, sb, Config{Slots: 1, NakDelay: 100 * time.Millisecond})
	f.publish(t, "job-infra")
	r := f.result(t, "job-infra", 20*time.Second)
	if r.Status != messages.StatusInternalError || r.Language != "python" {
		t.Errorf("result: got %s (%s), want internal_error of python", r.Status, r.Language)
	}
	if got := sb.calls.Load(); got != streams.JobMaxDeliver {
		t.Errorf("sandbox runs: got %d, want one per delivery (%d)", got, streams.JobMaxDeliver)
	}
	if r.Attempt != streams.JobMaxDeliver {
		t.Errorf("attempt: got %d, want %d", r.Attempt, streams.JobMaxDeliver)
	}
	if dl := f.deadLetter(t, "job-infra", 5*time.Second); dl.Reason != messages.DeadLetterInfrastructure || dl.Deliveries != streams.JobMaxDeliver {
		t.Errorf("dead letter: got %+v, want reason %s after %d deliveries", dl, messages.DeadLetterInfrastructure, streams.JobMaxDeliver)
	}
	// Terminated: a work queue drops it.
	for deadline := time.Now().Add(5 * time.Second); f.jobsLeft(t) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("terminated job still in the stream")
		}
	}
}

func TestInfraFailureThenSuccess(t *testing.T) {
	sb := &fakeSandbox{}
	sb.run = func(context.Context, sandbox.Job) (sandbox.Outcome, error) {
		if sb.calls.Load() == 1 {
			return sandbox.Outcome{}, &sandbox.InfraError{Op: "start exec", Err: errors.New("flaky")}
		}
		zero := 0
		return sandbox.Outcome{Status: messages.StatusSucceeded, Stdout: "1\n", ExitCode: &zero}, nil
	}
	f := startAgent(t, sb, Config{Slots: 1, NakDelay: 100 * time.Millisecond})
	f.publish(t, "job-flaky")
	r := f.result(t, "job-flaky", 20*time.Second)
	if r.Status != messages.StatusSucceeded || r.Attempt != 2 {
		t.Errorf("result: got %s attempt %d, want succeeded on attempt 2", r.Status, r.Attempt)
	}
}

func TestDrainFinishesHeldJobs(t *testing.T) {
	started := make(chan struct{})
	sb := &fakeSandbox{run: func(ctx context.Context, _ sandbox.Job) (sandbox.Outcome, error) {
		close(started)
		select {
		case <-time.After(time.Second): // a job that outlives the shutdown signal
		case <-ctx.Done():
			return sandbox.Outcome{}, ctx.Err()
		}
		zero := 0
		return sandbox.Outcome{Status: messages.StatusSucceeded, ExitCode: &zero}, nil
	}}
	f := startAgent(t, sb, Config{Slots: 2})
	hb, _ := f.nc.SubscribeSync(subjects.Heartbeat("local", "r1"))
	f.publish(t, "job-drain")
	<-started
	f.cancel()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if r := f.result(t, "job-drain", time.Second); r.Status != messages.StatusSucceeded {
		t.Errorf("drained job: got %s, want succeeded", r.Status)
	}
	if n := f.jobsLeft(t); n != 0 {
		t.Errorf("%d jobs left unacked", n)
	}
	var draining bool
	for {
		m, err := hb.NextMsg(100 * time.Millisecond)
		if err != nil {
			break
		}
		var beat messages.Heartbeat
		_ = json.Unmarshal(m.Data, &beat)
		draining = draining || beat.Draining
	}
	if !draining {
		t.Error("no heartbeat said draining")
	}
	f.done <- nil // for the cleanup
}

func TestOneJobPerFreeSlot(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	sb := &fakeSandbox{run: func(context.Context, sandbox.Job) (sandbox.Outcome, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		running.Add(-1)
		zero := 0
		return sandbox.Outcome{Status: messages.StatusSucceeded, ExitCode: &zero}, nil
	}}
	f := startAgent(t, sb, Config{Slots: 2})
	for _, id := range []string{"j1", "j2", "j3", "j4", "j5"} {
		f.publish(t, id)
	}
	time.Sleep(1500 * time.Millisecond)
	// Two run, three wait in the stream, not in the runner: nobody else could take them.
	cons, err := f.js.Consumer(context.Background(), subjects.JobsStream, subjects.JobConsumer("local", "python"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 2 || info.NumPending != 3 {
		t.Errorf("ack pending %d, pending %d; want 2 and 3", info.NumAckPending, info.NumPending)
	}
	close(release)
	for _, id := range []string{"j1", "j2", "j3", "j4", "j5"} {
		f.result(t, id, 10*time.Second)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrent jobs: got %d, want 2", p)
	}
}

// No job runs without a live hold of its price: a job the ledger will not hold (no funds,
// no such user, a hold closed already) and one whose hold would end before the job could
// are never run; each gets an internal_error result (never charged) at once, and is not
// retried.
func TestJobWithoutALiveHoldIsNotRun(t *testing.T) {
	sb := &fakeSandbox{}
	f := startAgent(t, sb, Config{Slots: 1, NakDelay: 100 * time.Millisecond})
	f.holds.Refuse("job-broke", rpc.Errorf(rpc.CodeInsufficientFunds, "balance 0 is below the price 10000"))
	f.publish(t, "job-broke")
	r := f.result(t, "job-broke", 20*time.Second)
	if r.Status != messages.StatusInternalError || !strings.Contains(r.ErrorMessage, "balance 0") {
		t.Errorf("refused hold: got %s %q, want internal_error saying why", r.Status, r.ErrorMessage)
	}

	f.holds.SetRemaining(30 * time.Second) // less than the job's limits and margin
	f.publish(t, "job-stale")
	r = f.result(t, "job-stale", 20*time.Second)
	if r.Status != messages.StatusInternalError || !strings.Contains(r.ErrorMessage, "waited too long") {
		t.Errorf("stale hold: got %s %q, want internal_error saying the job waited too long", r.Status, r.ErrorMessage)
	}
	if n := sb.calls.Load(); n != 0 {
		t.Errorf("sandbox runs: got %d, want 0", n)
	}
	waitfor.Eventually(t, 10*time.Second, "refused jobs leave the queue", func() (bool, error) { return f.jobsLeft(t) == 0, nil })
	for _, id := range []string{"job-broke", "job-stale"} {
		if n := f.holds.Asked(id); n != 1 {
			t.Errorf("%s: holds asked %d times, want 1 (a refusal is not retried)", id, n)
		}
	}
}

// The job's claim decides between a runner and an edge that gives the job up: a job whose
// edge claimed it as abandoned is not run and holds nothing; a claim an earlier runner left
// (it died holding the job) is taken over, and the job runs.
func TestClaimDecidesBetweenRunAndAbandon(t *testing.T) {
	sb := &fakeSandbox{}
	f := startAgent(t, sb, Config{Slots: 1})
	index, err := f.js.KeyValue(t.Context(), subjects.JobIndexBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := index.Create(t.Context(), subjects.JobRunningKey("job-abandoned"), []byte(subjects.AbandonedClaim)); err != nil {
		t.Fatal(err)
	}
	if _, err := index.Create(t.Context(), subjects.JobRunningKey("job-orphan"), []byte("dead-runner")); err != nil {
		t.Fatal(err)
	}
	f.publish(t, "job-abandoned")
	r := f.result(t, "job-abandoned", 20*time.Second)
	if r.Status != messages.StatusInternalError || !strings.Contains(r.ErrorMessage, "given up") {
		t.Errorf("abandoned job: got %s %q, want internal_error saying it was given up", r.Status, r.ErrorMessage)
	}
	if n := sb.calls.Load(); n != 0 {
		t.Errorf("sandbox runs of an abandoned job: got %d, want 0", n)
	}
	if n := f.holds.Asked("job-abandoned"); n != 0 {
		t.Errorf("holds asked for an abandoned job: %d, want 0", n)
	}

	f.publish(t, "job-orphan")
	if r := f.result(t, "job-orphan", 20*time.Second); r.Status != messages.StatusSucceeded {
		t.Errorf("job with an earlier runner's claim: got %s, want succeeded", r.Status)
	}
	e, err := index.Get(t.Context(), subjects.JobRunningKey("job-orphan"))
	if err != nil || string(e.Value()) != "r1" {
		t.Errorf("claim after the takeover: %v %v, want r1", e, err)
	}
}

// A job names where its result is sent; a subject outside the contract's notify subjects
// (another service's request subject, say) never gets it.
func TestResultGoesOnlyToAContractNotifySubject(t *testing.T) {
	f := startAgent(t, &fakeSandbox{}, Config{Slots: 1})
	got := make(chan string, 4)
	for _, subj := range []string{"ledger.credit", "exec.notify.>"} {
		sub, err := f.nc.Subscribe(subj, func(m *nats.Msg) { got <- m.Subject })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	for id, notify := range map[string]string{"job-evil": "ledger.credit", "job-good": "exec.notify.edge1.job-good"} {
		j := messages.Job{V: 1, JobID: id, UserID: "u1", Language: "python", Region: "local", Notify: notify,
			Files: []messages.File{{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}}}
		data, _ := json.Marshal(j)
		if _, err := f.js.Publish(context.Background(), subjects.Jobs("local", "python"), data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		f.result(t, id, 20*time.Second)
	}
	if s := <-got; s != "exec.notify.edge1.job-good" {
		t.Errorf("notified %s, want only exec.notify.edge1.job-good", s)
	}
	select {
	case s := <-got:
		t.Errorf("also notified %s", s)
	default:
	}
}

// A result that cannot be stored at first (the results stream is gone, as during a NATS
// leader election) is stored by a retry once the stream is back: the job is neither run
// again nor left to its ack wait.
func TestResultIsStoredThroughAnOutage(t *testing.T) {
	release := make(chan struct{})
	sb := &fakeSandbox{run: func(ctx context.Context, _ sandbox.Job) (sandbox.Outcome, error) {
		<-release
		zero := 0
		return sandbox.Outcome{Status: messages.StatusSucceeded, ExitCode: &zero}, nil
	}}
	f := startAgent(t, sb, Config{Slots: 1})
	f.publish(t, "job-outage")
	waitfor.Eventually(t, 20*time.Second, "the job runs", func() (bool, error) { return sb.calls.Load() == 1, nil })
	if err := f.js.DeleteStream(t.Context(), subjects.ResultsStream); err != nil {
		t.Fatal(err)
	}
	close(release)
	waitfor.Eventually(t, 20*time.Second, "a failed store is tried again", func() (bool, error) {
		return testutil.ToFloat64(f.agent.metrics.ResultRetries) > 0, nil
	})
	if err := streams.Provision(t.Context(), f.js, embeddedtest.TestPlan(t), nil); err != nil {
		t.Fatal(err)
	}
	if r := f.result(t, "job-outage", 30*time.Second); r.Status != messages.StatusSucceeded {
		t.Fatalf("stored %s, want succeeded", r.Status)
	}
	waitfor.Eventually(t, 20*time.Second, "the job is acked", func() (bool, error) { return f.jobsLeft(t) == 0, nil })
	if n := sb.calls.Load(); n != 1 {
		t.Fatalf("ran %d times, want once", n)
	}
}

// Two runners of 4 slots on one job consumer run 8 jobs at once: the consumer's in-flight
// limit is the fleet's, and each runner bounds itself by its free slots.
func TestRunnersAddUpOnASharedConsumer(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	var running atomic.Int32
	run := func(ctx context.Context, _ sandbox.Job) (sandbox.Outcome, error) {
		running.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		zero := 0
		return sandbox.Outcome{Status: messages.StatusSucceeded, ExitCode: &zero}, nil
	}
	f := startAgent(t, &fakeSandbox{run: run}, Config{Slots: 4})
	runAgent(t, newAgent(t, f.nc, "r2", &fakeSandbox{run: run}, Config{Slots: 4}, slog.New(slog.DiscardHandler)))
	t.Cleanup(let) // first: the runners stop only once their jobs end
	for i := range 10 {
		f.publish(t, fmt.Sprintf("job-%d", i))
	}
	waitfor.Eventually(t, 20*time.Second, "8 jobs running at once", func() (bool, error) { return running.Load() == 8, nil })
	let()
	waitfor.Eventually(t, 30*time.Second, "every job done", func() (bool, error) { return f.jobsLeft(t) == 0, nil })
	if n := running.Load(); n != 10 {
		t.Fatalf("ran %d jobs, want 10", n)
	}
}

// A runner started before the streams are provisioned waits for them, saying so, and
// serves once they appear, instead of exiting.
func TestRunnerWaitsForProvisioning(t *testing.T) {
	srv, err := embedded.StartNATS(t.TempDir(), embedded.NATSOptions{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc := embeddedtest.Connect(t, srv, "runner")
	testenv.ServeHolds(t, nc)
	var logs lockedBuffer
	a := newAgent(t, nc, "r1", &fakeSandbox{}, Config{Slots: 1}, slog.New(slog.NewTextHandler(&logs, nil)))
	done := runAgent(t, a)

	waitfor.Eventually(t, 20*time.Second, "the runner says it waits for the results stream", func() (bool, error) {
		select {
		case err := <-done:
			return false, fmt.Errorf("the runner stopped: %v", err)
		default:
		}
		return strings.Contains(logs.String(), "waiting") && strings.Contains(logs.String(), subjects.ResultsStream), nil
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.Provision(t.Context(), js, embeddedtest.TestPlan(t), nil); err != nil {
		t.Fatal(err)
	}
	f := &fixture{agent: a, nc: nc, js: js}
	f.publish(t, "job-late")
	if r := f.result(t, "job-late", 30*time.Second); r.Status != messages.StatusSucceeded {
		t.Fatalf("got %s, want succeeded", r.Status)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
