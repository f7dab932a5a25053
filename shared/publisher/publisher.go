// Package publisher lets an internal CodeExec service submit jobs straight onto NATS
// JetStream, as the HTTP edge does, and wait for their results: it validates the request,
// reserves the price with the ledger (ledger.reserve), publishes the job on
// exec.jobs.<region>.<language> with its id as Nats-Msg-Id, and hears the result on one
// notify subscription per Publisher (exec.notify.<owner>.>), reading the RESULTS stream
// (the record) when a notification was missed.
//
// The NATS user needs to publish exec.jobs.>, ledger.reserve, $JS.API.STREAM.INFO.JOBS,
// $JS.API.STREAM.INFO.RESULTS, $JS.API.DIRECT.GET.RESULTS.> and
// $JS.API.STREAM.MSG.GET.RESULTS, and to subscribe to exec.notify.<owner>.> and _INBOX.>
// (the replies). It writes nothing else: not the results stream, not the edge's job index.
package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Defaults of Options.
const (
	DefaultRegion       = "local"
	DefaultNotifyOwner  = "publisher"
	DefaultPollInterval = 2 * time.Second
)

// Options tunes a Publisher. The zero value works against a region named "local" with
// the built-in language table.
type Options struct {
	// Region whose runners run the jobs (CODEEXEC_REGION); a JobRequest may name another.
	Region string
	// NotifyOwner is the <owner> token of the notify subjects exec.notify.<owner>.<jobId>
	// this Publisher subscribes to (default "publisher", which the shipped NATS config's
	// publisher user may read). Publishers that share a NATS user but must not hear each
	// other's results need owners of their own, and the permissions to match.
	NotifyOwner string
	// Languages resolves names and aliases and checks limits; default the built-in table.
	// Pass the runners' table when they use CODEEXEC_LANGUAGES_FILE.
	Languages *languages.Catalog
	// PollInterval is how often Wait also reads the results stream, in case a
	// notification was lost (a reconnect, say). Default DefaultPollInterval.
	PollInterval time.Duration
	// Log receives warnings (malformed notifications, failed reads while waiting).
	Log *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.NotifyOwner == "" {
		o.NotifyOwner = DefaultNotifyOwner
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Languages == nil {
		cat, err := languages.Default()
		if err != nil {
			return o, fmt.Errorf("load the built-in language table: %w", err)
		}
		o.Languages = cat
	}
	var errs []error
	if !subjects.Token(o.Region) {
		errs = append(errs, fmt.Errorf("region %q: use letters, digits, - and _", o.Region))
	}
	if !subjects.Token(o.NotifyOwner) {
		errs = append(errs, fmt.Errorf("notify owner %q: use letters, digits, - and _", o.NotifyOwner))
	}
	return o, errors.Join(errs...)
}

// Publisher submits jobs and waits for their results. It is safe for concurrent use;
// create one per process (or per notify owner) and Close it when done.
type Publisher struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	sub  *nats.Subscription

	mu      sync.Mutex
	waiters map[string]*Pending

	bindMu        sync.Mutex
	results       jetstream.Stream
	jobMaxMsgSize int // the JOBS stream's MaxMsgSize once read; 0 before
}

// New subscribes to the notify subjects of opts.NotifyOwner on nc, so that no result of
// a job submitted afterwards can arrive unheard.
func New(nc *nats.Conn, opts Options) (*Publisher, error) {
	if nc == nil {
		return nil, errors.New("new publisher: no NATS connection")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("new publisher: jetstream: %w", err)
	}
	p := &Publisher{nc: nc, js: js, opts: opts, waiters: make(map[string]*Pending)}
	p.sub, err = nc.Subscribe(subjects.NotifyAll(opts.NotifyOwner), p.onNotify)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subjects.NotifyAll(opts.NotifyOwner), err)
	}
	// The subscription must be known to the server before any job names it.
	if err := nc.Flush(); err != nil {
		_ = p.sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to %s: %w", subjects.NotifyAll(opts.NotifyOwner), err)
	}
	return p, nil
}

// Close ends the notify subscription. Pending jobs can still be waited for: Wait then
// reads the results stream every PollInterval. It does not close the NATS connection.
func (p *Publisher) Close() error {
	if err := p.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("unsubscribe %s: %w", p.sub.Subject, err)
	}
	return nil
}

// JobRequest is one job to run. UserID, Language and Code or Files are required.
type JobRequest struct {
	// JobID is optional: empty picks a random one. Submitting the same JobID again (a
	// retry after a lost answer) reserves nothing twice, and JetStream drops a second
	// publish within the job stream's 2-minute duplicate window. Letters, digits, - and _.
	JobID string
	// UserID is the account the ledger charges.
	UserID string
	// Language is a name or alias of the language table ("python", "py").
	Language string
	// Code is the source of a single-file job, saved under the language's source file
	// name; or give Files (exactly one entry point), not both.
	Code  string
	Files []messages.File
	Stdin string
	Args  []string
	// ProjectID is kept in the execution record (at most 64 bytes).
	ProjectID string
	// Limits may lower the language's defaults; zero fields keep them. A field set below
	// the language's working minimum is refused.
	Limits messages.Limits
	// SaveMetric keeps the code, stdout and stderr in the execution record (the HTTP API's
	// default; here it must be asked for). Figures are always kept.
	SaveMetric bool
	// Region overrides Options.Region for this job.
	Region string
}

// NewJobID returns a random job id (32 hex digits), as the edge makes them.
func NewJobID() (string, error) { return messages.NewJobID() }

// maxProjectIDBytes bounds JobRequest.ProjectID, as the edge does.
const maxProjectIDBytes = 64

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// Job validates req and turns it into the job Submit would publish, without its price
// and notify subject. It does no I/O: a request it refuses changes nothing anywhere.
func (p *Publisher) Job(req JobRequest) (*messages.Job, error) {
	if strings.TrimSpace(req.UserID) == "" {
		return nil, invalid("userId is required")
	}
	if req.Language == "" {
		return nil, invalid("language is required")
	}
	lang, err := p.opts.Languages.Find(req.Language)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if !subjects.Token(lang.Name) {
		return nil, invalid("language %q is not a subject token", lang.Name)
	}
	files := req.Files
	switch {
	case req.Code != "" && req.Files != nil:
		return nil, invalid("give code or files, not both")
	case req.Code == "" && req.Files == nil:
		return nil, invalid("code or files is required")
	case req.Files == nil:
		files = []messages.File{{Filename: lang.SourceFile, Code: req.Code, IsEntryPoint: true}}
	}
	if err := messages.ValidateFiles(files); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if len(req.Stdin) > messages.MaxStdinBytes {
		return nil, invalid("stdin is %d bytes, at most %d", len(req.Stdin), messages.MaxStdinBytes)
	}
	if err := messages.ValidateArgs(req.Args); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if len(req.ProjectID) > maxProjectIDBytes {
		return nil, invalid("projectId is %d bytes, at most %d", len(req.ProjectID), maxProjectIDBytes)
	}
	region := p.opts.Region
	if req.Region != "" {
		region = req.Region
	}
	if !subjects.Token(region) {
		return nil, invalid("region %q: use letters, digits, - and _", region)
	}
	var limits messages.Limits
	if req.Limits != (messages.Limits{}) {
		if err := p.opts.Languages.CheckRequest(lang, req.Limits); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		limits = p.opts.Languages.Effective(lang, req.Limits)
	}
	jobID := req.JobID
	if jobID == "" {
		if jobID, err = NewJobID(); err != nil {
			return nil, err
		}
	} else if !subjects.Token(jobID) {
		return nil, invalid("jobId %q: use letters, digits, - and _", jobID)
	}
	return &messages.Job{
		V:           messages.Version,
		JobID:       jobID,
		UserID:      req.UserID,
		ProjectID:   req.ProjectID,
		Language:    lang.Name,
		Region:      region,
		Files:       files,
		Stdin:       req.Stdin,
		Args:        req.Args,
		Limits:      limits,
		SaveMetric:  req.SaveMetric,
		SubmittedAt: time.Now().UTC(),
	}, nil
}

// JetStream API error codes (nats-server's errors.json).
const (
	jsErrStoreFailed     jetstream.ErrorCode = 10077 // the stream refused the message (full)
	jsErrMessageTooLarge jetstream.ErrorCode = 10054 // message size exceeds maximum allowed
)

// headerAllowance covers the Nats-Msg-Id header published with a job, which counts
// toward the stream's maximum message size and the connection's maximum payload.
const headerAllowance = 256

// maxJobBytes is the largest encoded job that can be published: the smaller of the JOBS
// stream's maximum message size (read once) and the connection's maximum payload.
func (p *Publisher) maxJobBytes(ctx context.Context) (int, error) {
	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	if p.jobMaxMsgSize == 0 {
		jobs, err := p.js.Stream(ctx, subjects.JobsStream)
		if err != nil {
			return 0, fmt.Errorf("read the %s stream's settings: %w", subjects.JobsStream, err)
		}
		p.jobMaxMsgSize = int(jobs.CachedInfo().Config.MaxMsgSize)
		if p.jobMaxMsgSize == 0 {
			p.jobMaxMsgSize = -1 // no limit of its own
		}
	}
	max := int(p.nc.MaxPayload())
	if p.jobMaxMsgSize > 0 && (max <= 0 || p.jobMaxMsgSize < max) {
		max = p.jobMaxMsgSize
	}
	return max, nil
}

// fits reports a *TooLargeError when job, priced and with its notify subject, would be
// too large to publish.
func (p *Publisher) fits(ctx context.Context, job *messages.Job) error {
	probe := *job
	probe.PriceMicros = math.MaxInt64
	probe.Notify = subjects.Notify(p.opts.NotifyOwner, job.JobID)
	body, err := json.Marshal(&probe)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	max, err := p.maxJobBytes(ctx)
	if err != nil {
		return err
	}
	if size := len(body) + headerAllowance; max > 0 && size > max {
		return &TooLargeError{Bytes: size, Max: max}
	}
	return nil
}

// Submit validates req, reserves its price with the ledger and publishes the job. A
// request that is invalid or too large (ErrInvalidRequest) or that the ledger refuses
// (*RefusedError, e.g. ErrInsufficientFunds) publishes nothing. An error after the
// reservation (the publish failed, or its acknowledgement was lost) leaves the hold to
// expire, unless Submit is called again with the same JobID, which is safe.
func (p *Publisher) Submit(ctx context.Context, req JobRequest) (*Pending, error) {
	job, err := p.Job(req)
	if err != nil {
		return nil, err
	}
	if err := p.fits(ctx, job); err != nil {
		return nil, err
	}
	hold, err := rpc.Call[messages.ReserveRequest, messages.ReserveReply](ctx, p.nc, subjects.Reserve,
		messages.ReserveRequest{V: messages.Version, UserID: job.UserID, JobID: job.JobID, Language: job.Language})
	if err != nil {
		var refusal *rpc.Error
		if errors.As(err, &refusal) {
			return nil, &RefusedError{JobID: job.JobID, Code: refusal.Code, Message: refusal.Message}
		}
		return nil, fmt.Errorf("reserve the price of job %s: %w", job.JobID, err)
	}
	job.PriceMicros = hold.PriceMicros
	job.Notify = subjects.Notify(p.opts.NotifyOwner, job.JobID)
	body, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", job.JobID, err)
	}
	// Registered before publishing, so that a fast result is not missed.
	pd := p.register(job, hold)
	subject := subjects.Jobs(job.Region, job.Language)
	if _, err := p.js.Publish(ctx, subject, body, jetstream.WithMsgID(job.JobID)); err != nil {
		p.forget(pd)
		var apiErr *jetstream.APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrStoreFailed:
			return nil, fmt.Errorf("publish job %s on %s: %w", job.JobID, subject, ErrQueueFull)
		case errors.Is(err, nats.ErrMaxPayload) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrMessageTooLarge):
			return nil, fmt.Errorf("publish job %s on %s: %w", job.JobID, subject, &TooLargeError{Bytes: len(body) + headerAllowance})
		}
		return nil, fmt.Errorf("publish job %s on %s (retry with the same JobID): %w", job.JobID, subject, err)
	}
	return pd, nil
}

// Run submits req and waits for its result, as long as ctx allows.
func (p *Publisher) Run(ctx context.Context, req JobRequest) (messages.Result, error) {
	pd, err := p.Submit(ctx, req)
	if err != nil {
		return messages.Result{}, err
	}
	return pd.Wait(ctx)
}

// Result reads a job's result from the results stream, or ErrNotFound while there is
// none. It works for any job id, whoever submitted it.
func (p *Publisher) Result(ctx context.Context, jobID string) (messages.Result, error) {
	if !subjects.Token(jobID) {
		return messages.Result{}, fmt.Errorf("result of %q: %w", jobID, ErrNotFound)
	}
	results, err := p.resultStream(ctx)
	if err != nil {
		return messages.Result{}, err
	}
	r, err := streams.StoredResult(ctx, results, jobID)
	if errors.Is(err, streams.ErrNoResult) {
		return messages.Result{}, fmt.Errorf("result of %s: %w", jobID, ErrNotFound)
	}
	return r, err
}

func (p *Publisher) resultStream(ctx context.Context) (jetstream.Stream, error) {
	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	if p.results == nil {
		s, err := p.js.Stream(ctx, subjects.ResultsStream)
		if err != nil {
			return nil, fmt.Errorf("bind the %s stream: %w", subjects.ResultsStream, err)
		}
		p.results = s
	}
	return p.results, nil
}
