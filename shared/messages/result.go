package messages

import (
	"time"

	"github.com/codeexec/codeexec/shared/trace"
)

// Status is a result's runTimeStatus.
type Status string

// The status taxonomy of the design. Only StatusInternalError means the platform failed;
// it is never charged.
const (
	StatusSucceeded     Status = "succeeded"
	StatusCompileError  Status = "compile_error"
	StatusRuntimeError  Status = "runtime_error"
	StatusTimeLimit     Status = "time_limit_exceeded"
	StatusMemoryLimit   Status = "memory_limit_exceeded"
	StatusOutputLimit   Status = "output_limit_exceeded"
	StatusInternalError Status = "internal_error"
)

// Chargeable reports whether a result of this status is paid for.
func (s Status) Chargeable() bool { return s != StatusInternalError && s != "" }

// Result is stored on subjects.Results(jobID) in the results stream (Nats-Msg-Id
// "res-<jobID>") and sent to Job.Notify. It repeats what the ledger needs from the job so
// that charging and execution records never have to look the job up.
type Result struct {
	V         int    `json:"v"`
	JobID     string `json:"jobId"`
	UserID    string `json:"userId"`
	ProjectID string `json:"projectId,omitempty"`
	Language  string `json:"language"`
	Region    string `json:"region"`
	RunnerID  string `json:"runnerId,omitempty"`

	Status        Status `json:"runTimeStatus"`
	Stdout        string `json:"stdout"`
	Stderr        string `json:"stderr"`
	CompileOutput string `json:"compileOutput,omitempty"`
	ExitCode      *int   `json:"exitCode"`
	// Truncated says the output was cut at its limit (output_limit_exceeded, or a compile
	// error whose output was too long): Stdout, Stderr or CompileOutput hold its head.
	Truncated    bool   `json:"truncated,omitempty"`
	Signal       string `json:"signal,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`

	WallTimeMs  int64 `json:"wallTimeMs"`
	CPUTimeMs   int64 `json:"cpuTimeMs"`
	MemoryBytes int64 `json:"memoryBytes"`

	PriceMicros int64 `json:"priceMicros"`
	SaveMetric  bool  `json:"saveMetric"`
	// Files is the job's code, kept only when SaveMetric is true.
	Files []File `json:"files,omitempty"`

	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// TraceParent continues the job's traceparent (same trace id, the runner's span), so
	// that the ledger logs the charge under the request's trace id. Optional.
	TraceParent string `json:"traceparent,omitempty"`
}

// NewResult starts a result for job, copying the fields the ledger needs.
func NewResult(job *Job) Result {
	r := Result{
		V:           Version,
		JobID:       job.JobID,
		UserID:      job.UserID,
		ProjectID:   job.ProjectID,
		Language:    job.Language,
		Region:      job.Region,
		PriceMicros: job.PriceMicros,
		SaveMetric:  job.SaveMetric,
		TraceParent: trace.Continue(job.TraceParent),
	}
	if job.SaveMetric {
		r.Files = job.Files
	}
	return r
}

// Sizes of a result once encoded. A result must fit a NATS message (8 MiB with headers) and
// the results stream's MaxMsgSize, whatever bytes a program writes: JSON escapes a control
// byte as 6 bytes and an invalid UTF-8 byte as 3, so the runner counts output by its
// encoded size, not its raw length.
const (
	// MaxResultBytes bounds an encoded result.
	MaxResultBytes = 7 << 20
	// MaxOutputEncodedBytes bounds the program's stdout and stderr together, encoded.
	MaxOutputEncodedBytes = 4 << 20
	// MaxCompileOutputEncodedBytes bounds the compiler's output, encoded.
	MaxCompileOutputEncodedBytes = 1 << 20
)

// EncodedCost is an upper bound of the bytes that JSON encoding (encoding/json, HTML
// escaping on) makes of b in a string.
func EncodedCost(b byte) int64 {
	switch {
	case b == '"' || b == '\\' || b == '\n' || b == '\r' || b == '\t' || b == '\b' || b == '\f':
		return 2
	case b < 0x20 || b == '<' || b == '>' || b == '&':
		return 6 // \u00XX
	case b >= 0x80:
		return 3 // an invalid byte becomes U+FFFD; a valid sequence costs at most 2 per byte
	default:
		return 1
	}
}
