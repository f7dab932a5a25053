// Package rpc is CodeExec's JSON request-reply over core NATS: one envelope shape for every
// service's answers, with typed errors that keep their code across the wire.
package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Error codes that cross the wire. The edge maps them to HTTP statuses.
const (
	CodeInvalidInput      = "invalid_input"
	CodeConflict          = "conflict"
	CodeNotFound          = "not_found"
	CodeInsufficientFunds = "insufficient_funds"
	// CodeHoldClosed: ledger.reserve for a job whose hold was charged, released or
	// expired (or that was charged without one). The job must not run.
	CodeHoldClosed   = "hold_closed"
	CodeUnauthorized = "unauthorized"
	CodeInternal     = "internal_error"
)

// Error is a service's refusal, with a code a caller can decide on.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf makes an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ErrUnavailable is returned by Call when no service answers the subject.
var ErrUnavailable = errors.New("service unavailable")

type envelope struct {
	V     int             `json:"v"`
	Error *Error          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Call sends req to subject and decodes the answer into resp. A service's refusal comes
// back as *Error; no responder as ErrUnavailable.
func Call[Req, Resp any](ctx context.Context, nc *nats.Conn, subject string, req Req) (Resp, error) {
	var resp Resp
	body, err := json.Marshal(req)
	if err != nil {
		return resp, fmt.Errorf("encode %s request: %w", subject, err)
	}
	msg, err := nc.RequestWithContext(ctx, subject, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return resp, fmt.Errorf("%s: %w", subject, ErrUnavailable)
	}
	if err != nil {
		return resp, fmt.Errorf("request %s: %w", subject, err)
	}
	var env envelope
	if err := json.Unmarshal(msg.Data, &env); err != nil {
		return resp, fmt.Errorf("decode %s reply: %w", subject, err)
	}
	if env.Error != nil {
		return resp, env.Error
	}
	if err := json.Unmarshal(env.Data, &resp); err != nil {
		return resp, fmt.Errorf("decode %s reply data: %w", subject, err)
	}
	return resp, nil
}

// HandlerTimeout bounds one handler call.
const HandlerTimeout = 10 * time.Second

// Handle answers requests on subject in queue group queue with fn. A returned *Error goes
// back as is; any other error is logged and answered as internal_error, without details.
// Each request is handled on its own goroutine; ctx bounds them all.
func Handle[Req, Resp any](ctx context.Context, nc *nats.Conn, log *slog.Logger, subject, queue string,
	fn func(context.Context, Req) (Resp, error)) (*nats.Subscription, error) {
	sub, err := nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		go answer(ctx, log, subject, m, fn)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return sub, nil
}

func answer[Req, Resp any](ctx context.Context, log *slog.Logger, subject string, m *nats.Msg,
	fn func(context.Context, Req) (Resp, error)) {
	ctx, cancel := context.WithTimeout(ctx, HandlerTimeout)
	defer cancel()
	env := envelope{V: 1}
	var req Req
	if err := json.Unmarshal(m.Data, &req); err != nil {
		env.Error = Errorf(CodeInvalidInput, "request body is not valid JSON")
	} else if resp, err := fn(ctx, req); err != nil {
		var e *Error
		if errors.As(err, &e) {
			env.Error = e
		} else {
			log.Error("request failed", "subject", subject, "err", err)
			env.Error = Errorf(CodeInternal, "the service failed to answer")
		}
	} else if env.Data, err = json.Marshal(resp); err != nil {
		log.Error("encode reply", "subject", subject, "err", err)
		env.Error = Errorf(CodeInternal, "the service failed to answer")
	}
	body, err := json.Marshal(env)
	if err != nil {
		log.Error("encode envelope", "subject", subject, "err", err)
		return
	}
	if err := m.Respond(body); err != nil {
		log.Warn("respond", "subject", subject, "err", err)
	}
}
