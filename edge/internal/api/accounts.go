package api

import (
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

type registerRequest struct {
	Email    string `json:"email"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// register answers POST /api/register: accounts creates the user and a first key.
func (s *Server) register(c *fiber.Ctx) error {
	var req registerRequest
	if err := decodeStrict(c.Body(), &req); err != nil {
		return err
	}
	if req.Email == "" || req.Username == "" || req.Password == "" {
		return newError(http.StatusBadRequest, "invalid_input", "email, username and password are required")
	}
	reply, err := rpc.Call[messages.RegisterRequest, messages.RegisterReply](c.UserContext(), s.nc, subjects.Register,
		messages.RegisterRequest{V: messages.Version, Email: req.Email, Username: req.Username, Password: req.Password})
	if err != nil {
		return fromRPC(err, "accounts")
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{"succeeded": true, "userId": reply.UserID, "apiKey": reply.APIKey})
}

// wallet answers GET /api/wallet from the ledger.
func (s *Server) wallet(c *fiber.Ctx) error {
	w, err := rpc.Call[messages.WalletRequest, messages.WalletReply](c.UserContext(), s.nc, subjects.Wallet,
		messages.WalletRequest{V: messages.Version, UserID: userID(c)})
	if err != nil {
		return fromRPC(err, "ledger")
	}
	return c.JSON(fiber.Map{
		"balanceMicros": w.BalanceMicros,
		"balance":       formatDollars(w.BalanceMicros),
		"heldMicros":    w.HeldMicros,
		"currency":      "USD",
		"priceMicros":   w.PriceMicros,
	})
}

// formatDollars shows micro-dollars as dollars with two decimals, truncated toward zero
// so that a balance is never shown higher than it is.
func formatDollars(micros int64) string {
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	return fmt.Sprintf("%s%d.%02d", sign, micros/1_000_000, micros%1_000_000/10_000)
}
