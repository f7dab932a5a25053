// Package wallet keeps every account's money as a chain of append-only entries.
//
// An account's entries have the _id "<account>:<seq zero-padded to 12>", so two writers
// cannot both extend the same head: an insert against a unique index is the one write that
// is atomic on MongoDB and on FerretDB alike (FerretDB v1 applies update/findAndModify as
// read-modify-write). Each entry carries the running totals after it, and a unique ref
// (open:<user>, hold:<job>, close:<job>, credit:<reference>) that makes every operation
// idempotent: a second attempt meets the first one's entry and returns it.
package wallet

import (
	"errors"
	"fmt"
	"time"

	"github.com/codeexec/codeexec/shared/messages"
)

// Kind is what an entry does to a wallet.
type Kind string

// Entry kinds.
const (
	// KindCredit adds to the available balance: the signup credit and admin credits.
	KindCredit Kind = "credit"
	// KindHold moves a job's price from available to held before the job is queued.
	KindHold Kind = "hold"
	// KindCharge closes a job as paid: it takes the hold's amount out of held, or, for a job
	// that was never reserved, takes the price straight from available.
	KindCharge Kind = "charge"
	// KindRelease closes a job as not paid: the hold's amount goes back to available.
	KindRelease Kind = "release"
)

// Entry is one append-only change of a wallet, in integer micro-dollars.
type Entry struct {
	ID      string `bson:"_id" json:"id"`
	Account string `bson:"account" json:"account"`
	Seq     int64  `bson:"seq" json:"seq"`
	Kind    Kind   `bson:"kind" json:"kind"`
	// AmountMicros is the signed change of the available balance.
	AmountMicros int64 `bson:"amountMicros" json:"amountMicros"`
	// HeldMicros is the signed change of the held balance.
	HeldMicros int64 `bson:"heldMicros" json:"heldMicros"`
	// AvailableMicros and HeldTotalMicros are the running totals after this entry.
	AvailableMicros int64 `bson:"availableMicros" json:"availableMicros"`
	HeldTotalMicros int64 `bson:"heldTotalMicros" json:"heldTotalMicros"`
	// UnpaidMicros, on a charge of a job that was never reserved, is the part of the
	// price the available balance could not cover: it was not taken (balances never go
	// below zero).
	UnpaidMicros int64     `bson:"unpaidMicros,omitempty" json:"unpaidMicros,omitempty"`
	Ref          string    `bson:"ref" json:"ref"`
	JobID        string    `bson:"jobId,omitempty" json:"jobId,omitempty"`
	Reason       string    `bson:"reason,omitempty" json:"reason,omitempty"`
	CreatedAt    time.Time `bson:"createdAt" json:"createdAt"`
}

// Reasons recorded on entries.
const (
	ReasonSignup        = "signup"
	ReasonResult        = "result"
	ReasonDirect        = "no_hold" // a charge of a job that was never reserved
	ReasonInternalError = "internal_error"
	ReasonExpired       = "expired"
	// ReasonOrphaned: the job was never queued (its reserver died between the reserve
	// and the publish), so the ledger gave it up and released its hold.
	ReasonOrphaned = "orphaned"
)

// EntryID is the _id of an account's entry number seq.
func EntryID(account string, seq int64) string { return fmt.Sprintf("%s:%012d", account, seq) }

// OpenRef is the ref of an account's signup credit.
func OpenRef(account string) string { return "open:" + account }

// HoldRef is the ref of a job's hold.
func HoldRef(jobID string) string { return "hold:" + jobID }

// CloseRef is the ref of a job's charge or release: one of them, once.
func CloseRef(jobID string) string { return "close:" + jobID }

// CreditRef is the ref of an admin credit.
func CreditRef(reference string) string { return "credit:" + reference }

// ChargedMicros is what a charge entry took from the account: the hold's amount, or the
// direct price of a job that was never reserved. Zero for other kinds.
func (e Entry) ChargedMicros() int64 {
	if e.Kind != KindCharge {
		return 0
	}
	return -(e.AmountMicros + e.HeldMicros)
}

// Errors a caller decides on.
var (
	// ErrInsufficientFunds: the available balance does not cover the price. Nothing was written.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrSettled: a hold was asked for a job whose hold is closed (charged, released or
	// expired), or that was charged without one. Nothing was written.
	ErrSettled = errors.New("the job's hold is closed")
	// ErrNoWallet: the account was never opened (Open, at registration). Nothing was written.
	ErrNoWallet = errors.New("no wallet for this user")
	// ErrConflict: the ref is taken by a different operation (another account or amount).
	ErrConflict = errors.New("reference already used for a different operation")
	// ErrContention: the chain kept moving under us; the caller may retry later.
	ErrContention = errors.New("account busy: too many concurrent writers")
	// ErrInvalid: the arguments cannot make an entry.
	ErrInvalid = errors.New("invalid wallet operation")
	// ErrOverflow: the entry's running totals would not fit in an int64. It is an ErrInvalid.
	ErrOverflow = fmt.Errorf("%w: the balance would overflow", ErrInvalid)
)

// MaxCreditMicros bounds one credit: $1,000,000.
const MaxCreditMicros = messages.MaxCreditMicros

// addMicros is a + b, or ErrOverflow when that does not fit in an int64.
func addMicros(a, b int64) (int64, error) {
	sum := a + b
	if (b > 0 && sum < a) || (b < 0 && sum > a) {
		return 0, ErrOverflow
	}
	return sum, nil
}

// MaxIDBytes bounds account ids, job ids and references.
const MaxIDBytes = 128

func checkID(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(s) > MaxIDBytes {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, MaxIDBytes)
	}
	return nil
}
