package api

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/edge/internal/authcache"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// login answers POST /api/login: accounts checks the password and opens a session, whose
// token goes back in an HttpOnly, SameSite=Lax cookie only.
func (s *Server) login(c *fiber.Ctx) error {
	var req loginRequest
	if err := decodeStrict(c.Body(), &req); err != nil {
		return err
	}
	if req.Email == "" || req.Password == "" {
		return newError(http.StatusBadRequest, "invalid_input", "email and password are required")
	}
	if len(req.Email) > 254 || len(req.Password) > 1024 {
		return newError(http.StatusBadRequest, "invalid_input", "email or password is too long")
	}
	reply, err := rpc.Call[messages.LoginRequest, messages.LoginReply](c.UserContext(), s.nc, subjects.Login,
		messages.LoginRequest{V: messages.Version, Email: req.Email, Password: req.Password})
	if rpc.IsCode(err, rpc.CodeUnauthorized) {
		s.am.logins.WithLabelValues("failed").Inc()
		return newError(http.StatusUnauthorized, "invalid_credentials", "wrong email or password")
	}
	if err != nil {
		return fromRPC(err, "accounts")
	}
	s.am.logins.WithLabelValues("ok").Inc()
	c.Cookie(&fiber.Cookie{
		Name:     sessionCookie,
		Value:    reply.Token,
		Path:     "/",
		Expires:  reply.ExpiresAt,
		MaxAge:   int(time.Until(reply.ExpiresAt).Seconds()),
		Secure:   c.Protocol() == "https",
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
	return c.JSON(fiber.Map{"succeeded": true, "userId": reply.UserID})
}

// logout answers POST /api/logout: the session of the cookie, if any, ends on the server
// (and on every edge's cache), and the cookie is cleared. Always 204.
func (s *Server) logout(c *fiber.Ctx) error {
	if token := c.Cookies(sessionCookie); token != "" && len(token) <= maxSecretLen {
		if _, err := rpc.Call[messages.LogoutRequest, messages.Empty](c.UserContext(), s.nc, subjects.Logout,
			messages.LogoutRequest{V: messages.Version, Token: token}); err != nil {
			return fromRPC(err, "accounts")
		}
		s.creds.Drop(authcache.Hash(token)) // at once here; the event reaches the other edges
	}
	c.Cookie(&fiber.Cookie{
		Name:     sessionCookie,
		Value:    "",
		Path:     "/",
		Expires:  time.Unix(1, 0).UTC(),
		Secure:   c.Protocol() == "https",
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
	return c.SendStatus(http.StatusNoContent)
}

// me answers GET /api/me.
func (s *Server) me(c *fiber.Ctx) error {
	u, err := rpc.Call[messages.UserRequest, messages.UserReply](c.UserContext(), s.nc, subjects.User,
		messages.UserRequest{V: messages.Version, UserID: userID(c)})
	if err != nil {
		return fromRPC(err, "accounts")
	}
	return c.JSON(fiber.Map{"userId": u.UserID, "email": u.Email, "username": u.Username})
}
