package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/deploy/allinone"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// Runner processes in these tests: AckWait short, so a killed runner's job comes back fast.
const processAckWait = 3 * time.Second

var (
	runnerBinOnce sync.Once
	runnerBin     string
	runnerBinErr  error
)

// buildRunner builds bin/runner once per test binary.
func buildRunner(t *testing.T) string {
	t.Helper()
	runnerBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "codeexec-runner-bin-")
		if err != nil {
			runnerBinErr = err
			return
		}
		runnerBin = filepath.Join(dir, "runner")
		out, err := exec.Command("go", "build", "-o", runnerBin, "github.com/codeexec/codeexec/runner/cmd/runner").CombinedOutput()
		if err != nil {
			runnerBinErr = &buildError{out: string(out), err: err}
		}
	})
	if runnerBinErr != nil {
		t.Fatalf("go build runner: %v", runnerBinErr)
	}
	return runnerBin
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// runnerProc is a bin/runner process joined to a mesh's NATS.
type runnerProc struct {
	id     string
	cmd    *exec.Cmd
	logs   *procLog
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

type procLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *procLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *procLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRunner starts a runner process with id serving python, one slot.
func startRunner(t *testing.T, natsURL, id string) *runnerProc {
	t.Helper()
	return startRunnerWith(t, natsURL, id)
}

// startRunnerWith starts a runner process with 1 slot, a pool of 1 and python only; extra
// settings ("KEY=value") override those.
func startRunnerWith(t *testing.T, natsURL, id string, extra ...string) *runnerProc {
	t.Helper()
	bin := buildRunner(t)
	cmd := exec.Command(bin)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CODEEXEC_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"CODEEXEC_NATS_URL="+natsURL,
		"CODEEXEC_RUNNER_ID="+id,
		"CODEEXEC_LANGUAGES=python",
		"CODEEXEC_RUNNER_SLOTS=1",
		"CODEEXEC_POOL_SIZE=1",
		"CODEEXEC_METRICS_ADDR=127.0.0.1:0",
		"CODEEXEC_LOG_LEVEL=debug",
	)
	cmd.Env = append(cmd.Env, extra...) // the last value of a key wins
	p := &runnerProc{id: id, cmd: cmd, logs: &procLog{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start runner %s: %v", id, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			t.Logf("runner %s logs:\n%s", id, p.logs.String())
		}
	})
	return p
}

// waitLog waits until the process has logged substr.
func (p *runnerProc) waitLog(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !strings.Contains(p.logs.String(), substr); time.Sleep(50 * time.Millisecond) {
		select {
		case <-p.exited:
			t.Fatalf("runner %s exited before logging %q", p.id, substr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner %s did not log %q in %s", p.id, substr, timeout)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *runnerProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("runner %s still running after %s", p.id, timeout)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("runner %s: %v", p.id, p.err)
	return -1
}

func uniqueID(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// processMesh is an all-in-one without a runner, whose NATS accepts runner processes.
type processMesh struct {
	*allinone.Instance
	js jetstream.JetStream
}

func startProcessMesh(t *testing.T) processMesh {
	t.Helper()
	inst := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Services = []string{"accounts", "ledger", "edge"}
		c.Languages = nil // no runner here: nothing to wait for
		c.NATSListen = "127.0.0.1:0"
		c.JobAckWait = processAckWait // provisioned on the job consumers
	})
	return processMesh{Instance: inst, js: natsOf(t, inst.NATSURL)}
}

// consumerInfo returns the python job consumer's state, once some runner created it.
func (m processMesh) consumerInfo(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := m.js.Consumer(context.Background(), subjects.JobsStream, subjects.JobConsumer("local", "python"))
	if err != nil {
		return nil
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitHeld waits until a runner holds n python jobs (delivered, not acked).
func (m processMesh) waitHeld(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if info := m.consumerInfo(t); info != nil && info.NumAckPending == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no runner holds %d jobs after 30s: %+v", n, m.consumerInfo(t))
		}
	}
}

// storedResult reads a job's result from the results stream.
func (m processMesh) storedResult(t *testing.T, jobID string) messages.Result {
	t.Helper()
	s, err := m.js.Stream(context.Background(), subjects.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(context.Background(), subjects.Results(jobID))
	if err != nil {
		t.Fatalf("stored result of %s: %v", jobID, err)
	}
	var r messages.Result
	if err := json.Unmarshal(raw.Data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func submit(t *testing.T, base, key, code string) string {
	t.Helper()
	var a executeAnswer
	status, body := call(t, base, "POST", "/api/v1/execute", key, map[string]any{"language": "python", "code": code, "wait": false}, &a)
	if status != 202 || a.JobID == "" {
		t.Fatalf("submit: got %d %s, want 202 with a job id", status, body)
	}
	return a.JobID
}

type jobAnswer struct {
	JobID  string `json:"jobId"`
	Status string `json:"status"`
	Result result `json:"result"`
}

func pollJob(t *testing.T, base, key, jobID string, timeout time.Duration) result {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		var j jobAnswer
		status, body := call(t, base, "GET", "/api/v1/jobs/"+jobID, key, nil, &j)
		if status != 200 {
			t.Fatalf("poll job: got %d %s", status, body)
		}
		if j.Status == "done" {
			return j.Result
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not done after %s: %s", jobID, timeout, body)
		}
	}
}

// waitCharged waits until the holds are settled and returns the wallet and usage.
func waitCharged(t *testing.T, base, key string, executions int) (wallet, usagePage) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		w := getWallet(t, base, key)
		var page usagePage
		if status, body := call(t, base, "GET", "/api/usage", key, nil, &page); status != 200 {
			t.Fatalf("usage: %d %s", status, body)
		}
		if w.HeldMicros == 0 && len(page.Records) >= executions {
			return w, page
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after 30s: wallet %+v, %d usage records", w, len(page.Records))
		}
	}
}

func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	d, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// programRuns reports whether a running container of runner id has a process whose command
// line holds text.
func programRuns(t *testing.T, d *client.Client, id, text string) bool {
	t.Helper()
	return runningPrograms(t, d, id, text) > 0
}

func waitNoContainers(t *testing.T, d *client.Client, id string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		left := containersOf(t, d, id)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner %s left %d containers after %s", id, len(left), timeout)
		}
	}
}

// TestRunnerKilledMidJob SIGKILLs the runner process holding a job: the job comes back
// after AckWait to the other runner process, the client gets one result and pays once, and
// the killed runner's containers (the user's program still running in one) are removed
// when a runner with its id starts again.
func TestRunnerKilledMidJob(t *testing.T) {
	mesh := startProcessMesh(t)
	docker := dockerClient(t)
	idA, idB := uniqueID("killed"), uniqueID("survivor")

	a := startRunner(t, mesh.NATSURL, idA)
	waitAvailable(t, mesh.URL, "python")
	user := registerUser(t, mesh.URL)
	before := getWallet(t, mesh.URL, user.APIKey)

	jobID := submit(t, mesh.URL, user.APIKey, "import time\ntime.sleep(3)\nprint('done')")
	mesh.waitHeld(t, 1) // only A runs: A holds it
	b := startRunner(t, mesh.NATSURL, idB)
	b.waitLog(t, "runner agent started", 30*time.Second)
	waitfor.Eventually(t, 30*time.Second, "the user's program runs in a container of A", func() (bool, error) {
		return programRuns(t, docker, idA, "python3"), nil
	})

	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 10*time.Second)
	running := 0
	for _, c := range containersOf(t, docker, idA) {
		if c.State == "running" {
			running++
		}
	}
	if running == 0 {
		t.Fatalf("want the killed runner's containers still running (the job's among them), got none")
	}

	r := pollJob(t, mesh.URL, user.APIKey, jobID, 45*time.Second)
	if r.RunTimeStatus != "succeeded" || r.Stdout != "done\n" {
		t.Fatalf("result: got %q stdout %q stderr %q, want succeeded with \"done\"", r.RunTimeStatus, r.Stdout, r.Stderr)
	}
	stored := mesh.storedResult(t, jobID)
	if stored.RunnerID != idB || stored.Attempt != 2 {
		t.Errorf("stored result: got runner %s attempt %d, want %s on attempt 2", stored.RunnerID, stored.Attempt, idB)
	}
	w, page := waitCharged(t, mesh.URL, user.APIKey, 1)
	if w.BalanceMicros != before.BalanceMicros-testPrice {
		t.Errorf("balance: got %d, want %d (lower by exactly one price)", w.BalanceMicros, before.BalanceMicros-testPrice)
	}
	if len(page.Records) != 1 || page.Records[0].JobID != jobID || page.Totals.PriceMicros != testPrice {
		t.Errorf("usage: got %d records %+v, want one record of %s at %d", len(page.Records), page.Totals, jobID, testPrice)
	}

	// A runner with A's id starts again and removes what A left before it serves.
	again := startRunner(t, mesh.NATSURL, idA)
	again.waitLog(t, "runner agent started", 30*time.Second)
	for _, c := range containersOf(t, docker, idA) {
		if c.Labels["org.codeexec.pid"] == strconv.Itoa(a.cmd.Process.Pid) {
			t.Fatalf("the restarted runner %s serves, but the killed one's container %.12s (%s) is still there", idA, c.ID, c.State)
		}
	}
	if !strings.Contains(again.logs.String(), "removed leftover containers") {
		// Any runner starting on this host removes a dead process's containers: another
		// test package's may have come first.
		t.Logf("the killed runner's containers were removed before its restart")
	}
	for _, p := range []*runnerProc{again, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*runnerProc{again, b} {
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("runner %s exited with %d after SIGTERM, want 0", p.id, code)
		}
	}
	waitNoContainers(t, docker, idA, 10*time.Second)
	waitNoContainers(t, docker, idB, 10*time.Second)
}

// TestRunnerDrainsOnSIGTERM sends SIGTERM to the runner process running a job: it pulls no
// more jobs, finishes the one it holds (a result, one charge), exits 0 and leaves no
// container.
func TestRunnerDrainsOnSIGTERM(t *testing.T) {
	mesh := startProcessMesh(t)
	docker := dockerClient(t)
	id := uniqueID("drained")

	r := startRunner(t, mesh.NATSURL, id)
	r.waitLog(t, "runner agent started", 30*time.Second)
	waitAvailable(t, mesh.URL, "python")
	user := registerUser(t, mesh.URL)
	before := getWallet(t, mesh.URL, user.APIKey)

	first := submit(t, mesh.URL, user.APIKey, "import time\ntime.sleep(2)\nprint('done')")
	mesh.waitHeld(t, 1)
	// One slot, busy: the second job waits in the stream.
	second := submit(t, mesh.URL, user.APIKey, "print('second')")
	time.Sleep(300 * time.Millisecond)

	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("runner exited with %d after SIGTERM, want 0", code)
	}
	res := pollJob(t, mesh.URL, user.APIKey, first, 5*time.Second)
	if res.RunTimeStatus != "succeeded" || res.Stdout != "done\n" {
		t.Fatalf("drained job: got %q stdout %q stderr %q, want succeeded with \"done\"", res.RunTimeStatus, res.Stdout, res.Stderr)
	}
	if len(containersOf(t, docker, id)) != 0 {
		t.Errorf("the drained runner left containers behind")
	}

	// The second job was not taken: still queued, undelivered.
	var j jobAnswer
	if status, body := call(t, mesh.URL, "GET", "/api/v1/jobs/"+second, user.APIKey, nil, &j); status != 200 || j.Status != "queued" {
		t.Errorf("second job: got %d %s, want queued", status, body)
	}
	if info := mesh.consumerInfo(t); info == nil || info.NumPending != 1 || info.NumAckPending != 0 {
		t.Errorf("job consumer: got %+v, want the second job pending and none held", info)
	}

	// One charge for the drained job; the second's hold is still held.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		w := getWallet(t, mesh.URL, user.APIKey)
		var page usagePage
		call(t, mesh.URL, "GET", "/api/usage", user.APIKey, nil, &page)
		if w.HeldMicros == testPrice && len(page.Records) == 1 {
			if w.BalanceMicros != before.BalanceMicros-2*testPrice || page.Records[0].JobID != first {
				t.Errorf("got balance %d and record %s, want %d (one charge, one hold) and %s",
					w.BalanceMicros, page.Records[0].JobID, before.BalanceMicros-2*testPrice, first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: wallet %+v, %d records", w, len(page.Records))
		}
	}
}

// TestRunnerDiesOnEveryDelivery kills the runner holding a job on each of its deliveries:
// after the last one a live runner's dead-letter worker gives the job an internal_error
// result and a dead-letter record and deletes it; the hold is released (never charged).
func TestRunnerDiesOnEveryDelivery(t *testing.T) {
	mesh := startProcessMesh(t)
	docker := dockerClient(t)
	id := uniqueID("doomed")

	r := startRunner(t, mesh.NATSURL, id)
	r.waitLog(t, "runner agent started", 30*time.Second)
	waitAvailable(t, mesh.URL, "python")
	user := registerUser(t, mesh.URL)
	before := getWallet(t, mesh.URL, user.APIKey)

	jobID := submit(t, mesh.URL, user.APIKey, "import time\ntime.sleep(60)")
	for delivery := 1; delivery <= 3; delivery++ {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			info := mesh.consumerInfo(t)
			if info != nil && info.NumAckPending == 1 && info.Delivered.Consumer == uint64(delivery) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery %d never held: %+v", delivery, info)
			}
		}
		if err := r.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		r.wait(t, 10*time.Second)
		// The next life (same id) removes the dead one's containers and pulls again.
		r = startRunner(t, mesh.NATSURL, id)
		r.waitLog(t, "runner agent started", 30*time.Second)
	}

	res := pollJob(t, mesh.URL, user.APIKey, jobID, 30*time.Second)
	if res.RunTimeStatus != "internal_error" {
		t.Fatalf("result: got %q, want internal_error", res.RunTimeStatus)
	}
	s, err := mesh.js.Stream(context.Background(), subjects.DeadLettersStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(context.Background(), subjects.DeadLetter(jobID))
	if err != nil {
		t.Fatalf("dead-letter record: %v", err)
	}
	var dl messages.DeadLetter
	if err := json.Unmarshal(raw.Data, &dl); err != nil || dl.Reason != messages.DeadLetterMaxDeliveries || dl.Deliveries != 3 || dl.UserID != user.UserID {
		t.Errorf("dead-letter record: got %s (%v), want max_deliveries after 3 deliveries of the user's job", raw.Data, err)
	}
	// The result is published before the job is deleted: the deletion may come a moment later.
	jobs, err := mesh.js.Stream(context.Background(), subjects.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info := mesh.consumerInfo(t)
		stream, err := jobs.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && stream.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job consumer %+v, stream %+v: want the job gone", info, stream.State)
		}
	}

	w, page := waitCharged(t, mesh.URL, user.APIKey, 1)
	if w.BalanceMicros != before.BalanceMicros {
		t.Errorf("balance: got %d, want %d (internal_error is never charged)", w.BalanceMicros, before.BalanceMicros)
	}
	if page.Totals.PriceMicros != 0 || len(page.Records) != 1 || page.Records[0].RunTimeStatus != "internal_error" {
		t.Errorf("usage: got %+v, want one internal_error record at no charge", page)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Errorf("runner exited with %d after SIGTERM, want 0", code)
	}
	waitNoContainers(t, docker, id, 10*time.Second)
}

// Two runner processes of 4 slots share a region's job consumer: 8 jobs submitted at once
// all run at the same time (the consumer's in-flight limit is the fleet's, each runner
// pulls one job per free slot), so 8 jobs of 2 s take about 2 s, not 4.
func TestTwoRunnersOfFourSlotsRunEightJobsAtOnce(t *testing.T) {
	mesh := startProcessMesh(t)
	ids := []string{uniqueID("four-a"), uniqueID("four-b")}
	for _, id := range ids {
		startRunnerWith(t, mesh.NATSURL, id, "CODEEXEC_RUNNER_SLOTS=4", "CODEEXEC_POOL_SIZE=4")
	}
	waitAvailable(t, mesh.URL, "python")
	users := make([]registered, 4) // the free credit pays two jobs each
	for i := range users {
		users[i] = registerUser(t, mesh.URL)
	}
	jobs := make([]string, 8)
	for i := range jobs {
		jobs[i] = submit(t, mesh.URL, users[i/2].APIKey, fmt.Sprintf("import time\ntime.sleep(2)\nprint(%d)", i))
	}
	var latestStart, earliestEnd time.Time
	perRunner := map[string]int{}
	for i, id := range jobs {
		if r := pollJob(t, mesh.URL, users[i/2].APIKey, id, time.Minute); r.RunTimeStatus != "succeeded" || r.Stdout != fmt.Sprintf("%d\n", i) {
			t.Errorf("job %d: %s %q", i, r.RunTimeStatus, r.Stdout)
		}
		stored := mesh.storedResult(t, id)
		perRunner[stored.RunnerID]++
		if stored.StartedAt.After(latestStart) {
			latestStart = stored.StartedAt
		}
		if earliestEnd.IsZero() || stored.FinishedAt.Before(earliestEnd) {
			earliestEnd = stored.FinishedAt
		}
	}
	// All 8 ran at the same time: the last to start started before the first to end ended.
	if !latestStart.Before(earliestEnd) {
		t.Errorf("the jobs did not all run at once: the last started %s after the first ended", latestStart.Sub(earliestEnd))
	}
	if perRunner[ids[0]] != 4 || perRunner[ids[1]] != 4 {
		t.Errorf("jobs per runner: %v, want 4 on each", perRunner)
	}
	t.Logf("8 jobs of 2 s on 2 runners of 4 slots: all 8 ran together for %s", earliestEnd.Sub(latestStart).Round(time.Millisecond))
}

// runningPrograms counts the running containers of runner id with a process whose command
// line holds text.
func runningPrograms(t *testing.T, d *client.Client, id, text string) int {
	t.Helper()
	n := 0
	for _, c := range containersOf(t, d, id) {
		if c.State == "running" && containerRuns(t, d, c, text) {
			n++
		}
	}
	return n
}
