package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/trace"
)

// maxDeliveriesAdvisory is the part of the server's io.nats.jetstream.advisory.v1.max_deliver
// event that the dead-letter worker reads.
type maxDeliveriesAdvisory struct {
	Type       string    `json:"type"`
	Stream     string    `json:"stream"`
	Consumer   string    `json:"consumer"`
	StreamSeq  uint64    `json:"stream_seq"`
	Deliveries uint64    `json:"deliveries"`
	Timestamp  time.Time `json:"timestamp"`
}

// deadLetters handles max-deliveries advisories of the job consumers until ctx ends. Every
// runner runs one, bound to the same durable consumer, so each advisory is handled by one
// runner; one that fails is retried (each step is idempotent). A job whose every delivery
// timed out (its runners died or hung) stays in the work-queue stream after the last one:
// this worker records a dead letter, publishes an internal_error result (never charged)
// unless a result is already stored, and deletes the job.
func (a *Agent) deadLetters(ctx context.Context) {
	cons, err := natsconn.Await(ctx, a.log, "the dead-letter consumer "+subjects.DeadLetterConsumer+" (made by `codeexec provision`)", a.bindDeadLetters)
	if err != nil {
		return
	}
	work := context.WithoutCancel(ctx) // an advisory being handled is finished on a drain
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(a.cfg.FetchExpiry))
		if err != nil {
			a.log.Warn("pull advisory", "err", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for msg := range batch.Messages() {
			a.handleAdvisory(work, msg)
		}
	}
}

func (a *Agent) bindDeadLetters(ctx context.Context) (jetstream.Consumer, error) {
	c, err := a.js.Consumer(ctx, subjects.JobAdvisoriesStream, subjects.DeadLetterConsumer)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s (made by `codeexec provision`): %w",
			subjects.DeadLetterConsumer, subjects.JobAdvisoriesStream, err)
	}
	return c, nil
}

func (a *Agent) handleAdvisory(ctx context.Context, msg jetstream.Msg) {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(msg.Data(), &adv); err != nil || adv.StreamSeq == 0 {
		a.log.Error("undecodable max-deliveries advisory, dropped", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("undecodable advisory")
		return
	}
	log := a.log.With("stream", adv.Stream, "consumer", adv.Consumer, "stream_seq", adv.StreamSeq, "deliveries", adv.Deliveries)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.deadLetter(ctx, adv); err != nil {
		log.Warn("dead letter; will retry", "err", err)
		_ = msg.NakWithDelay(a.cfg.NakDelay)
		return
	}
	if err := msg.Ack(); err != nil {
		log.Warn("ack advisory (it will come again and find the job gone)", "err", err)
	}
}

// deadLetter settles the job of one advisory. Every step may be repeated safely.
func (a *Agent) deadLetter(ctx context.Context, adv maxDeliveriesAdvisory) error {
	if adv.Stream != subjects.JobsStream {
		return nil // not ours (the stream filters on it, but a hand-made advisory might not)
	}
	jobs, err := a.js.Stream(ctx, subjects.JobsStream)
	if err != nil {
		return fmt.Errorf("jobs stream: %w", err)
	}
	raw, err := jobs.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // acked after all (a late runner), or dead-lettered already
	}
	if err != nil {
		return fmt.Errorf("get job %d: %w", adv.StreamSeq, err)
	}
	log := a.log.With("stream_seq", adv.StreamSeq, "deliveries", adv.Deliveries)

	var job messages.Job
	decodeErr := json.Unmarshal(raw.Data, &job)
	rec := messages.DeadLetter{
		V: messages.Version, JobID: job.JobID, UserID: job.UserID, Language: job.Language, Region: job.Region,
		Subject: raw.Subject, StreamSeq: adv.StreamSeq, Consumer: adv.Consumer, Deliveries: adv.Deliveries,
		Reason: messages.DeadLetterMaxDeliveries, RunnerID: a.cfg.RunnerID, At: time.Now().UTC(),
		Detail: fmt.Sprintf("no runner acknowledged the job in %d deliveries", adv.Deliveries),
	}
	validID := decodeErr == nil && subjects.Token(job.JobID)
	if !validID {
		rec.JobID = "seq-" + strconv.FormatUint(adv.StreamSeq, 10)
		rec.Detail = "undecodable job, or one without a valid jobId"
	}
	log = log.With("job_id", rec.JobID, "trace_id", trace.IDOf(job.TraceParent))
	if err := a.recordDeadLetter(ctx, rec); err != nil {
		return err
	}
	if validID {
		res := a.internalError(&job, int(adv.Deliveries), adv.Timestamp, "the platform failed to run the job: "+rec.Detail)
		if err := a.publish(ctx, &job, res); err != nil {
			return err
		}
		a.metrics.Jobs.WithLabelValues(job.Language, string(res.Status)).Inc()
	}
	if err := jobs.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete job %d: %w", adv.StreamSeq, err)
	}
	log.Error("job dead-lettered: internal_error", "reason", rec.Reason, "language", job.Language)
	return nil
}

// recordDeadLetter stores rec once per job: a repeat is dropped by its msg id, or refused
// because a record is there already.
func (a *Agent) recordDeadLetter(ctx context.Context, rec messages.DeadLetter) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	_, err = a.js.Publish(ctx, subjects.DeadLetter(rec.JobID), data,
		jetstream.WithMsgID(subjects.DeadLetterMsgID(rec.JobID)), jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil && !wrongLastSequence(err) {
		return fmt.Errorf("store dead letter: %w", err)
	}
	return nil
}

// wrongLastSequence reports a publish refused because its subject holds a message already.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
