package publisher

import (
	"errors"
	"fmt"

	"github.com/codeexec/codeexec/shared/rpc"
)

// Sentinels a caller decides on. A ledger refusal is a *RefusedError that matches the
// sentinel of its code with errors.Is.
var (
	// ErrInvalidRequest: the request breaks the contract (language, files, sizes, ids);
	// nothing was reserved or published. Errors wrapping it also wrap the precise cause
	// (messages.ErrCodeTooLarge, languages.ErrUnknown, languages.ErrBelowMinimum, ...).
	ErrInvalidRequest = errors.New("invalid job request")
	// ErrInsufficientFunds: the user's balance cannot pay the job's price.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrNoWallet: the ledger has no wallet for the user.
	ErrNoWallet = errors.New("the user has no wallet")
	// ErrHoldClosed: the job id's hold was charged, released or expired; the job must not
	// run again under that id.
	ErrHoldClosed = errors.New("the job's hold is closed")
	// ErrQueueFull: the job stream is full; try again later.
	ErrQueueFull = errors.New("job queue is full")
	// ErrNotFound: no result is stored for the job (yet).
	ErrNotFound = errors.New("no result for the job")
)

// RefusedError is the ledger's refusal to reserve a job's price: nothing was published.
// Code is one of the rpc codes insufficient_funds, not_found, hold_closed, conflict (the
// job id is another user's) or invalid_input.
type RefusedError struct {
	JobID   string
	Code    string
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("ledger refused job %s: %s: %s", e.JobID, e.Code, e.Message)
}

// Is matches ErrInsufficientFunds, ErrNoWallet and ErrHoldClosed by code.
func (e *RefusedError) Is(target error) bool {
	switch target {
	case ErrInsufficientFunds:
		return e.Code == rpc.CodeInsufficientFunds
	case ErrNoWallet:
		return e.Code == rpc.CodeNotFound
	case ErrHoldClosed:
		return e.Code == rpc.CodeHoldClosed
	}
	return false
}

// Unwrap returns the ledger's answer as an *rpc.Error, so rpc.IsCode works too.
func (e *RefusedError) Unwrap() error { return &rpc.Error{Code: e.Code, Message: e.Message} }

// TooLargeError is a job that the job stream (or the NATS connection) cannot take once
// encoded: JSON escaping swells code and stdin (a control byte takes six). It is found
// before anything is reserved.
type TooLargeError struct {
	Bytes int // the job's encoded size, headers allowed for
	Max   int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("job of %d bytes once encoded: the job stream takes at most %d", e.Bytes, e.Max)
}

// Is makes a too large job an ErrInvalidRequest too.
func (e *TooLargeError) Is(target error) bool { return target == ErrInvalidRequest }
