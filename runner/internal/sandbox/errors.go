package sandbox

import (
	"errors"
	"fmt"
)

// InfraError is a failure of the platform (Docker, the host), not of the user's program.
// A job that ends with an InfraError has no result: the runner hands it back for a retry,
// possibly on another host. Everything the user's program does, however badly, is an
// Outcome instead.
type InfraError struct {
	Op  string // what the sandbox was doing: "create container", "exec run", …
	Err error
}

func (e *InfraError) Error() string { return e.Op + ": " + e.Err.Error() }

func (e *InfraError) Unwrap() error { return e.Err }

// IsInfra reports whether err is (or wraps) an InfraError.
func IsInfra(err error) bool {
	var ie *InfraError
	return errors.As(err, &ie)
}

func infra(op string, err error) error {
	if err == nil {
		return nil
	}
	return &InfraError{Op: op, Err: err}
}

func infraf(op, format string, args ...any) error {
	return &InfraError{Op: op, Err: fmt.Errorf(format, args...)}
}
