package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/rpc"
)

// The usage and admin credit endpoints refuse out-of-range input themselves, before any
// request reaches the ledger (the server here has no NATS connection at all).
func TestLedgerEndpointsRefuseOutOfRangeInput(t *testing.T) {
	s := &Server{cfg: Config{AdminToken: "admin-token"}}
	app := fiber.New(fiber.Config{ErrorHandler: errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	app.Post("/api/admin/credit", s.adminCredit)
	app.Get("/api/usage", func(c *fiber.Ctx) error { c.Locals(localUserID, "user-1"); return c.Next() }, s.usage)
	tests := []struct {
		name, method, target, body string
		want                       int
	}{
		{name: "credit of max int64", method: "POST", target: "/api/admin/credit",
			body: `{"userId":"user-1","amountMicros":9223372036854775807,"reference":"r1"}`, want: http.StatusBadRequest},
		{name: "credit over $1,000,000", method: "POST", target: "/api/admin/credit",
			body: `{"userId":"user-1","amountMicros":1000000000001,"reference":"r1"}`, want: http.StatusBadRequest},
		{name: "credit of 0", method: "POST", target: "/api/admin/credit",
			body: `{"userId":"user-1","amountMicros":0,"reference":"r1"}`, want: http.StatusBadRequest},
		{name: "usage page max int64", method: "GET", target: "/api/usage?page=9223372036854775807", want: http.StatusBadRequest},
		{name: "usage page past 100000 records", method: "GET", target: "/api/usage?page=5002&pageSize=20", want: http.StatusBadRequest},
		{name: "usage page 0", method: "GET", target: "/api/usage?page=0", want: http.StatusBadRequest},
		{name: "usage pageSize 1000", method: "GET", target: "/api/usage?pageSize=1000", want: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer admin-token")
			resp, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body errorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want || body.Error.Code != "invalid_input" {
				t.Fatalf("got %d %+v, want %d invalid_input", resp.StatusCode, body.Error, tt.want)
			}
		})
	}
}

func TestFromRPCLedgerCodes(t *testing.T) {
	tests := []struct {
		code     string
		want     int
		wantCode string
	}{
		{rpc.CodeHoldClosed, http.StatusConflict, "hold_closed"},
		{rpc.CodeConflict, http.StatusConflict, "conflict"},
		{rpc.CodeNotFound, http.StatusNotFound, "not_found"},
		{rpc.CodeInvalidInput, http.StatusBadRequest, "invalid_input"},
		{rpc.CodeInsufficientFunds, http.StatusPaymentRequired, "insufficient_funds"},
	}
	for _, tt := range tests {
		var e *Error
		if err := fromRPC(rpc.Errorf(tt.code, "message"), "ledger"); !errors.As(err, &e) || e.Status != tt.want || e.Code != tt.wantCode {
			t.Errorf("%s: got %v, want %d %s", tt.code, err, tt.want, tt.wantCode)
		}
	}
}
