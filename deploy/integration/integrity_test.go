package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// Hostile requests and publishers against the money path: each ends charged once with the
// evidence's status, or refused without a charge; never internal_error for what a program
// did, never a second run, never a hang.

// storedResult reads a job's result from the RESULTS stream.
func storedResult(t *testing.T, js jetstream.JetStream, jobID string) messages.Result {
	t.Helper()
	results, err := js.Stream(context.Background(), subjects.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	var r messages.Result
	waitfor.Eventually(t, time.Minute, "the result of "+jobID, func() (bool, error) {
		m, err := results.GetLastMsgForSubject(context.Background(), subjects.Results(jobID))
		if err != nil {
			return false, nil
		}
		return true, json.Unmarshal(m.Data, &r)
	})
	return r
}

// 8 MiB of control bytes is about 48 MiB once JSON-encoded: the result must still fit its
// message, so the output is cut by its encoded size, and the run ends as
// output_limit_exceeded, charged once, run once.
func TestBinaryOutputFloodIsChargedOnce(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) { c.NATSListen = "127.0.0.1:0" })
	js := natsOf(t, mesh.NATSURL)
	user := registerUser(t, mesh.URL)
	before := getWallet(t, mesh.URL, user.APIKey)
	var a struct {
		executeAnswer
		Result struct {
			result
			Truncated bool `json:"truncated"`
		} `json:"result"`
	}
	status, body := call(t, mesh.URL, "POST", "/api/v1/execute", user.APIKey, map[string]any{
		"language": "python",
		"code":     "import sys\nfor _ in range(8): sys.stdout.buffer.write(b'\\x01' * (1 << 20))\n",
		"limits":   map[string]any{"outputBytes": 8 << 20},
	}, &a)
	if status != 200 || a.Result.RunTimeStatus != string(messages.StatusOutputLimit) || !a.Result.Truncated {
		t.Fatalf("got %d %s truncated=%v, want 200 output_limit_exceeded truncated (%.300s)",
			status, a.Result.RunTimeStatus, a.Result.Truncated, body)
	}
	if r := storedResult(t, js, a.Result.JobID); r.Attempt != 1 {
		t.Errorf("the job ran on delivery %d, want once", r.Attempt)
	}
	waitfor.Eventually(t, 30*time.Second, "the charge", func() (bool, error) {
		return getWallet(t, mesh.URL, user.APIKey).BalanceMicros == before.BalanceMicros-testPrice, nil
	})
}

// An internal publisher may publish a job without reserving first. The runner holds the
// price before it runs the job: paid when the wallet can, never run (and never charged
// below zero) when it cannot, and never for a user who does not exist.
func TestJobWithoutReservation(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) { c.NATSListen = "127.0.0.1:0" })
	js := natsOf(t, mesh.NATSURL)
	user := registerUser(t, mesh.URL) // 25_000: two runs and a half
	publish := func(id, userID string) messages.Result {
		t.Helper()
		job, _ := json.Marshal(messages.Job{V: messages.Version, JobID: id, UserID: userID, Language: "python", Region: "local",
			Files: []messages.File{{Filename: "main.py", Code: "print('ran')", IsEntryPoint: true}}, SubmittedAt: time.Now()})
		if _, err := js.Publish(context.Background(), subjects.Jobs("local", "python"), job, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		return storedResult(t, js, id)
	}
	balance := func() int64 { return getWallet(t, mesh.URL, user.APIKey).BalanceMicros }
	settled := func(want int64) {
		t.Helper()
		waitfor.Eventually(t, 30*time.Second, "the balance settles", func() (bool, error) {
			w := getWallet(t, mesh.URL, user.APIKey)
			return w.HeldMicros == 0 && w.BalanceMicros == want, nil
		})
	}

	for i, id := range []string{uniqueID("unreserved-a"), uniqueID("unreserved-b")} {
		if r := publish(id, user.UserID); r.Status != messages.StatusSucceeded || r.Stdout != "ran\n" {
			t.Fatalf("job %d: got %s %q, want succeeded", i, r.Status, r.ErrorMessage)
		}
		settled(testFreeCredit - int64(i+1)*testPrice)
	}
	// 5_000 left, under the price: the job is refused before it runs.
	r := publish(uniqueID("unreserved-broke"), user.UserID)
	if r.Status != messages.StatusInternalError || r.Stdout != "" {
		t.Errorf("a job the wallet cannot pay: got %s %q, want internal_error, not run", r.Status, r.Stdout)
	}
	settled(testFreeCredit - 2*testPrice)
	if b := balance(); b < 0 {
		t.Errorf("balance %d below zero", b)
	}
	// A user nobody registered gets no wallet, and no free run.
	if r := publish(uniqueID("unreserved-ghost"), "ghost-user"); r.Status != messages.StatusInternalError || r.Stdout != "" {
		t.Errorf("a job of an unknown user: got %s %q, want internal_error, not run", r.Status, r.Stdout)
	}
}

// A job that waited in the queue until its hold expired is never run (it would be free:
// the hold is released); it gets internal_error, and the balance is whole again.
func TestJobHeldPastItsHoldIsNotRun(t *testing.T) {
	t.Setenv("CODEEXEC_LEDGER_HOLD_TTL", "2s")
	t.Setenv("CODEEXEC_LEDGER_SWEEP_INTERVAL", "200ms")
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Services = []string{"accounts", "ledger", "edge"} // no runner yet
		c.Languages = nil
		c.NATSListen = "127.0.0.1:0"
		c.RatePerSec, c.RateBurst = 1000, 1000 // the test polls the wallet
	})
	js := natsOf(t, mesh.NATSURL)
	user := registerUser(t, mesh.URL)
	a := queueUnserved(t, mesh, user.APIKey, "print('ran')")
	waitfor.Eventually(t, 30*time.Second, "the hold expires while the job waits", func() (bool, error) {
		w := getWallet(t, mesh.URL, user.APIKey)
		return w.HeldMicros == 0 && w.BalanceMicros == testFreeCredit, nil
	})
	startRunner(t, mesh.NATSURL, uniqueID("late"))
	r := storedResult(t, js, a.JobID)
	if r.Status != messages.StatusInternalError || r.Stdout != "" || !strings.Contains(r.ErrorMessage, "ledger") {
		t.Errorf("got %s %q %q, want internal_error from the ledger's refusal, not run", r.Status, r.Stdout, r.ErrorMessage)
	}
	if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != testFreeCredit || w.HeldMicros != 0 {
		t.Errorf("wallet %+v, want %d and nothing held", w, testFreeCredit)
	}
}
