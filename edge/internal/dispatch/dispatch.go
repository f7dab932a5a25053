// Package dispatch publishes jobs onto JetStream and hands their results back to the
// waiting HTTP requests. Each edge has one notify subscription for all its waiters; a
// missed notification falls back to reading the result stream, which is the record.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Sentinel errors a caller maps to answers.
var (
	ErrQueueFull   = errors.New("job queue is full")
	ErrWaitTimeout = errors.New("timed out waiting for the result")
	ErrNotFound    = errors.New("job not found")
	// ErrResultStored: Abandon found a result stored for the job already (it ran, or
	// another abandon came first); that result stands.
	ErrResultStored = errors.New("a result is stored for the job already")
	// ErrStarted: Abandon found the job claimed by a runner; its result will come.
	ErrStarted = errors.New("a runner started the job")
	// ErrUnavailable: JetStream did not take the job within publishPatience (no stream
	// leader: an election that lasts, or NATS down).
	ErrUnavailable = natsconn.ErrUnavailable
	// ErrNotRecorded: the job was published but its owner record was not written; the
	// caller abandons it (else the ledger gives it up after its orphan grace, unless a
	// runner started it first).
	ErrNotRecorded = errors.New("the job was queued but its owner could not be recorded")
)

// publishPatience bounds how long Submit retries the job and its owner record each
// through a JetStream leader election (each retry is deduplicated: the job's id is its
// message id); publishAttempt bounds one try.
const (
	publishPatience = 10 * time.Second
	publishAttempt  = 2 * time.Second
)

// JetStream API error codes (nats-server's errors.json).
const (
	jsErrStoreFailed     jetstream.ErrorCode = 10077 // the stream refused the message (full)
	jsErrMessageTooLarge jetstream.ErrorCode = 10054 // message size exceeds maximum allowed
)

// PollInterval is how often a waiter also reads the result stream, in case a notification
// was lost (an edge reconnecting, say).
const PollInterval = 2 * time.Second

// Dispatcher publishes jobs and waits for their results.
type Dispatcher struct {
	edgeID string
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *slog.Logger

	mu      sync.Mutex
	waiters map[string]waiter
	sub     *nats.Subscription
	index   jetstream.KeyValue
	results jetstream.Stream
	jobs    jetstream.Stream
	// jobMaxMsgSize is the job stream's maximum message size, read at Start (≤ 0: none).
	jobMaxMsgSize int
	// deletions are the deletions of abandoned jobs in flight; Stop waits for them.
	deletions sync.WaitGroup
}

// waiter is a submitted job whose client waits for its result.
type waiter struct {
	ch chan messages.Result
	// seq is the job's sequence in the job stream (0: not published yet), so that an
	// abandoned job can be taken out of the queue.
	seq uint64
}

// New returns a dispatcher for the edge named edgeID.
func New(edgeID string, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) *Dispatcher {
	return &Dispatcher{edgeID: edgeID, nc: nc, js: js, log: log, waiters: make(map[string]waiter)}
}

// Start subscribes to this edge's notifications and binds the job index.
func (d *Dispatcher) Start(ctx context.Context) error {
	index, err := d.js.KeyValue(ctx, subjects.JobIndexBucket)
	if err != nil {
		return fmt.Errorf("bind job index: %w", err)
	}
	d.index = index
	results, err := d.js.Stream(ctx, subjects.ResultsStream)
	if err != nil {
		return fmt.Errorf("bind result stream: %w", err)
	}
	d.results = results
	jobs, err := d.js.Stream(ctx, subjects.JobsStream)
	if err != nil {
		return fmt.Errorf("bind job stream: %w", err)
	}
	d.jobs = jobs
	d.jobMaxMsgSize = int(jobs.CachedInfo().Config.MaxMsgSize)
	if d.sub == nil { // a Start tried again after a failed flush subscribes once
		sub, err := d.nc.Subscribe(subjects.NotifyAll(d.edgeID), d.onNotify)
		if err != nil {
			return fmt.Errorf("subscribe to notifications: %w", err)
		}
		d.sub = sub
	}
	return d.nc.Flush()
}

// Stop ends the notify subscription and waits for the deletions of abandoned jobs.
func (d *Dispatcher) Stop() {
	if d.sub != nil {
		_ = d.sub.Unsubscribe()
	}
	d.deletions.Wait()
}

func (d *Dispatcher) onNotify(m *nats.Msg) {
	var r messages.Result
	if err := json.Unmarshal(m.Data, &r); err != nil || r.JobID == "" {
		d.log.Warn("ignored a malformed notification", "subject", m.Subject)
		return
	}
	d.deliver(r)
}

func (d *Dispatcher) deliver(r messages.Result) {
	d.mu.Lock()
	w, ok := d.waiters[r.JobID]
	d.mu.Unlock()
	if ok {
		select {
		case w.ch <- r:
		default: // already delivered once
		}
	}
}

// Owner is what the job index keeps of a job.
type Owner struct {
	UserID      string    `json:"userId"`
	Language    string    `json:"language"`
	SubmittedAt time.Time `json:"submittedAt"`
}

// TooLargeError is a job that cannot be published: once encoded it exceeds the largest
// message the job stream (or the NATS connection) takes. JSON escaping swells a job: a
// control byte in code or stdin takes six.
type TooLargeError struct {
	Bytes int // the job's encoded size, headers allowed for
	Max   int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("job of %d bytes once encoded: the job stream takes at most %d", e.Bytes, e.Max)
}

// headerAllowance covers the headers published with a job (Nats-Msg-Id), which count
// toward both the stream's maximum message size and the connection's maximum payload.
const headerAllowance = 256

// MaxJobBytes is the largest encoded job this dispatcher can publish: the smaller of the
// job stream's maximum message size and the connection's maximum payload.
func (d *Dispatcher) MaxJobBytes() int {
	max := int(d.nc.MaxPayload())
	if d.jobMaxMsgSize > 0 && (max <= 0 || d.jobMaxMsgSize < max) {
		max = d.jobMaxMsgSize
	}
	return max
}

func (d *Dispatcher) checkSize(encoded int) error {
	size, max := encoded+headerAllowance, d.MaxJobBytes()
	if max > 0 && size > max {
		return &TooLargeError{Bytes: size, Max: max}
	}
	return nil
}

// Fits reports a *TooLargeError when job, once priced and given its notify subject by
// Submit, would be too large to publish. Callers check it before reserving money.
func (d *Dispatcher) Fits(job *messages.Job) error {
	probe := *job
	probe.Notify = subjects.Notify(d.edgeID, job.JobID)
	probe.PriceMicros = math.MaxInt64
	body, err := json.Marshal(&probe)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	return d.checkSize(len(body))
}

// Submit publishes the job, then records its owner in the job index. When wait is set, a
// waiter is registered before publishing so that no result can arrive unheard; the caller
// must then call Wait (which releases it) or Forget, also after an error. A job too large
// to publish is a *TooLargeError, with nothing recorded.
//
// The owner record comes after the publish, and before the caller answers its client: it
// is the sign that the job was queued. The job's price was reserved with RecordsOwner, so
// the ledger gives up the job and releases its hold when the record is still missing after
// its orphan grace (this edge died between the reserve and the record). A job whose client
// got an answer has its record, and is never given up that way.
func (d *Dispatcher) Submit(ctx context.Context, job *messages.Job, wait bool) error {
	if wait {
		job.Notify = subjects.Notify(d.edgeID, job.JobID)
	}
	body, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	if err := d.checkSize(len(body)); err != nil {
		return err
	}
	owner, err := json.Marshal(Owner{UserID: job.UserID, Language: job.Language, SubmittedAt: job.SubmittedAt})
	if err != nil {
		return fmt.Errorf("encode job owner: %w", err)
	}
	if wait {
		d.mu.Lock()
		d.waiters[job.JobID] = waiter{ch: make(chan messages.Result, 1)}
		d.mu.Unlock()
	}
	ack, err := natsconn.Retry(ctx, publishPatience, publishAttempt, func(ctx context.Context) (*jetstream.PubAck, error) {
		return d.js.Publish(ctx, subjects.Jobs(job.Region, job.Language), body, jetstream.WithMsgID(job.JobID))
	})
	if err != nil {
		d.Forget(job.JobID)
		// A stream with Discard: New refuses a publish once full (store failed, 10077).
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrStoreFailed {
			return ErrQueueFull
		}
		// The limits changed under us (a stream updated, a server with a smaller payload).
		if errors.Is(err, nats.ErrMaxPayload) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrMessageTooLarge) {
			return &TooLargeError{Bytes: len(body) + headerAllowance, Max: d.MaxJobBytes()}
		}
		return fmt.Errorf("publish job: %w", err)
	}
	if wait {
		d.mu.Lock()
		if w, ok := d.waiters[job.JobID]; ok {
			w.seq = ack.Sequence
			d.waiters[job.JobID] = w
		}
		d.mu.Unlock()
	}
	if _, err := natsconn.Retry(ctx, publishPatience, publishAttempt, func(ctx context.Context) (uint64, error) { return d.index.Put(ctx, job.JobID, owner) }); err != nil {
		return fmt.Errorf("record job owner: %w: %w", ErrNotRecorded, err)
	}
	return nil
}

// Abandon stores an internal_error result for a reserved job that could not be queued, or
// that waited in a region whose runners are gone, so that the ledger releases its hold now
// rather than when it expires. The results stream keeps the first result of a job, so a
// runner that gets the job later finds its hold closed and refuses it, and should the job
// have run after all (a lost publish acknowledgement, a runner that just took it), its run
// cannot charge for it a second time: Abandon then answers ErrResultStored.
//
// The job's claim in the job index decides between the edge and a runner that takes the
// job at the same moment: Abandon creates it first, and a runner runs a job only once it
// created (or, on a redelivery, took over) the claim itself. So a job abandoned is never
// run, and a job a runner claimed is never abandoned (ErrStarted).
//
// The stored result goes to the job's waiter on this edge at once; a job this edge
// published while its client waits is also deleted from the job stream, when the edge's
// NATS user may (the closed hold is the guarantee, the deletion only tidies the queue).
func (d *Dispatcher) Abandon(ctx context.Context, job *messages.Job, reason string) error {
	if d.index != nil {
		claimCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, err := d.index.Create(claimCtx, subjects.JobRunningKey(job.JobID), []byte(subjects.AbandonedClaim))
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrKeyExists):
			return fmt.Errorf("abandon job %s: %w", job.JobID, ErrStarted)
		case err != nil:
			return fmt.Errorf("claim job %s for its abandon: %w", job.JobID, err)
		}
	}
	r := messages.NewResult(job)
	r.Status = messages.StatusInternalError
	r.ErrorMessage = reason
	r.FinishedAt = time.Now().UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result of abandoned job: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ack, err := d.js.Publish(ctx, subjects.Results(job.JobID), body,
		jetstream.WithMsgID(subjects.ResultMsgID(job.JobID)), jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return fmt.Errorf("abandon job %s: %w", job.JobID, ErrResultStored)
	case err != nil:
		return fmt.Errorf("store result of abandoned job %s: %w", job.JobID, err)
	case ack.Duplicate:
		return fmt.Errorf("abandon job %s: %w", job.JobID, ErrResultStored)
	}
	d.deliver(r)
	d.mu.Lock()
	seq := d.waiters[job.JobID].seq
	d.mu.Unlock()
	if seq > 0 && d.jobs != nil {
		// Not waited for: an edge whose NATS user may not delete gets no answer, only a
		// permissions error on its connection, and its client need not wait for that.
		d.deletions.Add(1)
		go func() {
			defer d.deletions.Done()
			d.deleteJob(context.WithoutCancel(ctx), job.JobID, seq)
		}()
	}
	return nil
}

// deleteTimeout bounds the deletion of an abandoned job from the job stream.
const deleteTimeout = 2 * time.Second

// deleteJob takes an abandoned job out of the job stream, if it is still there.
func (d *Dispatcher) deleteJob(ctx context.Context, jobID string, seq uint64) {
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	err := d.jobs.DeleteMsg(ctx, seq)
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful):
		// Taken already: the runner that holds it finds the hold closed.
	default:
		d.log.Info("abandoned job left in the job stream; a runner that takes it will refuse it",
			"job_id", jobID, "stream_seq", seq, "err", err)
	}
}

// Forget drops the waiter of jobID.
func (d *Dispatcher) Forget(jobID string) {
	d.mu.Lock()
	delete(d.waiters, jobID)
	d.mu.Unlock()
}

// Wait returns the result of a submitted job, or ErrWaitTimeout after timeout.
func (d *Dispatcher) Wait(ctx context.Context, jobID string, timeout time.Duration) (messages.Result, error) {
	d.mu.Lock()
	w, ok := d.waiters[jobID]
	d.mu.Unlock()
	if !ok {
		return messages.Result{}, fmt.Errorf("wait for %s: no waiter registered", jobID)
	}
	defer d.Forget(jobID)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(PollInterval)
	defer poll.Stop()
	for {
		select {
		case r := <-w.ch:
			return r, nil
		case <-poll.C:
			r, err := d.Result(ctx, jobID)
			if err == nil {
				return r, nil
			}
			if !errors.Is(err, ErrNotFound) {
				d.log.Warn("read result while waiting", "job_id", jobID, "err", err)
			}
		case <-deadline.C:
			if r, err := d.Result(ctx, jobID); err == nil {
				return r, nil
			}
			return messages.Result{}, ErrWaitTimeout
		case <-ctx.Done():
			return messages.Result{}, ctx.Err()
		}
	}
}

// Result reads a finished job's result from the result stream, or ErrNotFound.
func (d *Dispatcher) Result(ctx context.Context, jobID string) (messages.Result, error) {
	if !subjects.Token(jobID) {
		return messages.Result{}, ErrNotFound
	}
	r, err := streams.StoredResult(ctx, d.results, jobID)
	if errors.Is(err, streams.ErrNoResult) {
		return messages.Result{}, ErrNotFound
	}
	return r, err
}

// Running reports whether a runner has started jobID.
func (d *Dispatcher) Running(ctx context.Context, jobID string) (bool, error) {
	e, err := d.index.Get(ctx, subjects.JobRunningKey(jobID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up whether %s runs: %w", jobID, err)
	}
	return string(e.Value()) != subjects.AbandonedClaim, nil
}

// OwnerOf returns the user who submitted jobID, or ErrNotFound.
func (d *Dispatcher) OwnerOf(ctx context.Context, jobID string) (string, error) {
	if !subjects.Token(jobID) {
		return "", ErrNotFound
	}
	e, err := d.index.Get(ctx, jobID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("look up job %s: %w", jobID, err)
	}
	var o Owner
	if err := json.Unmarshal(e.Value(), &o); err != nil {
		return "", fmt.Errorf("decode owner of %s: %w", jobID, err)
	}
	return o.UserID, nil
}
