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

// Transport errors: kept apart from the services' codes above.
const (
	// CodeReplyTooLarge answers a request whose reply would exceed the connection's
	// maximum payload: the caller hears at once instead of waiting for a reply never sent.
	CodeReplyTooLarge = "reply_too_large"
	// CodeShuttingDown answers a request that arrived as its service stops.
	CodeShuttingDown = "shutting_down"
)

// ErrTimeout is returned by Call when the service does not answer before the deadline.
var ErrTimeout = errors.New("service did not answer in time")

// DefaultCallTimeout bounds a Call whose ctx has no deadline of its own, so that a
// service that never answers cannot hold its caller forever.
const DefaultCallTimeout = 10 * time.Second

// Call sends req to subject and decodes the answer into resp. A service's refusal comes
// back as *Error; no responder as ErrUnavailable; no answer before ctx's deadline (or
// DefaultCallTimeout when ctx has none) as ErrTimeout.
func Call[Req, Resp any](ctx context.Context, nc *nats.Conn, subject string, req Req) (Resp, error) {
	return CallWithin[Req, Resp](ctx, nc, subject, req, DefaultCallTimeout)
}

// CallWithin is Call with fallback instead of DefaultCallTimeout as the deadline of a ctx
// that has none.
func CallWithin[Req, Resp any](ctx context.Context, nc *nats.Conn, subject string, req Req, fallback time.Duration) (Resp, error) {
	var resp Resp
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, fallback)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return resp, fmt.Errorf("encode %s request: %w", subject, err)
	}
	msg, err := nc.RequestWithContext(ctx, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return resp, fmt.Errorf("%s: %w", subject, ErrUnavailable)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return resp, fmt.Errorf("%s: %w (%w)", subject, ErrTimeout, err)
	case err != nil:
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

// DefaultMaxInFlight is how many requests a Gate made by Handle lets run at once.
const DefaultMaxInFlight = 64

// Gate bounds how many requests run at once. A service shares one among all its
// subjects (WithGate); a request beyond it waits in its subscription's queue (nats.go's
// pending messages) rather than on a goroutine of its own.
type Gate struct{ slots chan struct{} }

// NewGate returns a Gate of n slots (DefaultMaxInFlight when n < 1).
func NewGate(n int) *Gate {
	if n < 1 {
		n = DefaultMaxInFlight
	}
	return &Gate{slots: make(chan struct{}, n)}
}

func (g *Gate) enter(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (g *Gate) leave() { <-g.slots }

// HandleOption tunes Handle.
type HandleOption func(*handleOptions)

type handleOptions struct{ gate *Gate }

// WithGate makes the handler's requests take their slots from g.
func WithGate(g *Gate) HandleOption { return func(o *handleOptions) { o.gate = g } }

// Handle answers requests on subject in queue group queue with fn. A returned *Error goes
// back as is; any other error is logged and answered as internal_error, without details.
// Each request is handled on its own goroutine once it has a slot of the gate (WithGate;
// by default one of DefaultMaxInFlight slots for this subject alone); ctx bounds them all.
func Handle[Req, Resp any](ctx context.Context, nc *nats.Conn, log *slog.Logger, subject, queue string,
	fn func(context.Context, Req) (Resp, error), opts ...HandleOption) (*nats.Subscription, error) {
	o := handleOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.gate == nil {
		o.gate = NewGate(DefaultMaxInFlight)
	}
	sub, err := nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		// Blocks this subscription's delivery while the gate is full: a flood queues.
		if !o.gate.enter(ctx) {
			respond(nc, log, subject, m, envelope{V: 1, Error: Errorf(CodeShuttingDown, "the service is shutting down; try again")})
			return
		}
		go func() {
			defer o.gate.leave()
			answer(ctx, nc, log, subject, m, fn)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return sub, nil
}

func answer[Req, Resp any](ctx context.Context, nc *nats.Conn, log *slog.Logger, subject string, m *nats.Msg,
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
	respond(nc, log, subject, m, env)
}

// respond sends env, or a reply_too_large error when env exceeds what the connection
// carries: a reply NATS refuses would leave the caller waiting for nothing.
func respond(nc *nats.Conn, log *slog.Logger, subject string, m *nats.Msg, env envelope) {
	body, err := json.Marshal(env)
	if err != nil {
		log.Error("encode envelope", "subject", subject, "err", err)
		body = []byte(`{"v":1,"error":{"code":"` + CodeInternal + `","message":"the service failed to answer"}}`)
	}
	if max := nc.MaxPayload(); max > 0 && int64(len(body)) > max {
		log.Error("reply too large", "subject", subject, "bytes", len(body), "max_payload", max)
		body, _ = json.Marshal(envelope{V: 1, Error: Errorf(CodeReplyTooLarge,
			"the answer is %d bytes, over the %d bytes a message carries; ask for less", len(body), max)})
	}
	if err := m.Respond(body); err != nil {
		log.Warn("respond", "subject", subject, "err", err)
	}
}
