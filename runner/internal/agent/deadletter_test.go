package agent

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
)

func (f *fixture) deadLetter(t *testing.T, jobID string, wait time.Duration) messages.DeadLetter {
	t.Helper()
	s, err := f.js.Stream(context.Background(), subjects.DeadLettersStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		m, err := s.GetLastMsgForSubject(context.Background(), subjects.DeadLetter(jobID))
		if err == nil {
			var dl messages.DeadLetter
			if err := json.Unmarshal(m.Data, &dl); err != nil {
				t.Fatal(err)
			}
			return dl
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter for %s: %v", jobID, err)
		}
	}
}

func (f *fixture) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	s, err := f.js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestRunnerDiedOnEveryDelivery plays runners that take a job and die before acking, on
// every delivery: after the last one the server's max-deliveries advisory is captured by
// the advisories stream and the agent (of another language here: any runner handles it)
// records a dead letter, stores an internal_error result, notifies the edge and deletes
// the job, which a work queue would otherwise keep forever.
func TestRunnerDiedOnEveryDelivery(t *testing.T) {
	f := startAgent(t, &fakeSandbox{}, Config{Slots: 1, NakDelay: 100 * time.Millisecond})
	ctx := context.Background()
	const ackWait = 500 * time.Millisecond
	cons, err := f.js.CreateOrUpdateConsumer(ctx, subjects.JobsStream, streams.JobConsumerConfig("local", "ruby", 1, ackWait))
	if err != nil {
		t.Fatal(err)
	}
	notified, err := f.nc.SubscribeSync("exec.notify.edge1.job-dead")
	if err != nil {
		t.Fatal(err)
	}
	j := messages.Job{V: 1, JobID: "job-dead", UserID: "u1", Language: "ruby", Region: "local", Notify: "exec.notify.edge1.job-dead",
		Files: []messages.File{{Filename: "main.rb", Code: "puts 1", IsEntryPoint: true}}}
	data, _ := json.Marshal(j)
	if _, err := f.js.Publish(ctx, subjects.Jobs("local", "ruby"), data, jetstream.WithMsgID(j.JobID)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= streams.JobMaxDeliver; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			if md.NumDelivered != uint64(i) {
				t.Fatalf("delivery: got %d, want %d", md.NumDelivered, i)
			}
			got++ // and die: no ack, no nak
		}
		if got != 1 {
			t.Fatalf("delivery %d: got %d messages, want 1 (%v)", i, got, batch.Error())
		}
	}

	// A runner of the language still pulls: the server notices the job is out of
	// deliveries when it would redeliver it, and emits the advisory instead.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		t.Fatalf("a job out of deliveries was delivered again: %s", m.Data())
	}
	r := f.result(t, j.JobID, 10*time.Second)
	if r.Status != messages.StatusInternalError || r.UserID != "u1" || r.Attempt != streams.JobMaxDeliver {
		t.Errorf("result: got %s for %q attempt %d, want internal_error for u1 after %d deliveries", r.Status, r.UserID, r.Attempt, streams.JobMaxDeliver)
	}
	dl := f.deadLetter(t, j.JobID, 5*time.Second)
	if dl.Reason != messages.DeadLetterMaxDeliveries || dl.Deliveries != streams.JobMaxDeliver || dl.Language != "ruby" ||
		dl.Consumer != subjects.JobConsumer("local", "ruby") || dl.StreamSeq == 0 || dl.At.IsZero() || dl.RunnerID != "r1" {
		t.Errorf("dead letter: got %+v", dl)
	}
	m, err := notified.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("edge not notified: %v", err)
	}
	var n messages.Result
	if err := json.Unmarshal(m.Data, &n); err != nil || n.Status != messages.StatusInternalError {
		t.Errorf("notify: got %s (%v), want internal_error", m.Data, err)
	}
	for deadline := time.Now().Add(5 * time.Second); f.streamMsgs(t, subjects.JobsStream) != 0 || f.streamMsgs(t, subjects.JobAdvisoriesStream) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %d jobs, %d advisories, want none", f.streamMsgs(t, subjects.JobsStream), f.streamMsgs(t, subjects.JobAdvisoriesStream))
		}
	}

	t.Run("a late result of the dead job does not replace the internal_error", func(t *testing.T) {
		late := messages.NewResult(&j)
		late.Status = messages.StatusSucceeded
		if err := f.agent.publish(ctx, &j, late); err != nil {
			t.Fatal(err)
		}
		if r := f.result(t, j.JobID, time.Second); r.Status != messages.StatusInternalError {
			t.Fatalf("stored result: got %s, want the first one (internal_error)", r.Status)
		}
		m, err := notified.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(m.Data, &n); err != nil || n.Status != messages.StatusInternalError {
			t.Errorf("the edge was told %s, want the stored internal_error", m.Data)
		}
	})
	t.Run("a repeated advisory finds nothing to do", func(t *testing.T) {
		if err := f.agent.deadLetter(ctx, maxDeliveriesAdvisory{Stream: subjects.JobsStream, StreamSeq: dl.StreamSeq, Deliveries: 3}); err != nil {
			t.Fatal(err)
		}
		if n := f.streamMsgs(t, subjects.DeadLettersStream); n != 1 {
			t.Fatalf("dead letters: got %d, want 1", n)
		}
	})
}
