package messages

import (
	"fmt"
	"time"
)

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

// Bounds of a usage query and of its answer.
const (
	// MaxUsagePageSize bounds one page of usage.
	MaxUsagePageSize = 100
	// MaxUsageOffset bounds how deep pages go: (page-1)*pageSize records skipped at most.
	MaxUsageOffset = 100_000
	// MaxUsageReplyBytes bounds the JSON encoding of one UsageReply, well under the NATS
	// payload limit. Records are kept whole while they fit; then a record's stdout,
	// stderr and files are cut to fit (the record says truncated), and a page whose bare
	// records do not fit stops early (the reply says more).
	MaxUsageReplyBytes = 1 << 20
)

// CheckPage refuses a page below 1, a pageSize outside 1..MaxUsagePageSize and a page
// deeper than MaxUsageOffset records. Its message quotes no input beyond two numbers.
func (r UsageRequest) CheckPage() error {
	switch {
	case r.Page < 1 || r.PageSize < 1 || r.PageSize > MaxUsagePageSize:
		return fmt.Errorf("page must be at least 1 and pageSize 1 to %d", MaxUsagePageSize)
	case r.Page-1 > MaxUsageOffset/r.PageSize:
		return fmt.Errorf("page too deep: at most %d records can be skipped (page-1 times pageSize)", MaxUsageOffset)
	}
	return nil
}

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
	// Truncated: stdout, stderr or files were cut (or left out) to keep the reply within
	// MaxUsageReplyBytes.
	Truncated bool `json:"truncated,omitempty"`
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
	// More: the page stopped early, before pageSize records, to stay within
	// MaxUsageReplyBytes: the records after these were left out. Ask again with a smaller
	// pageSize to see them.
	More bool `json:"more,omitempty"`
}
