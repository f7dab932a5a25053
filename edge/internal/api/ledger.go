package api

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// usage answers GET /api/usage?page=&pageSize=&from=&to= with the caller's execution
// records, newest first, and the totals of the period (RFC 3339 times, to exclusive).
func (s *Server) usage(c *fiber.Ctx) error {
	req := messages.UsageRequest{V: messages.Version, UserID: userID(c)}
	var err error
	if req.Page, err = queryInt(c, "page", 1); err != nil {
		return err
	}
	if req.PageSize, err = queryInt(c, "pageSize", 20); err != nil {
		return err
	}
	if req.From, err = queryTime(c, "from"); err != nil {
		return err
	}
	if req.To, err = queryTime(c, "to"); err != nil {
		return err
	}
	if err := req.CheckPage(); err != nil {
		return newError(http.StatusBadRequest, "invalid_input", "%s", err.Error())
	}
	reply, err := rpc.Call[messages.UsageRequest, messages.UsageReply](c.UserContext(), s.nc, subjects.Usage, req)
	if err != nil {
		return fromRPC(err, "ledger")
	}
	return c.JSON(fiber.Map{"succeeded": true, "records": reply.Records, "page": reply.Page,
		"pageSize": reply.PageSize, "totals": reply.Totals, "more": reply.More})
}

func queryInt(c *fiber.Ctx, name string, def int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, newError(http.StatusBadRequest, "invalid_input", "%s must be a positive integer", name)
	}
	return n, nil
}

func queryTime(c *fiber.Ctx, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, newError(http.StatusBadRequest, "invalid_input", "%s must be an RFC 3339 time", name)
	}
	return t, nil
}

type creditRequest struct {
	UserID       string `json:"userId"`
	AmountMicros int64  `json:"amountMicros"`
	Reference    string `json:"reference"`
}

// adminCredit answers POST /api/admin/credit for the holder of CODEEXEC_ADMIN_TOKEN; the
// ledger credits once per reference.
func (s *Server) adminCredit(c *fiber.Ctx) error {
	if s.cfg.AdminToken == "" {
		return newError(http.StatusForbidden, "admin_disabled", "admin endpoints are off: set CODEEXEC_ADMIN_TOKEN")
	}
	token := apiKey(c)
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
		return newError(http.StatusUnauthorized, "invalid_admin_token", "send the admin token as 'Authorization: Bearer <token>'")
	}
	var req creditRequest
	if err := decodeStrict(c.Body(), &req); err != nil {
		return err
	}
	switch {
	case req.UserID == "" || len(req.UserID) > 64:
		return newError(http.StatusBadRequest, "invalid_input", "userId is required")
	case req.AmountMicros < 1 || req.AmountMicros > messages.MaxCreditMicros:
		return newError(http.StatusBadRequest, "invalid_input", "amountMicros must be 1 to %d ($1,000,000)", messages.MaxCreditMicros)
	case req.Reference == "" || len(req.Reference) > 128:
		return newError(http.StatusBadRequest, "invalid_input", "reference is required (at most 128 characters)")
	}
	reply, err := rpc.Call[messages.CreditRequest, messages.CreditReply](c.UserContext(), s.nc, subjects.Credit,
		messages.CreditRequest{V: messages.Version, UserID: req.UserID, AmountMicros: req.AmountMicros, Reference: req.Reference})
	if err != nil {
		return fromRPC(err, "ledger")
	}
	return c.JSON(fiber.Map{"succeeded": true, "balanceMicros": reply.BalanceMicros, "balance": formatDollars(reply.BalanceMicros),
		"duplicate": reply.Duplicate})
}
