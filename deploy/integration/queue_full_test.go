package integration

import (
	"context"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/subjects"
)

// TestQueueFullReleasesTheHold fills the job stream: the refused job answers 503
// queue_full, and its hold is released at once instead of when it would expire.
func TestQueueFullReleasesTheHold(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Services = []string{"accounts", "ledger", "edge"} // no runner: jobs stay queued
		c.NATSListen = "127.0.0.1:0"
		c.Languages = nil
	})
	// The edge refuses languages no runner serves; announce one that never pulls.
	announceRunner(t, mesh.NATSURL, "python")
	ctx := context.Background()
	js := natsOf(t, mesh.NATSURL)
	jobs, err := js.Stream(ctx, subjects.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobs.CachedInfo().Config
	cfg.MaxMsgs = 1
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	user := registerUser(t, mesh.URL)
	job := map[string]any{"language": "python", "code": "print(1)", "wait": false}
	time.Sleep(600 * time.Millisecond) // the edge has heard the heartbeat
	if status, body := call(t, mesh.URL, "POST", "/api/v1/execute", user.APIKey, job, nil); status != 202 {
		t.Fatalf("first job: got %d %s, want 202", status, body)
	}
	var refused executeAnswer
	if status, body := call(t, mesh.URL, "POST", "/api/v1/execute", user.APIKey, job, &refused); status != 503 || refused.Error.Code != "queue_full" {
		t.Fatalf("second job: got %d %s, want 503 queue_full", status, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		w := getWallet(t, mesh.URL, user.APIKey)
		if w.BalanceMicros == testFreeCredit-testPrice && w.HeldMicros == testPrice {
			break // only the queued job's hold is left
		}
		if time.Now().After(deadline) {
			t.Fatalf("wallet %+v: want balance %d with %d held", w, testFreeCredit-testPrice, testPrice)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
