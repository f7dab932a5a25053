package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

// jobMargin is what a job may take beyond its compile and run limits (container, unpack,
// stats, publishing) before it is abandoned as an infrastructure failure.
const jobMargin = time.Minute

// Outcomes counted in jobs_total besides the result statuses.
const (
	statusRequeued = "requeued" // infrastructure failure, handed back for a retry
	statusRejected = "rejected" // poison: undecodable or invalid
	statusDone     = "duplicate"
)

// handle runs one job to its end: a result published and the message acked, or the
// message handed back (infrastructure failure) or terminated (poison).
func (a *Agent) handle(ctx context.Context, lang *languages.Language, msg jetstream.Msg, results jetstream.Stream) {
	start := time.Now()
	log := a.log.With("language", lang.Name)
	md, err := msg.Metadata()
	if err != nil {
		log.Error("job message without metadata", "err", err)
		_ = msg.TermWithReason("no jetstream metadata")
		return
	}
	log = log.With("stream_seq", md.Sequence.Stream, "attempt", md.NumDelivered)

	var job messages.Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		log.Error("undecodable job, terminated", "err", err)
		a.metrics.Jobs.WithLabelValues(lang.Name, statusRejected).Inc()
		_ = msg.TermWithReason("undecodable job")
		return
	}
	log = log.With("job_id", job.JobID)
	if err := a.check(&job, lang); err != nil {
		log.Error("invalid job, terminated", "err", err)
		a.metrics.Jobs.WithLabelValues(lang.Name, statusRejected).Inc()
		if job.JobID != "" && subjects.Token(job.JobID) {
			res := a.internalError(&job, int(md.NumDelivered), start, "invalid job: "+err.Error())
			if err := a.publish(ctx, &job, res); err != nil {
				log.Error("publish result of invalid job", "err", err)
			}
		}
		_ = msg.TermWithReason("invalid job: " + err.Error())
		return
	}

	// A redelivery after a crash between publishing and acking: the result is stored. (On
	// a first delivery the lookup is skipped: a stored result there could only come from a
	// duplicate publish, and the result stream keeps the first result whatever happens.)
	if md.NumDelivered > 1 {
		lookupCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = results.GetLastMsgForSubject(lookupCtx, subjects.Results(job.JobID))
		cancel()
		switch {
		case err == nil:
			log.Info("result already stored, acking the redelivered job")
			a.metrics.Jobs.WithLabelValues(lang.Name, statusDone).Inc()
			a.ack(ctx, msg, log)
			return
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			log.Warn("look up stored result", "err", err)
			a.retry(ctx, msg, md, &job, start, fmt.Errorf("look up stored result: %w", err))
			return
		}
	}
	a.markRunning(ctx, job.JobID, log)

	res, err := a.execute(ctx, lang, msg, &job, int(md.NumDelivered))
	if err != nil {
		log.Warn("job failed on infrastructure", "err", err)
		a.retry(ctx, msg, md, &job, start, err)
		return
	}
	res.StartedAt, res.FinishedAt = start, time.Now()
	if err := a.publish(ctx, &job, res); err != nil {
		log.Warn("publish result", "err", err)
		a.retry(ctx, msg, md, &job, start, err)
		return
	}
	a.metrics.Jobs.WithLabelValues(lang.Name, string(res.Status)).Inc()
	a.metrics.JobDuration.WithLabelValues(lang.Name).Observe(time.Since(start).Seconds())
	a.ack(ctx, msg, log)
	log.Info("job done", "status", res.Status, "wall_ms", res.WallTimeMs, "total_ms", time.Since(start).Milliseconds())
}

// markRunning records in the job index, without delaying the job, that it has started here,
// so that GET /api/v1/jobs/:jobId can say "running".
func (a *Agent) markRunning(ctx context.Context, jobID string, log *slog.Logger) {
	if a.index == nil {
		return
	}
	a.removals.Add(1) // waited for at drain, like removals
	go func() {
		defer a.removals.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := a.index.Put(ctx, subjects.JobRunningKey(jobID), []byte(a.cfg.RunnerID)); err != nil {
			log.Warn("mark job running", "err", err)
		}
	}()
}

func (a *Agent) check(job *messages.Job, lang *languages.Language) error {
	if err := job.Check(); err != nil {
		return err
	}
	if !subjects.Token(job.JobID) {
		return fmt.Errorf("jobId %q is not a subject token", job.JobID)
	}
	l, ok := a.catalog.Resolve(job.Language)
	if !ok || l.Name != lang.Name {
		return fmt.Errorf("language %q on the %s subject", job.Language, lang.Name)
	}
	job.Language = l.Name // an alias becomes the name
	if len(job.Stdin) > messages.MaxStdinBytes {
		return fmt.Errorf("stdin of %d bytes: at most %d", len(job.Stdin), messages.MaxStdinBytes)
	}
	if err := messages.ValidateArgs(job.Args); err != nil {
		return err
	}
	return nil
}

// execute runs the job in a fresh container, with in-progress pings, and builds its result.
// The error is an infrastructure failure.
func (a *Agent) execute(ctx context.Context, lang *languages.Language, msg jetstream.Msg, job *messages.Job, attempt int) (messages.Result, error) {
	lim := a.catalog.Effective(lang, job.Limits)
	timeout := time.Duration(lim.CompileTimeMs+lim.RunTimeMs)*time.Millisecond + jobMargin
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	stop := a.progress(ctx, msg)
	defer stop()

	c, warm, err := a.pool.Take(ctx, lang.Name, job.JobID)
	if err != nil {
		return messages.Result{}, err
	}
	a.log.Debug("container for job", "job_id", job.JobID, "container_id", c.ID[:12], "warm", warm)
	defer func() {
		// Removal never delays the result; Run waits for it before returning.
		a.removals.Add(1)
		go func() {
			defer a.removals.Done()
			a.sb.Remove(context.WithoutCancel(ctx), c)
		}()
	}()

	out, err := a.sb.Run(ctx, c, sandbox.Job{
		ID: job.JobID, Language: lang, Files: job.Files, Stdin: job.Stdin, Args: job.Args, Limits: lim,
	})
	if err != nil {
		return messages.Result{}, err
	}
	res := messages.NewResult(job)
	res.RunnerID = a.cfg.RunnerID
	res.Attempt = attempt
	res.Status = out.Status
	res.Stdout, res.Stderr, res.CompileOutput = out.Stdout, out.Stderr, out.CompileOutput
	res.ExitCode, res.Signal, res.ErrorMessage = out.ExitCode, out.Signal, out.ErrorMessage
	res.WallTimeMs = out.WallTime.Milliseconds()
	res.CPUTimeMs = out.CPUTime.Milliseconds()
	res.MemoryBytes = out.MemoryBytes
	return res, nil
}

// progress pings the server every ProgressEvery so AckWait does not run out on long jobs.
func (a *Agent) progress(ctx context.Context, msg jetstream.Msg) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// retry hands a job that failed on infrastructure back for redelivery, or, on its last
// delivery, publishes an internal_error result (never charged) and terminates it.
func (a *Agent) retry(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, job *messages.Job, start time.Time, cause error) {
	log := a.log.With("job_id", job.JobID, "language", job.Language, "attempt", md.NumDelivered)
	if md.NumDelivered < a.maxDeliver[job.Language] {
		a.metrics.Jobs.WithLabelValues(job.Language, statusRequeued).Inc()
		if err := msg.NakWithDelay(a.cfg.NakDelay); err != nil {
			log.Warn("nak job", "err", err)
		}
		return
	}
	rec := messages.DeadLetter{
		V: messages.Version, JobID: job.JobID, UserID: job.UserID, Language: job.Language, Region: job.Region,
		Subject: msg.Subject(), StreamSeq: md.Sequence.Stream, Consumer: md.Consumer, Deliveries: md.NumDelivered,
		Reason: messages.DeadLetterInfrastructure, Detail: cause.Error(), RunnerID: a.cfg.RunnerID, At: time.Now().UTC(),
	}
	if err := a.recordDeadLetter(ctx, rec); err != nil {
		log.Warn("record dead letter", "err", err)
	}
	res := a.internalError(job, int(md.NumDelivered), start, "the platform failed to run the job")
	if err := a.publish(ctx, job, res); err != nil {
		// Leave it to AckWait: the dead-letter path picks it up after MaxDeliver.
		log.Error("publish internal_error result on the last delivery", "err", err, "cause", cause)
		return
	}
	a.metrics.Jobs.WithLabelValues(job.Language, string(res.Status)).Inc()
	log.Error("job failed on every delivery: internal_error", "cause", cause)
	_ = msg.TermWithReason("infrastructure failure on the last delivery")
}

func (a *Agent) internalError(job *messages.Job, attempt int, start time.Time, msg string) messages.Result {
	res := messages.NewResult(job)
	res.RunnerID = a.cfg.RunnerID
	res.Attempt = attempt
	res.Status = messages.StatusInternalError
	res.ErrorMessage = msg
	res.StartedAt, res.FinishedAt = start, time.Now()
	return res
}

// publish stores the result, then tells the waiting edge, if any. The first result stored
// for a job wins: a publish is refused when the job's subject holds one already (and a
// repeat within the dedupe window is dropped by its msg id), so a late result of a job that
// was dead-lettered, or run twice, never replaces the one the edge and the ledger saw.
// The edge is then told the stored result, not this one.
func (a *Agent) publish(ctx context.Context, job *messages.Job, res messages.Result) error {
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ack, err := a.js.Publish(ctx, subjects.Results(job.JobID), data,
		jetstream.WithMsgID(subjects.ResultMsgID(job.JobID)), jetstream.WithExpectLastSequencePerSubject(0))
	switch {
	case err != nil && !wrongLastSequence(err):
		return fmt.Errorf("store result: %w", err)
	case err != nil || ack.Duplicate:
		stored, err := a.storedResult(ctx, job.JobID)
		if err != nil {
			return err
		}
		a.log.Info("a result was stored already; kept it", "job_id", job.JobID,
			"stored_status", stored.status, "dropped_status", res.Status)
		data = stored.data
	}
	if job.Notify != "" {
		if err := a.nc.Publish(job.Notify, data); err != nil {
			a.log.Warn("notify", "job_id", job.JobID, "subject", job.Notify, "err", err)
		}
	}
	return nil
}

type storedResult struct {
	data   []byte
	status messages.Status
}

func (a *Agent) storedResult(ctx context.Context, jobID string) (storedResult, error) {
	results, err := a.js.Stream(ctx, subjects.ResultsStream)
	if err != nil {
		return storedResult{}, fmt.Errorf("results stream: %w", err)
	}
	m, err := results.GetLastMsgForSubject(ctx, subjects.Results(jobID))
	if err != nil {
		return storedResult{}, fmt.Errorf("read stored result: %w", err)
	}
	var r messages.Result
	_ = json.Unmarshal(m.Data, &r)
	return storedResult{data: m.Data, status: r.Status}, nil
}

func (a *Agent) ack(ctx context.Context, msg jetstream.Msg, log interface{ Warn(string, ...any) }) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("ack job", "err", err)
	}
}
