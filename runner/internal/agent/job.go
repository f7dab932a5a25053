package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/trace"
)

// jobMargin is what a job may take beyond its compile and run limits (container, unpack,
// stats, publishing) before it is abandoned as an infrastructure failure.
const jobMargin = time.Minute

// Outcomes counted in jobs_total besides the result statuses.
const (
	statusRequeued = "requeued" // infrastructure failure, handed back for a retry
	statusRejected = "rejected" // poison: undecodable or invalid
	statusDone     = "duplicate"
	statusRefused  = "refused" // the ledger would not hold its price: never run
)

// holdRefusal is the ledger's no to a job's hold: the job is not run, and not retried.
type holdRefusal struct{ reason string }

func (r *holdRefusal) Error() string { return r.reason }

// holdFor asks the ledger to hold the job's price before anything of the job runs (the
// sandbox asks it while it unpacks the files). The request is idempotent per job: the hold
// the publisher took is returned as it is, and a publisher that took none gets one now, or
// a refusal (insufficient funds, no such user, a hold closed already). The job runs only
// when the hold outlives it (limits are its effective limits), so that the ledger's expiry
// can never release it while the job can still end: a *holdRefusal says why not. Any other
// error is a platform failure (the ledger did not answer): the job is retried, never run
// free.
func (a *Agent) holdFor(ctx context.Context, job *messages.Job, lim messages.Limits) error {
	ctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	var reply messages.ReserveReply
	var err error
	// A ledger that is not there (restarting, or all of its processes down a moment) is
	// waited for within holdTimeout, so that its restart does not cost the job a delivery.
	for gap := 100 * time.Millisecond; ; gap = min(2*gap, 2*time.Second) {
		reply, err = rpc.Call[messages.ReserveRequest, messages.ReserveReply](ctx, a.nc, subjects.Reserve,
			messages.ReserveRequest{V: messages.Version, UserID: job.UserID, JobID: job.JobID, Language: job.Language})
		if !errors.Is(err, rpc.ErrUnavailable) && !rpc.IsCode(err, rpc.CodeShuttingDown) {
			break
		}
		t := time.NewTimer(gap)
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
			t.Stop()
		}
		break
	}
	var refused *rpc.Error
	switch {
	case errors.As(err, &refused) && refused.Code != rpc.CodeInternal && refused.Code != rpc.CodeShuttingDown:
		return &holdRefusal{reason: "the ledger refused the job: " + refused.Message}
	case err != nil:
		return fmt.Errorf("hold the job's price: %w", err)
	}
	need := time.Duration(lim.CompileTimeMs+lim.RunTimeMs)*time.Millisecond + jobMargin
	if left := time.Duration(reply.HoldRemainingMs) * time.Millisecond; left < need {
		return &holdRefusal{reason: fmt.Sprintf("the job waited too long: its reservation ends in %s, before the job could (%s)",
			left.Round(time.Second), need.Round(time.Second))}
	}
	return nil
}

// holdTimeout bounds the ledger's answer to a hold, a restart of the ledger included.
const holdTimeout = 20 * time.Second

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
	log = log.With("job_id", job.JobID, "trace_id", trace.IDOf(job.TraceParent))
	if err := a.check(&job, lang); err != nil {
		log.Error("invalid job, terminated", "err", logExcerpt(err.Error()))
		a.metrics.Jobs.WithLabelValues(lang.Name, statusRejected).Inc()
		if job.JobID != "" && subjects.Token(job.JobID) {
			res := a.internalError(&job, int(md.NumDelivered), start, "invalid job: "+logExcerpt(err.Error()))
			if err := a.publish(ctx, &job, res); err != nil {
				log.Error("publish result of invalid job", "err", err)
			}
		}
		_ = msg.TermWithReason("invalid job: " + logExcerpt(err.Error()))
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
	var used *sandbox.Container
	defer func() {
		if used != nil {
			a.dispose(ctx, lang.Name, used)
		}
	}()
	res, err := a.execute(ctx, lang, msg, &job, int(md.NumDelivered), &used)
	var refused *holdRefusal
	if errors.As(err, &refused) {
		log.Info("job refused by the ledger, not run", "reason", refused.reason)
		a.metrics.Jobs.WithLabelValues(lang.Name, statusRefused).Inc()
		res := a.internalError(&job, int(md.NumDelivered), start, refused.reason)
		if err := a.publish(ctx, &job, res); err != nil {
			log.Warn("publish result of a refused job", "err", err)
			a.retry(ctx, msg, md, &job, start, err)
			return
		}
		_ = msg.TermWithReason("refused by the ledger")
		return
	}
	if err != nil {
		log.Warn("job failed on infrastructure", "err", logExcerpt(err.Error()))
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
	a.metrics.RunsPerJob.WithLabelValues(lang.Name).Observe(float64(md.NumDelivered))
	a.ack(ctx, msg, log)
	log.Info("job done", "status", res.Status, "wall_ms", res.WallTimeMs, "total_ms", time.Since(start).Milliseconds())
}

// dispose removes a job's container and has the pool replace it: after the job's result is
// out, so that neither delays it (both cost the daemon tens of milliseconds of CPU). Run
// waits for the removal before returning.
func (a *Agent) dispose(ctx context.Context, lang string, c *sandbox.Container) {
	a.removals.Add(1)
	go func() {
		defer a.removals.Done()
		a.sb.Remove(context.WithoutCancel(ctx), c)
	}()
	a.pool.Refill(lang)
}

// claim takes the job's claim in the job index (subjects.JobRunningKey) before anything of
// the job runs: it is the arbiter between this runner and an edge giving the job up at the
// same moment (whoever creates the claim first decides), or the ledger giving up a job that
// was not queued in time, and it lets GET /api/v1/jobs/:jobId say "running". A claim an
// earlier runner left (it died holding the job) is taken over; an AbandonedClaim is a
// refusal: the job is not run.
func (a *Agent) claim(ctx context.Context, jobID string) error {
	if a.index == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	key := subjects.JobRunningKey(jobID)
	// Each step rides out a leader election; a create retried after it went through
	// finds this runner's own claim below.
	_, err := natsconn.Retry(ctx, holdTimeout, 2*time.Second, func(ctx context.Context) (uint64, error) {
		return a.index.Create(ctx, key, []byte(a.cfg.RunnerID))
	})
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("claim the job: %w", err)
	}
	e, err := natsconn.Retry(ctx, holdTimeout, 2*time.Second, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
		return a.index.Get(ctx, key)
	})
	if err != nil {
		return fmt.Errorf("read the job's claim: %w", err)
	}
	switch string(e.Value()) {
	case subjects.AbandonedClaim:
		return &holdRefusal{reason: "the job was given up before it started (by its edge, or by the ledger when it was not queued in time): not run, not charged"}
	case a.cfg.RunnerID:
		return nil
	}
	if _, err := a.index.Update(ctx, key, []byte(a.cfg.RunnerID), e.Revision()); err != nil {
		return fmt.Errorf("take over the job's claim from %s: %w", excerpt.Quote(string(e.Value())), err)
	}
	return nil
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
//
// The container it took is left in *used: handle releases it once the result is out.
func (a *Agent) execute(ctx context.Context, lang *languages.Language, msg jetstream.Msg, job *messages.Job, attempt int, used **sandbox.Container) (messages.Result, error) {
	lim := a.catalog.Effective(lang, job.Limits)
	timeout := time.Duration(lim.CompileTimeMs+lim.RunTimeMs)*time.Millisecond + jobMargin
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	stop := a.progress(ctx, msg)
	defer stop()

	c, warm, err := a.pool.Take(ctx, lang.Name, job.JobID, lim)
	if err != nil {
		return messages.Result{}, err
	}
	a.log.Debug("container for job", "job_id", job.JobID, "container_id", c.ID[:12], "warm", warm)
	*used = c

	out, err := a.sb.Run(ctx, c, sandbox.Job{
		ID: job.JobID, Language: lang, Files: job.Files, Stdin: job.Stdin, Args: job.Args, Limits: lim,
		// No job runs unclaimed (see claim), nor without a live hold of its price: the
		// publisher's, or one taken now.
		Ready: func(ctx context.Context) error {
			if err := a.claim(ctx, job.JobID); err != nil {
				return err
			}
			return a.holdFor(ctx, job, lim)
		},
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
	res.Truncated = out.Truncated
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
	log := a.log.With("job_id", job.JobID, "trace_id", trace.IDOf(job.TraceParent), "language", job.Language, "attempt", md.NumDelivered)
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
		Reason: messages.DeadLetterInfrastructure, Detail: logExcerpt(cause.Error()), RunnerID: a.cfg.RunnerID, At: time.Now().UTC(),
	}
	if err := a.recordDeadLetter(ctx, rec); err != nil {
		log.Warn("record dead letter", "err", err)
	}
	res := a.internalError(job, int(md.NumDelivered), start, "the platform failed to run the job")
	if err := a.publish(ctx, job, res); err != nil {
		// Leave it to AckWait: the dead-letter path picks it up after MaxDeliver.
		log.Error("publish internal_error result on the last delivery", "err", err, "cause", logExcerpt(cause.Error()))
		return
	}
	a.metrics.Jobs.WithLabelValues(job.Language, string(res.Status)).Inc()
	log.Error("job failed on every delivery: internal_error", "cause", logExcerpt(cause.Error()))
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
	data, err := encodeResult(&res)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, resultStoreBudget+15*time.Second)
	defer cancel()
	ack, err := a.storeResult(ctx, job.JobID, data)
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
	switch {
	case job.Notify == "":
	case !subjects.IsNotify(job.Notify, job.JobID):
		// A job names where its result goes; only the contract's notify subjects are
		// written to, never another service's subject.
		a.log.Warn("notify subject outside the contract; not notified", "job_id", job.JobID, "subject", logExcerpt(job.Notify))
	default:
		if err := a.nc.Publish(job.Notify, data); err != nil {
			a.log.Warn("notify", "job_id", job.JobID, "subject", job.Notify, "err", err)
		}
	}
	return nil
}

// Storing a result is retried through a NATS leader election or a lost connection, with
// backoff, for at most resultStoreBudget; then the job is left to its ack wait.
const (
	resultStoreBudget   = 20 * time.Second
	resultStoreAttempt  = 5 * time.Second
	resultStoreFirstGap = 100 * time.Millisecond
	resultStoreMaxGap   = 2 * time.Second
)

// storeResult publishes a job's result on its results subject, once: the msg id and the
// expectation that the subject is empty make a retry of a publish that did land answer
// "wrong last sequence" (or a duplicate ack), which publish handles, never a second copy.
func (a *Agent) storeResult(ctx context.Context, jobID string, data []byte) (*jetstream.PubAck, error) {
	ctx, cancel := context.WithTimeout(ctx, resultStoreBudget)
	defer cancel()
	gap := resultStoreFirstGap
	for attempt := 1; ; attempt++ {
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, resultStoreAttempt)
		ack, err := a.js.Publish(attemptCtx, subjects.Results(jobID), data,
			jetstream.WithMsgID(subjects.ResultMsgID(jobID)), jetstream.WithExpectLastSequencePerSubject(0))
		cancelAttempt()
		if err == nil || wrongLastSequence(err) {
			return ack, err
		}
		a.log.Warn("store result; trying again", "job_id", jobID, "attempt", attempt, "err", err)
		t := time.NewTimer(gap/2 + rand.N(gap))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("store result (%d attempts): %w", attempt, err)
		case <-t.C:
		}
		a.metrics.ResultRetries.Inc()
		gap = min(gap*2, resultStoreMaxGap)
	}
}

// encodeResult encodes res within messages.MaxResultBytes. The sandbox bounds the output
// by its encoded size already; should the whole still be too large (the job's saved code
// on top), the saved code goes first, then the output is cut further.
func encodeResult(res *messages.Result) ([]byte, error) {
	for {
		data, err := json.Marshal(res)
		if err != nil {
			return nil, fmt.Errorf("encode result: %w", err)
		}
		over := len(data) - messages.MaxResultBytes
		switch {
		case over <= 0:
			return data, nil
		case len(res.Files) > 0:
			res.Files = nil
		case len(res.Stdout)+len(res.Stderr)+len(res.CompileOutput) > 0:
			// Each kept byte costs at most 6 encoded: cut enough raw bytes for the excess.
			cut := over/6 + 1
			res.Stdout, cut = cutTail(res.Stdout, cut)
			res.Stderr, cut = cutTail(res.Stderr, cut)
			res.CompileOutput, _ = cutTail(res.CompileOutput, cut)
			res.Truncated = true
		default:
			return nil, fmt.Errorf("encode result: %d bytes without any output, over %d", len(data), messages.MaxResultBytes)
		}
	}
}

// cutTail removes up to n bytes from the end of s; it returns what is left of n.
func cutTail(s string, n int) (string, int) {
	k := min(n, len(s))
	return s[:len(s)-k], n - k
}

// excerptBytes bounds what of a program's output or a request's input reaches a log line,
// a dead letter or an error.
const excerptBytes = 256

// logExcerpt is the head of s, at most excerptBytes.
func logExcerpt(s string) string { return excerpt.Cut(s, excerptBytes) }

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
