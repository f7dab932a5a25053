package messages

import "time"

// CreditRequest asks the ledger (subjects.Credit) to add AmountMicros (1..MaxCreditMicros)
// to a user's wallet. Idempotent per Reference: the same reference credits once; reusing it
// for another user or amount is refused with the rpc code conflict. Other refusals:
// invalid_input (the amount, or a balance that would overflow), not_found (no wallet).
type CreditRequest struct {
	V            int    `json:"v"`
	UserID       string `json:"userId"`
	AmountMicros int64  `json:"amountMicros"`
	Reference    string `json:"reference"`
}

// MaxCreditMicros bounds one credit: $1,000,000.
const MaxCreditMicros int64 = 1_000_000_000_000

// CreditReply is the wallet after the credit. Duplicate is true when the reference had
// been credited before (nothing new was added).
type CreditReply struct {
	V             int   `json:"v"`
	BalanceMicros int64 `json:"balanceMicros"`
	HeldMicros    int64 `json:"heldMicros"`
	Duplicate     bool  `json:"duplicate"`
}

// UsageRequest asks the ledger (subjects.Usage) for a user's execution records, newest
// first, with totals over the period [From, To). Zero times leave that end open.
type UsageRequest struct {
	V        int       `json:"v"`
	UserID   string    `json:"userId"`
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	Page     int       `json:"page"`     // from 1
	PageSize int       `json:"pageSize"` // 1..MaxUsagePageSize
}

// MaxUsagePageSize bounds one page of usage.
const MaxUsagePageSize = 100

// ExecutionRecord is one finished job as the usage endpoint shows it.
type ExecutionRecord struct {
	JobID       string    `json:"jobId"`
	ProjectID   string    `json:"projectId,omitempty"`
	Language    string    `json:"language"`
	Status      Status    `json:"runTimeStatus"`
	WallTimeMs  int64     `json:"wallTimeMs"`
	CPUTimeMs   int64     `json:"cpuTimeMs"`
	MemoryBytes int64     `json:"memoryBytes"`
	ExitCode    *int      `json:"exitCode"`
	Region      string    `json:"region"`
	RunnerID    string    `json:"runnerId,omitempty"`
	PriceMicros int64     `json:"priceMicros"`
	CreatedAt   time.Time `json:"createdAt"`
	Files       []File    `json:"files,omitempty"`
	Stdout      string    `json:"stdout,omitempty"`
	Stderr      string    `json:"stderr,omitempty"`
}

// UsageTotals sums the records of a period.
type UsageTotals struct {
	Executions  int64 `json:"executions"`
	PriceMicros int64 `json:"priceMicros"`
	WallTimeMs  int64 `json:"wallTimeMs"`
	CPUTimeMs   int64 `json:"cpuTimeMs"`
}

// UsageReply is one page of records and the period's totals.
type UsageReply struct {
	V        int               `json:"v"`
	Records  []ExecutionRecord `json:"records"`
	Page     int               `json:"page"`
	PageSize int               `json:"pageSize"`
	Totals   UsageTotals       `json:"totals"`
}
