package messages

import "time"

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
	Signal        string `json:"signal,omitempty"`
	ErrorMessage  string `json:"errorMessage,omitempty"`

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
	}
	if job.SaveMetric {
		r.Files = job.Files
	}
	return r
}
