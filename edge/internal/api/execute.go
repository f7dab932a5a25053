package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/edge/internal/dispatch"
	"github.com/codeexec/codeexec/edge/internal/presence"
	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// maxBodyBytes admits the largest valid request (256 KiB of code and 1 MiB of stdin) even
// when JSON escaping swells it; the fields' own limits are checked after decoding.
const maxBodyBytes = 8 << 20

// executeRequest is the body of POST /api/v1/execute (Code) and /api/v2/execute (Files).
type executeRequest struct {
	Language   string          `json:"language"`
	Code       *string         `json:"code"`
	Files      []messages.File `json:"files"`
	Stdin      string          `json:"stdin"`
	Args       []string        `json:"args"`
	ProjectID  string          `json:"projectId"`
	SaveMetric *bool           `json:"saveMetric"`
	Wait       *bool           `json:"wait"`
	Region     string          `json:"region"`
	// RegionPolicy is "exact" (the default: the job runs in its region or is refused) or
	// "prefer" (when its region has no live runner for the language, the job goes to the
	// nearest region that has one; see regionsFor).
	RegionPolicy string           `json:"regionPolicy"`
	Limits       *messages.Limits `json:"limits"`
	// UserID is accepted for clients of the original API and ignored: identity comes
	// from the credential only.
	UserID json.RawMessage `json:"userId"`
}

func (s *Server) executeV1(c *fiber.Ctx) error { return s.execute(c, 1) }
func (s *Server) executeV2(c *fiber.Ctx) error { return s.execute(c, 2) }

func (s *Server) execute(c *fiber.Ctx, version int) error {
	var req executeRequest
	if err := decodeStrict(c.Body(), &req); err != nil {
		return err
	}
	return s.run(c, &req, version)
}

// run is the one execute path (v1, v2, saved projects): validate, take a concurrency
// lease, reserve the price, publish, and answer with the result or the job id.
func (s *Server) run(c *fiber.Ctx, req *executeRequest, version int) error {
	job, err := s.buildJob(req, version, userID(c))
	if err != nil {
		return err
	}
	// Before any lease or hold: a job the stream cannot take must leave nothing behind.
	if err := s.dispatch.Fits(job); err != nil {
		return jobTooLarge(err)
	}
	if err := s.placeJob(job, req.RegionPolicy); err != nil {
		return err
	}
	ctx := c.UserContext()
	// The lease is released once the result is here; a job still running (wait false, or
	// a 504) keeps it until its result is stored or the lease lapses.
	release, err := s.acquireLease(ctx, job)
	if err != nil {
		return err
	}
	// RecordsOwner: Submit records the job's owner once it is queued; should this edge die
	// before, the ledger gives the job up and releases its hold (ledger/internal/orphans).
	hold, err := rpc.Call[messages.ReserveRequest, messages.ReserveReply](ctx, s.nc, subjects.Reserve,
		messages.ReserveRequest{V: messages.Version, UserID: job.UserID, JobID: job.JobID, Language: job.Language, RecordsOwner: true})
	if err != nil {
		release()
		return fromRPC(err, "ledger")
	}
	job.PriceMicros = hold.PriceMicros
	tp := traceOf(c)
	job.TraceParent = tp.String()

	wait := req.Wait == nil || *req.Wait
	accepted := time.Now()
	if err := s.dispatch.Submit(ctx, job, wait); err != nil {
		release()
		aerr := s.dispatch.Abandon(ctx, job, "the job could not be queued")
		s.dispatch.Forget(job.JobID)
		switch {
		case errors.Is(aerr, dispatch.ErrStarted), errors.Is(aerr, dispatch.ErrResultStored):
			// The publish went through after all (its acknowledgement was lost): the job runs.
			return &Error{Status: http.StatusServiceUnavailable, Code: "service_unavailable", JobID: job.JobID, RetryAfter: 2,
				Message: fmt.Sprintf("the job queue answered too late, but job %s was queued and runs; poll GET /api/v1/jobs/%s", job.JobID, job.JobID)}
		case aerr != nil && errors.Is(err, dispatch.ErrNotRecorded):
			// Queued without its owner record, and not given up: the ledger gives it up
			// after its orphan grace, unless a runner starts it first.
			s.log.Warn("abandon a queued job whose owner was not recorded; the ledger gives it up unless it starts first", "job_id", job.JobID, "err", aerr)
			return &Error{Status: http.StatusServiceUnavailable, Code: "service_unavailable", JobID: job.JobID, RetryAfter: 2,
				Message: fmt.Sprintf("the job index does not answer right now; job %s was queued but is given up within a minute unless a runner starts it first: it is charged only if it runs (GET /api/usage lists it)", job.JobID)}
		case aerr != nil:
			s.log.Warn("abandon a job that was not queued; the ledger gives it up once its orphan grace passes", "job_id", job.JobID, "err", aerr)
		}
		if errors.Is(err, dispatch.ErrQueueFull) {
			return &Error{Status: http.StatusServiceUnavailable, Code: "queue_full",
				Message: "the job queue is full; try again shortly", RetryAfter: 5}
		}
		if errors.Is(err, dispatch.ErrUnavailable) {
			return &Error{Status: http.StatusServiceUnavailable, Code: "service_unavailable",
				Message: "the job queue does not answer right now; nothing was charged; try again shortly", RetryAfter: 2}
		}
		return jobTooLarge(err)
	}
	s.log.Info("job queued", "job_id", job.JobID, "trace_id", tp.ID(), "language", job.Language, "region", job.Region, "wait", wait)
	if !wait {
		return c.Status(http.StatusAccepted).JSON(fiber.Map{"succeeded": true, "jobId": job.JobID, "region": job.Region})
	}
	stopWatch := s.watchStranded(ctx, job)
	result, err := s.dispatch.Wait(ctx, job.JobID, s.cfg.WaitTimeout)
	if stopWatch() {
		release()
		return &Error{Status: http.StatusServiceUnavailable, Code: "no_runner", JobID: job.JobID,
			Message: fmt.Sprintf("job %s was cancelled before it started: region %s has had no live runner for %s for over %s; it will not run and costs nothing; try again shortly, or send \"regionPolicy\": \"prefer\"",
				job.JobID, job.Region, job.Language, presence.Expiry)}
	}
	if errors.Is(err, dispatch.ErrWaitTimeout) {
		return &Error{Status: http.StatusGatewayTimeout, Code: "wait_timeout", JobID: job.JobID,
			Message: fmt.Sprintf("the job is still running; poll GET /api/v1/jobs/%s", job.JobID)}
	}
	if err != nil {
		return err
	}
	release()
	s.m.executions.WithLabelValues(result.Language, string(result.Status)).Inc()
	s.m.execTime.WithLabelValues(result.Language).Observe(time.Since(accepted).Seconds())
	return c.JSON(executeAnswer(result))
}

type executeBody struct {
	Succeeded bool       `json:"succeeded"`
	Result    resultView `json:"result"`
}

func executeAnswer(r messages.Result) executeBody {
	return executeBody{Succeeded: r.Status != messages.StatusInternalError, Result: present(r)}
}

// buildJob validates a request and turns it into a job; nothing is published yet.
func (s *Server) buildJob(req *executeRequest, version int, user string) (*messages.Job, error) {
	if req.Language == "" {
		return nil, newError(http.StatusBadRequest, "invalid_input", "language is required")
	}
	lang, err := s.catalog.Find(req.Language)
	if err != nil {
		return nil, unknownLanguage(err)
	}
	var files []messages.File
	switch version {
	case 1:
		if req.Files != nil {
			return nil, newError(http.StatusBadRequest, "invalid_input", "v1 takes code; send files to /api/v2/execute")
		}
		if req.Code == nil {
			return nil, newError(http.StatusBadRequest, "invalid_input", "code is required")
		}
		files = []messages.File{{Filename: lang.SourceFile, Code: *req.Code, IsEntryPoint: true}}
	default:
		if req.Code != nil {
			return nil, newError(http.StatusBadRequest, "invalid_input", "v2 takes files; send code to /api/v1/execute")
		}
		files = req.Files
	}
	if err := messages.ValidateFiles(files); err != nil {
		if errors.Is(err, messages.ErrCodeTooLarge) {
			return nil, newError(http.StatusRequestEntityTooLarge, "code_too_large", "%s", err.Error())
		}
		return nil, newError(http.StatusBadRequest, "invalid_files", "%s", err.Error())
	}
	if len(req.Stdin) > messages.MaxStdinBytes {
		return nil, newError(http.StatusBadRequest, "stdin_too_large", "stdin is %d bytes, at most %d", len(req.Stdin), messages.MaxStdinBytes)
	}
	if err := messages.ValidateArgs(req.Args); err != nil {
		return nil, newError(http.StatusBadRequest, "invalid_input", "%s", err.Error())
	}
	region := s.cfg.Region
	if req.Region != "" {
		if !subjects.Token(req.Region) {
			return nil, newError(http.StatusBadRequest, "invalid_input", "region %s is not a valid region name", excerpt.Quote(req.Region))
		}
		region = req.Region
	}
	switch req.RegionPolicy {
	case "", regionExact, regionPrefer:
	default:
		return nil, newError(http.StatusBadRequest, "invalid_input", "regionPolicy %s: want %q or %q",
			excerpt.Quote(req.RegionPolicy), regionExact, regionPrefer)
	}
	if len(req.ProjectID) > 64 {
		return nil, newError(http.StatusBadRequest, "invalid_input", "projectId is too long")
	}
	var limits messages.Limits
	if req.Limits != nil {
		// Refused here, as a client's mistake; the runner would raise them to the minimum.
		if err := s.catalog.CheckRequest(lang, *req.Limits); err != nil {
			return nil, newError(http.StatusBadRequest, "invalid_limits", "%s", err.Error())
		}
		limits = s.catalog.Effective(lang, *req.Limits)
	}
	id, err := messages.NewJobID()
	if err != nil {
		return nil, err
	}
	return &messages.Job{
		V:           messages.Version,
		JobID:       id,
		UserID:      user,
		ProjectID:   req.ProjectID,
		Language:    lang.Name,
		Region:      region,
		Files:       files,
		Stdin:       req.Stdin,
		Args:        req.Args,
		Limits:      limits,
		SaveMetric:  req.SaveMetric == nil || *req.SaveMetric,
		SubmittedAt: time.Now().UTC(),
	}, nil
}

// jobTooLarge answers a *dispatch.TooLargeError with 413 job_too_large; other errors pass.
func jobTooLarge(err error) error {
	var tl *dispatch.TooLargeError
	if errors.As(err, &tl) {
		return newError(http.StatusRequestEntityTooLarge, "job_too_large",
			"the job is %d bytes once encoded as JSON, over the limit of %d bytes (a control character in code or stdin takes 6 bytes once escaped)",
			tl.Bytes, tl.Max)
	}
	return err
}

// unknownLanguage answers a name the catalog does not know (see languages.Find).
func unknownLanguage(err error) error {
	if errors.Is(err, languages.ErrUnknown) {
		return newError(http.StatusBadRequest, "unknown_language", "%s; GET /api/v1/languages lists them", err.Error())
	}
	return err
}

// decodeStrict decodes one JSON object, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return newError(http.StatusBadRequest, "invalid_json", "the body is not valid JSON")
		case errors.As(err, &typeErr):
			return newError(http.StatusBadRequest, "invalid_input", "field %s has the wrong type", excerpt.Quote(typeErr.Field))
		}
		// The decoder quotes an unknown field whole, however long: quote an excerpt.
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if name, uerr := strconv.Unquote(field); uerr == nil {
				field = name
			}
			return newError(http.StatusBadRequest, "invalid_input", "unknown field %s", excerpt.Quote(field))
		}
		return newError(http.StatusBadRequest, "invalid_input", "%s", excerpt.Cut(err.Error(), 2*excerpt.MaxBytes))
	}
	if dec.More() {
		return newError(http.StatusBadRequest, "invalid_json", "the body holds more than one JSON value")
	}
	return nil
}

// job answers GET /api/v1/jobs/:jobId for the job's owner only.
func (s *Server) job(c *fiber.Ctx) error {
	jobID := c.Params("jobId")
	owner, err := s.dispatch.OwnerOf(c.UserContext(), jobID)
	if errors.Is(err, dispatch.ErrNotFound) || (err == nil && owner != userID(c)) {
		return newError(http.StatusNotFound, "not_found", "no job %s", excerpt.Quote(jobID))
	}
	if err != nil {
		return err
	}
	result, err := s.dispatch.Result(c.UserContext(), jobID)
	if errors.Is(err, dispatch.ErrNotFound) {
		running, err := s.dispatch.Running(c.UserContext(), jobID)
		if err != nil {
			return err
		}
		status := "queued"
		if running {
			status = "running"
		}
		return c.JSON(fiber.Map{"jobId": jobID, "status": status})
	}
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"jobId": jobID, "status": "done", "result": present(result)})
}
