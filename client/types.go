package client

import "time"

// Limits bounds one job; a zero field is the language's default (see Language).
type Limits struct {
	RunTimeMs     int64 `json:"runTimeMs,omitempty"`
	CompileTimeMs int64 `json:"compileTimeMs,omitempty"`
	MemoryBytes   int64 `json:"memoryBytes,omitempty"`
	CPUMillis     int64 `json:"cpuMillis,omitempty"`
	Pids          int64 `json:"pids,omitempty"`
	OutputBytes   int64 `json:"outputBytes,omitempty"`
}

// File is one source file of a v2 execution or a project.
type File struct {
	Filename     string `json:"filename"`
	Code         string `json:"code"`
	IsEntryPoint bool   `json:"isEntryPoint,omitempty"`
}

// RegisterRequest is the body of Register.
type RegisterRequest struct {
	Email    string `json:"email"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// RegisterReply holds the new account's first API key, shown once.
type RegisterReply struct {
	Succeeded bool   `json:"succeeded"`
	UserID    string `json:"userId"`
	APIKey    string `json:"apiKey"`
}

// LoginRequest is the body of Login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// LoginReply is the answer of Login; the session itself is a cookie in the client's jar.
type LoginReply struct {
	Succeeded bool   `json:"succeeded"`
	UserID    string `json:"userId"`
}

// Me is the owner of the credential.
type Me struct {
	UserID   string `json:"userId"`
	Email    string `json:"email"`
	Username string `json:"username"`
}

// Key describes an API key without its secret.
type Key struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
}

// KeyCreateRequest is the body of CreateKey.
type KeyCreateRequest struct {
	Name string `json:"name,omitempty"`
}

// KeyCreated is a new key with its secret, shown once.
type KeyCreated struct {
	Key
	APIKey string `json:"apiKey"`
}

// KeyList lists the caller's live keys.
type KeyList struct {
	Keys []Key `json:"keys"`
}

// Language is a language of the catalog, its limits, and whether a live runner serves it.
type Language struct {
	Language  string   `json:"language"`
	Version   string   `json:"version"`
	Aliases   []string `json:"aliases"`
	Limits    Limits   `json:"limits"`
	MaxLimits Limits   `json:"maxLimits"`
	MinLimits Limits   `json:"minLimits"`
	Available bool     `json:"available"`
}

// Run options shared by every execute request.
type RunOptions struct {
	Stdin      string   `json:"stdin,omitempty"`
	Args       []string `json:"args,omitempty"`
	ProjectID  string   `json:"projectId,omitempty"`
	SaveMetric *bool    `json:"saveMetric,omitempty"`
	// Wait false: the answer is 202 with the job id at once (Execution.JobID); poll Job.
	Wait   *bool  `json:"wait,omitempty"`
	Region string `json:"region,omitempty"`
	// RegionPolicy is "exact" (the default) or "prefer".
	RegionPolicy string  `json:"regionPolicy,omitempty"`
	Limits       *Limits `json:"limits,omitempty"`
}

// ExecuteV1Request runs one file of code.
type ExecuteV1Request struct {
	Language string `json:"language"`
	Code     string `json:"code"`
	RunOptions
}

// ExecuteV2Request runs several files; exactly one is the entry point.
type ExecuteV2Request struct {
	Language string `json:"language"`
	Files    []File `json:"files"`
	RunOptions
}

// ProjectExecuteRequest runs a saved project (ProjectID is set by the server).
type ProjectExecuteRequest struct {
	Stdin        string   `json:"stdin,omitempty"`
	Args         []string `json:"args,omitempty"`
	Wait         *bool    `json:"wait,omitempty"`
	SaveMetric   *bool    `json:"saveMetric,omitempty"`
	Region       string   `json:"region,omitempty"`
	RegionPolicy string   `json:"regionPolicy,omitempty"`
	Limits       *Limits  `json:"limits,omitempty"`
}

// RunTimeStatus says how a program fared.
type RunTimeStatus string

// The run-time statuses.
const (
	StatusSucceeded     RunTimeStatus = "succeeded"
	StatusCompileError  RunTimeStatus = "compile_error"
	StatusRuntimeError  RunTimeStatus = "runtime_error"
	StatusTimeLimit     RunTimeStatus = "time_limit_exceeded"
	StatusMemoryLimit   RunTimeStatus = "memory_limit_exceeded"
	StatusOutputLimit   RunTimeStatus = "output_limit_exceeded"
	StatusInternalError RunTimeStatus = "internal_error"
)

// Result is a finished job, every figure measured.
type Result struct {
	JobID         string        `json:"jobId"`
	Language      string        `json:"language"`
	RunTimeStatus RunTimeStatus `json:"runTimeStatus"`
	Output        string        `json:"output"`
	Stdout        string        `json:"stdout"`
	Stderr        string        `json:"stderr"`
	ExitCode      *int          `json:"exitCode"`
	Signal        string        `json:"signal,omitempty"`
	ErrorMessage  *string       `json:"errorMessage"`
	ExecutionTime float64       `json:"executionTime"`
	WallTimeMs    int64         `json:"wallTimeMs"`
	CPUTimeMs     int64         `json:"cpuTimeMs"`
	MemoryUsage   string        `json:"memoryUsage"`
	MemoryBytes   int64         `json:"memoryBytes"`
	CPUUsage      string        `json:"cpuUsage"`
	CompileOutput *string       `json:"compileOutput,omitempty"`
	Truncated     bool          `json:"truncated,omitempty"`
	PriceMicros   int64         `json:"priceMicros"`
	Region        string        `json:"region,omitempty"`
	RunnerID      string        `json:"runnerId,omitempty"`
}

// Execution is the answer of an execute call: Result when it waited (200), JobID and
// Region when it did not (202).
type Execution struct {
	Succeeded bool    `json:"succeeded"`
	Result    *Result `json:"result,omitempty"`
	JobID     string  `json:"jobId,omitempty"`
	Region    string  `json:"region,omitempty"`
}

// Job is a job's state; Result is set once Status is "done".
type Job struct {
	JobID  string  `json:"jobId"`
	Status string  `json:"status"`
	Result *Result `json:"result,omitempty"`
}

// Wallet is the caller's balance in micro-dollars.
type Wallet struct {
	BalanceMicros int64  `json:"balanceMicros"`
	Balance       string `json:"balance"`
	HeldMicros    int64  `json:"heldMicros"`
	Currency      string `json:"currency"`
	PriceMicros   int64  `json:"priceMicros"`
}

// UsageQuery pages through the caller's execution records; zero fields are the defaults.
type UsageQuery struct {
	Page     int
	PageSize int
	From, To time.Time
}

// ExecutionRecord is one finished job in the usage records.
type ExecutionRecord struct {
	JobID         string        `json:"jobId"`
	ProjectID     string        `json:"projectId,omitempty"`
	Language      string        `json:"language"`
	RunTimeStatus RunTimeStatus `json:"runTimeStatus"`
	WallTimeMs    int64         `json:"wallTimeMs"`
	CPUTimeMs     int64         `json:"cpuTimeMs"`
	MemoryBytes   int64         `json:"memoryBytes"`
	ExitCode      *int          `json:"exitCode"`
	Region        string        `json:"region"`
	RunnerID      string        `json:"runnerId,omitempty"`
	PriceMicros   int64         `json:"priceMicros"`
	CreatedAt     time.Time     `json:"createdAt"`
	Files         []File        `json:"files,omitempty"`
	Stdout        string        `json:"stdout,omitempty"`
	Stderr        string        `json:"stderr,omitempty"`
	Truncated     bool          `json:"truncated,omitempty"`
}

// UsageTotals sums the records of a period.
type UsageTotals struct {
	Executions  int64 `json:"executions"`
	PriceMicros int64 `json:"priceMicros"`
	WallTimeMs  int64 `json:"wallTimeMs"`
	CPUTimeMs   int64 `json:"cpuTimeMs"`
}

// Usage is one page of execution records and the period's totals.
type Usage struct {
	Succeeded bool              `json:"succeeded"`
	Records   []ExecutionRecord `json:"records"`
	Page      int               `json:"page"`
	PageSize  int               `json:"pageSize"`
	Totals    UsageTotals       `json:"totals"`
	// More: the page stopped early to stay within 1 MiB; ask again with a smaller PageSize.
	More bool `json:"more"`
}

// CreditRequest credits a wallet once per Reference (AdminCredit).
type CreditRequest struct {
	UserID       string `json:"userId"`
	AmountMicros int64  `json:"amountMicros"`
	Reference    string `json:"reference"`
}

// CreditReply is the balance after a credit; Duplicate: the reference was credited before.
type CreditReply struct {
	Succeeded     bool   `json:"succeeded"`
	BalanceMicros int64  `json:"balanceMicros"`
	Balance       string `json:"balance"`
	Duplicate     bool   `json:"duplicate"`
}

// ProjectInput is the body of CreateProject and UpdateProject.
type ProjectInput struct {
	Name     string `json:"name"`
	Language string `json:"language"`
	Files    []File `json:"files"`
}

// Project is a saved program; Files is empty in ListProjects.
type Project struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Language  string    `json:"language"`
	Files     []File    `json:"files,omitempty"`
	ShareID   string    `json:"shareId,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ProjectList lists the caller's projects, newest change first.
type ProjectList struct {
	Projects []Project `json:"projects"`
}

// Share is a project's share id.
type Share struct {
	ShareID string `json:"shareId"`
}

// Shared is the read-only view of a shared project; Owner is a username.
type Shared struct {
	ShareID   string    `json:"shareId"`
	Name      string    `json:"name"`
	Language  string    `json:"language"`
	Files     []File    `json:"files"`
	Owner     string    `json:"owner"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Health is the answer of Health and Ready.
type Health struct {
	Status string `json:"status"`
}
