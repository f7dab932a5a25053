package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/rpc"
)

// Error is an answer in the design's error shape with its HTTP status.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int    // seconds; sent as Retry-After when set
	JobID      string // the job a 504 is about, so the client can poll it
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// maxMessageBytes bounds an error message whatever it quotes.
const maxMessageBytes = 512

type errorBody struct {
	Succeeded bool       `json:"succeeded"`
	Error     errorField `json:"error"`
	JobID     string     `json:"jobId,omitempty"`
}

type errorField struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fromRPC maps a service's refusal to an answer.
func fromRPC(err error, what string) error {
	var e *rpc.Error
	switch {
	case errors.Is(err, rpc.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, "service_unavailable", "the %s service is not available; try again shortly", what)
	case errors.Is(err, rpc.ErrTimeout):
		return newError(http.StatusServiceUnavailable, "service_unavailable", "the %s service did not answer in time; try again shortly", what)
	case errors.As(err, &e):
		switch e.Code {
		case rpc.CodeShuttingDown:
			return &Error{Status: http.StatusServiceUnavailable, Code: "service_unavailable", RetryAfter: 1,
				Message: fmt.Sprintf("the %s service is restarting; try again shortly", what)}
		case rpc.CodeReplyTooLarge:
			// The request was fine; its answer cannot be carried (a page of large records, say).
			return newError(http.StatusInternalServerError, "reply_too_large", "%s", e.Message)
		case rpc.CodeInvalidInput:
			return newError(http.StatusBadRequest, "invalid_input", "%s", e.Message)
		case rpc.CodeConflict:
			return newError(http.StatusConflict, "conflict", "%s", e.Message)
		case rpc.CodeHoldClosed:
			return newError(http.StatusConflict, "hold_closed", "%s", e.Message)
		case rpc.CodeNotFound:
			return newError(http.StatusNotFound, "not_found", "%s", e.Message)
		case rpc.CodeInsufficientFunds:
			return newError(http.StatusPaymentRequired, "insufficient_funds", "%s", e.Message)
		case rpc.CodeUnauthorized:
			return newError(http.StatusUnauthorized, "unauthorized", "%s", e.Message)
		}
	}
	return fmt.Errorf("%s service: %w", what, err)
}

// errorHandler writes every error in the design's shape; it is the one place where
// errors become statuses.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		apiErr, known := asAPIError(err)
		if !known {
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "trace_id", traceOf(c).ID(), "err", err)
		}
		if apiErr.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(apiErr.RetryAfter))
		}
		// Messages quote client input as excerpts only; this bound catches any that forgot.
		return c.Status(apiErr.Status).JSON(errorBody{
			Error: errorField{Code: apiErr.Code, Message: excerpt.Cut(apiErr.Message, maxMessageBytes)},
			JobID: apiErr.JobID,
		})
	}
}

// asAPIError maps any error to an answer; known is false for unexpected failures (500).
func asAPIError(err error) (e *Error, known bool) {
	var fe *fiber.Error
	switch {
	case errors.As(err, &e):
		return e, true
	case errors.As(err, &fe):
		return fromFiber(fe), true
	}
	return newError(http.StatusInternalServerError, "internal_error", "the server failed to answer; try again"), false
}

func statusOf(err error) int {
	e, _ := asAPIError(err)
	return e.Status
}

func fromFiber(fe *fiber.Error) *Error {
	switch fe.Code {
	case http.StatusNotFound:
		return newError(fe.Code, "not_found", "no such endpoint")
	case http.StatusMethodNotAllowed:
		return newError(fe.Code, "method_not_allowed", "method not allowed on this endpoint")
	case http.StatusRequestEntityTooLarge:
		return newError(fe.Code, "request_too_large", "request body is too large")
	case http.StatusBadRequest:
		return newError(fe.Code, "bad_request", "%s", fe.Message)
	}
	return newError(fe.Code, "error", "%s", fe.Message)
}
