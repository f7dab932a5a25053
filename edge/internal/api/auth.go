package api

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

const localUserID = "userId"

// apiKey returns the key of a request: "Authorization: Bearer <key>" or "X-API-Key".
func apiKey(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		if scheme, key, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(key)
		}
	}
	return strings.TrimSpace(c.Get("X-API-Key"))
}

// authenticate asks accounts whether the request's key is valid and keeps the user id.
func (s *Server) authenticate(c *fiber.Ctx) error {
	key := apiKey(c)
	if key == "" {
		return newError(http.StatusUnauthorized, "missing_credentials", "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'")
	}
	reply, err := rpc.Call[messages.KeyVerifyRequest, messages.KeyVerifyReply](c.UserContext(), s.nc, subjects.KeyVerify,
		messages.KeyVerifyRequest{V: messages.Version, APIKey: key})
	if err != nil {
		return fromRPC(err, "accounts")
	}
	if !reply.Valid {
		return newError(http.StatusUnauthorized, "invalid_api_key", "the API key is not valid")
	}
	c.Locals(localUserID, reply.UserID)
	return c.Next()
}

func userID(c *fiber.Ctx) string {
	id, _ := c.Locals(localUserID).(string)
	return id
}
