package embedded_test

// Tests of shared/publisher against a real nats-server, connected as a user with exactly
// the permissions of the shipped config's publisher user, with a stand-in ledger and runner.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/publisher"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// publisherPermissions are those of the publisher user of deploy/nats/cluster-node.conf.
var publisherPermissions = &server.Permissions{
	Publish: &server.SubjectPermission{Allow: []string{
		"exec.jobs.>", "ledger.reserve",
		"$JS.API.DIRECT.GET.RESULTS.>", "$JS.API.STREAM.MSG.GET.RESULTS",
		"$JS.API.STREAM.INFO.RESULTS", "$JS.API.STREAM.INFO.JOBS", "_INBOX.>",
	}},
	Subscribe: &server.SubjectPermission{Allow: []string{"exec.notify.publisher.>", "_INBOX.>"}},
}

const testJobPrice = 10_000

// publisherMesh is a nats-server with the job and result streams, a ledger that
// reserves for "rich" and refuses "poor", and a python runner.
type publisherMesh struct {
	url      string
	admin    *nats.Conn
	js       jetstream.JetStream
	reserves atomic.Int64
	// jobs are the raw jobs the runner pulled, with their Nats-Msg-Id.
	mu   sync.Mutex
	jobs []pulledJob
}

type pulledJob struct {
	msgID string
	job   messages.Job
}

// startPublisherMesh starts it all; jobMaxMsgSize bounds the job stream's messages and
// directGet sets the result stream's AllowDirect.
func startPublisherMesh(t *testing.T, jobMaxMsgSize int32, directGet bool) *publisherMesh {
	t.Helper()
	url := startAuthNATS(t, &server.Options{
		JetStream: true, StoreDir: t.TempDir(), MaxPayload: 8 << 20,
		Users: []*server.User{
			{Username: "admin", Password: "admin-pass"},
			{Username: "publisher", Password: "publisher-pass", Permissions: publisherPermissions},
		},
	})
	admin, err := nats.Connect(url, nats.UserInfo("admin", "admin-pass"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: subjects.JobsStream, Subjects: []string{subjects.JobsAll},
		Retention: jetstream.WorkQueuePolicy, MaxMsgSize: jobMaxMsgSize, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: subjects.ResultsStream, Subjects: []string{subjects.ResultsAll},
		MaxMsgsPerSubject: 1, AllowDirect: directGet}); err != nil {
		t.Fatal(err)
	}
	m := &publisherMesh{url: url, admin: admin, js: js}

	// The ledger: a price for "rich", insufficient funds for "poor".
	if _, err := rpc.Handle(ctx, admin, quiet, subjects.Reserve, subjects.QueueLedger,
		func(_ context.Context, req messages.ReserveRequest) (messages.ReserveReply, error) {
			m.reserves.Add(1)
			if req.UserID == "poor" {
				return messages.ReserveReply{}, rpc.Errorf(rpc.CodeInsufficientFunds, "balance 0, price %d", testJobPrice)
			}
			return messages.ReserveReply{V: messages.Version, PriceMicros: testJobPrice, BalanceMicros: 1_000_000, HoldRemainingMs: 60_000}, nil
		}); err != nil {
		t.Fatal(err)
	}

	// The runner: a job whose stdin is "lose the notification" gets no notification.
	cons, err := js.CreateOrUpdateConsumer(ctx, subjects.JobsStream, jetstream.ConsumerConfig{
		Durable: subjects.JobConsumer("local", "python"), FilterSubject: subjects.Jobs("local", "python"),
		AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var job messages.Job
		if err := json.Unmarshal(msg.Data(), &job); err != nil {
			t.Errorf("runner: decode job: %v", err)
			return
		}
		m.mu.Lock()
		m.jobs = append(m.jobs, pulledJob{msgID: msg.Headers().Get(jetstream.MsgIDHeader), job: job})
		m.mu.Unlock()
		r := messages.NewResult(&job)
		zero := 0
		r.RunnerID, r.Attempt, r.Status, r.ExitCode = "runner-1", 1, messages.StatusSucceeded, &zero
		r.Stdout = "ran " + job.Files[0].Code
		r.StartedAt, r.FinishedAt = time.Now().UTC(), time.Now().UTC()
		data, _ := json.Marshal(r)
		if _, err := js.Publish(ctx, subjects.Results(job.JobID), data, jetstream.WithMsgID(subjects.ResultMsgID(job.JobID))); err != nil {
			t.Errorf("runner: store result: %v", err)
		}
		if job.Notify != "" && job.Stdin != "lose the notification" {
			_ = admin.Publish(job.Notify, data)
		}
		_ = msg.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return m
}

// connectPublisher connects as the publisher user; any permission violation fails the test.
func (m *publisherMesh) connectPublisher(t *testing.T, opts publisher.Options) *publisher.Publisher {
	t.Helper()
	nc, err := nats.Connect(m.url, nats.UserInfo("publisher", "publisher-pass"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			t.Errorf("publisher connection: %v", err)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p, err := publisher.New(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func (m *publisherMesh) published(t *testing.T) uint64 {
	t.Helper()
	s, err := m.js.Stream(context.Background(), subjects.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

func (m *publisherMesh) pulled(jobID string) (pulledJob, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.jobs {
		if j.job.JobID == jobID {
			return j, true
		}
	}
	return pulledJob{}, false
}

func TestPublisherRunsAJobWithThePublisherPermissions(t *testing.T) {
	for _, direct := range []bool{true, false} {
		name := map[bool]string{true: "direct get", false: "stream msg get"}[direct]
		t.Run(name, func(t *testing.T) {
			m := startPublisherMesh(t, 4<<20, direct)
			p := m.connectPublisher(t, publisher.Options{PollInterval: 50 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			pd, err := p.Submit(ctx, publisher.JobRequest{UserID: "rich", Language: "py", Code: "hello", Args: []string{"x"}})
			if err != nil {
				t.Fatal(err)
			}
			if pd.PriceMicros != testJobPrice || pd.Subject != "exec.jobs.local.python" {
				t.Errorf("got price %d subject %q, want %d on exec.jobs.local.python", pd.PriceMicros, pd.Subject, testJobPrice)
			}
			r, err := pd.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.JobID != pd.JobID || r.Stdout != "ran hello" || r.Status != messages.StatusSucceeded {
				t.Errorf("got result %+v, want the job's, succeeded, stdout %q", r, "ran hello")
			}
			got, ok := m.pulled(pd.JobID)
			if !ok {
				t.Fatal("the runner never pulled the job")
			}
			want := messages.Job{V: 1, JobID: pd.JobID, UserID: "rich", Language: "python", Region: "local",
				Files: []messages.File{{Filename: "main.py", Code: "hello", IsEntryPoint: true}}, Args: []string{"x"},
				PriceMicros: testJobPrice, Notify: "exec.notify.publisher." + pd.JobID}
			j := got.job
			if got.msgID != pd.JobID || j.V != want.V || j.UserID != want.UserID || j.Language != want.Language ||
				j.Region != want.Region || j.PriceMicros != want.PriceMicros || j.Notify != want.Notify ||
				len(j.Files) != 1 || j.Files[0] != want.Files[0] || len(j.Args) != 1 || j.SubmittedAt.IsZero() {
				t.Errorf("got job %+v with Nats-Msg-Id %q, want %+v with Nats-Msg-Id the job id", j, got.msgID, want)
			}

			// A missed notification: the result comes from the results stream.
			r, err = p.Run(ctx, publisher.JobRequest{UserID: "rich", Language: "python", Code: "quietly", Stdin: "lose the notification"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Stdout != "ran quietly" {
				t.Errorf("got stdout %q, want %q from the results stream", r.Stdout, "ran quietly")
			}
			if _, err := p.Result(ctx, r.JobID); err != nil {
				t.Errorf("read a stored result: %v", err)
			}
			if _, err := p.Result(ctx, "no-such-job"); !errors.Is(err, publisher.ErrNotFound) {
				t.Errorf("result of an unknown job: got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestPublisherRefusalsPublishNothing(t *testing.T) {
	m := startPublisherMesh(t, 64<<10, true)
	p := m.connectPublisher(t, publisher.Options{PollInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := p.Submit(ctx, publisher.JobRequest{UserID: "poor", Language: "python", Code: "x"})
	var refused *publisher.RefusedError
	if !errors.Is(err, publisher.ErrInsufficientFunds) || !errors.As(err, &refused) || refused.Code != rpc.CodeInsufficientFunds {
		t.Fatalf("poor user: got %v, want a *RefusedError matching ErrInsufficientFunds", err)
	}
	if n := m.reserves.Load(); n != 1 {
		t.Errorf("got %d reservations, want 1", n)
	}

	for name, req := range map[string]publisher.JobRequest{
		"unknown language": {UserID: "rich", Language: "cobol", Code: "x"},
		"bad file name":    {UserID: "rich", Language: "python", Files: []messages.File{{Filename: "../x.py", IsEntryPoint: true}}},
		// 40 KiB of control bytes take 240 KiB once encoded, over the stream's 64 KiB.
		"too large once encoded": {UserID: "rich", Language: "python", Code: strings.Repeat("\x01", 40<<10)},
	} {
		_, err := p.Submit(ctx, req)
		if !errors.Is(err, publisher.ErrInvalidRequest) {
			t.Errorf("%s: got %v, want ErrInvalidRequest", name, err)
		}
	}
	var tooLarge *publisher.TooLargeError
	if _, err := p.Submit(ctx, publisher.JobRequest{UserID: "rich", Language: "python", Code: strings.Repeat("\x01", 40<<10)}); !errors.As(err, &tooLarge) || tooLarge.Max != 64<<10 {
		t.Errorf("too large: got %v, want a *TooLargeError with max %d", err, 64<<10)
	}
	if n := m.reserves.Load(); n != 1 {
		t.Errorf("invalid requests reserved: got %d reservations, want 1", n)
	}
	if seq := m.published(t); seq != 0 {
		t.Errorf("refused jobs were published: the job stream's last sequence is %d, want 0", seq)
	}
}

func TestPublisherSubmitAgainIsOneJob(t *testing.T) {
	m := startPublisherMesh(t, 4<<20, true)
	p := m.connectPublisher(t, publisher.Options{PollInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	jobID, err := publisher.NewJobID()
	if err != nil {
		t.Fatal(err)
	}
	req := publisher.JobRequest{JobID: jobID, UserID: "rich", Language: "python", Code: "once"}
	first, err := p.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := p.Submit(ctx, req) // a retry after a lost answer
	if err != nil {
		t.Fatal(err)
	}
	if r, err := second.Wait(ctx); err != nil || r.JobID != jobID {
		t.Fatalf("retry: got %+v, %v, want the job's result", r, err)
	}
	if seq := m.published(t); seq != 1 {
		t.Errorf("got %d jobs in the stream, want 1 (the retry deduplicated)", seq)
	}
	waitfor.Eventually(t, 5*time.Second, "the job is pulled", func() (bool, error) {
		_, ok := m.pulled(jobID)
		return ok, nil
	})
	m.mu.Lock()
	n := len(m.jobs)
	m.mu.Unlock()
	if n != 1 {
		t.Errorf("the runner pulled %d jobs, want 1", n)
	}
}
