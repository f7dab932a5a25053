package integration

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/deploy/allinone"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// An edge killed between its reserve and its publish leaves a hold whose job nobody will
// ever queue. The ledger gives such a job up (its claim abandoned, so that no runner can
// run it) and releases the hold after its orphan grace, not after the hold TTL.

// startOrphanMesh runs an all-in-one without a runner (accounts, ledger, edge) whose ledger
// gives up a job reserved with RecordsOwner after 1 s without its owner record, and whose
// NATS listens for the test's own connections and runners.
func startOrphanMesh(t *testing.T) (*allinone.Instance, jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	t.Setenv("CODEEXEC_LEDGER_ORPHAN_GRACE", "1s")
	t.Setenv("CODEEXEC_LEDGER_ORPHAN_INTERVAL", "200ms")
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Services = []string{"accounts", "ledger", "edge"}
		c.Languages = nil
		c.NATSListen = "127.0.0.1:0"
		c.RatePerSec, c.RateBurst = 1000, 1000 // the test polls the wallet
	})
	js := natsOf(t, mesh.NATSURL)
	index, err := js.KeyValue(t.Context(), subjects.JobIndexBucket)
	if err != nil {
		t.Fatal(err)
	}
	return mesh, js, index
}

// reserveAsEdge holds a job's price through ledger.reserve as the edge does before it
// publishes (with RecordsOwner), and returns the new job's id and price; nothing is
// published.
func reserveAsEdge(t *testing.T, js jetstream.JetStream, userID string) (jobID string, priceMicros int64) {
	t.Helper()
	jobID, err := messages.NewJobID()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := rpc.Call[messages.ReserveRequest, messages.ReserveReply](t.Context(), js.Conn(), subjects.Reserve,
		messages.ReserveRequest{V: messages.Version, UserID: userID, JobID: jobID, Language: "python", RecordsOwner: true})
	if err != nil {
		t.Fatalf("reserve job %s: %v", jobID, err)
	}
	if reply.PriceMicros != testPrice {
		t.Fatalf("reserve job %s: price %d, want %d", jobID, reply.PriceMicros, testPrice)
	}
	return jobID, reply.PriceMicros
}

// claimOf is the job's claim in the job index ("" when there is none).
func claimOf(t *testing.T, index jetstream.KeyValue, jobID string) string {
	t.Helper()
	e, err := index.Get(t.Context(), subjects.JobRunningKey(jobID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("read the claim of %s: %v", jobID, err)
	}
	return string(e.Value())
}

// A hold whose job was never queued is released within seconds; a job the edge queued
// (its owner recorded) and that waits for a runner keeps its hold through the same sweeps.
func TestOrphanedHoldIsReleased(t *testing.T) {
	mesh, js, index := startOrphanMesh(t)
	user := registerUser(t, mesh.URL)
	// Queued by the real edge: it waits in the stream past the grace, and must not be
	// given up.
	queued := queueUnserved(t, mesh, user.APIKey, "print('queued')")
	// Reserved after it, as an edge killed before its publish leaves it.
	orphan, _ := reserveAsEdge(t, js, user.UserID)
	if w := getWallet(t, mesh.URL, user.APIKey); w.HeldMicros != 2*testPrice {
		t.Fatalf("wallet %+v, want the two prices held", w)
	}

	start := time.Now()
	waitfor.Eventually(t, 30*time.Second, "the orphaned hold is released", func() (bool, error) {
		w := getWallet(t, mesh.URL, user.APIKey)
		return w.HeldMicros == testPrice, nil
	})
	t.Logf("orphaned hold released %s after the reserve (grace 1 s)", time.Since(start).Round(time.Millisecond))
	// Each sweep looks at every hold past the grace, the older queued one included: it
	// was looked at and kept.
	if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != testFreeCredit-testPrice || w.HeldMicros != testPrice {
		t.Errorf("wallet %+v, want %d available and the queued job's %d held", w, testFreeCredit-testPrice, testPrice)
	}
	if c := claimOf(t, index, orphan); c != subjects.AbandonedClaim {
		t.Errorf("claim of the orphaned job: %q, want %q (no runner may run it now)", c, subjects.AbandonedClaim)
	}
	if c := claimOf(t, index, queued.JobID); c != "" {
		t.Errorf("claim of the queued job: %q, want none", c)
	}
	// The job's hold is closed for good: a reserve again (a runner's) is refused.
	_, err := rpc.Call[messages.ReserveRequest, messages.ReserveReply](t.Context(), js.Conn(), subjects.Reserve,
		messages.ReserveRequest{V: messages.Version, UserID: user.UserID, JobID: orphan, Language: "python"})
	if !rpc.IsCode(err, rpc.CodeHoldClosed) {
		t.Errorf("reserve of the released job: %v, want %s", err, rpc.CodeHoldClosed)
	}
}

// A job given up as orphaned that is published afterwards (its edge was only slow, or a
// copy turns up) is refused by the runner: not run, not charged, the wallet whole.
func TestOrphanPublishedLateIsNotRun(t *testing.T) {
	mesh, js, index := startOrphanMesh(t)
	user := registerUser(t, mesh.URL)
	orphan, price := reserveAsEdge(t, js, user.UserID)
	waitfor.Eventually(t, 30*time.Second, "the orphaned hold is released", func() (bool, error) {
		w := getWallet(t, mesh.URL, user.APIKey)
		return w.HeldMicros == 0 && w.BalanceMicros == testFreeCredit, nil
	})

	// Published as the edge would have: priced, and its owner recorded after.
	startRunner(t, mesh.NATSURL, uniqueID("late"))
	job, err := json.Marshal(messages.Job{V: messages.Version, JobID: orphan, UserID: user.UserID, Language: "python",
		Region: "local", PriceMicros: price, SaveMetric: true, SubmittedAt: time.Now().UTC(),
		Files: []messages.File{{Filename: "main.py", Code: "print('ran')", IsEntryPoint: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), subjects.Jobs("local", "python"), job, jetstream.WithMsgID(orphan)); err != nil {
		t.Fatal(err)
	}
	owner, _ := json.Marshal(map[string]any{"userId": user.UserID, "language": "python", "submittedAt": time.Now().UTC()})
	if _, err := index.Put(t.Context(), orphan, owner); err != nil {
		t.Fatal(err)
	}

	r := storedResult(t, js, orphan)
	if r.Status != messages.StatusInternalError || r.Stdout != "" || !strings.Contains(r.ErrorMessage, "given up") {
		t.Errorf("got %s %q %q, want internal_error: given up, not run", r.Status, r.Stdout, r.ErrorMessage)
	}
	// The refusal's result is settled (its record written) and charges nothing.
	waitfor.Eventually(t, 30*time.Second, "the refused job's record", func() (bool, error) {
		for _, rec := range usageRecords(t, mesh.URL, user.APIKey) {
			if rec.JobID == orphan {
				if rec.PriceMicros != 0 {
					t.Errorf("the refused job's record says %d µ$ charged, want 0", rec.PriceMicros)
				}
				return true, nil
			}
		}
		return false, nil
	})
	if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != testFreeCredit || w.HeldMicros != 0 {
		t.Errorf("wallet %+v, want %d and nothing held", w, testFreeCredit)
	}
	if c := claimOf(t, index, orphan); c != subjects.AbandonedClaim {
		t.Errorf("claim of the job: %q, want it still %q", c, subjects.AbandonedClaim)
	}
}
