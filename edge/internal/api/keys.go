package api

import (
	"net/http"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

type createKeyRequest struct {
	Name string `json:"name"`
}

// createKey answers POST /api/keys {name?} → 201 with the secret, shown once.
func (s *Server) createKey(c *fiber.Ctx) error {
	var req createKeyRequest
	if len(c.Body()) > 0 {
		if err := decodeStrict(c.Body(), &req); err != nil {
			return err
		}
	}
	if utf8.RuneCountInString(req.Name) > 100 {
		return newError(http.StatusBadRequest, "invalid_input", "name must be at most 100 characters")
	}
	reply, err := rpc.Call[messages.KeyCreateRequest, messages.KeyCreateReply](c.UserContext(), s.nc, subjects.KeyCreate,
		messages.KeyCreateRequest{V: messages.Version, UserID: userID(c), Name: req.Name})
	if err != nil {
		return fromRPC(err, "accounts")
	}
	k := reply.Key
	return c.Status(http.StatusCreated).JSON(fiber.Map{"id": k.KeyID, "name": k.Name, "prefix": k.Prefix,
		"createdAt": k.CreatedAt, "lastUsedAt": nil, "apiKey": reply.APIKey})
}

// listKeys answers GET /api/keys: the caller's live keys, never their secrets.
func (s *Server) listKeys(c *fiber.Ctx) error {
	reply, err := rpc.Call[messages.KeyListRequest, messages.KeyListReply](c.UserContext(), s.nc, subjects.KeyList,
		messages.KeyListRequest{V: messages.Version, UserID: userID(c)})
	if err != nil {
		return fromRPC(err, "accounts")
	}
	keys := reply.Keys
	if keys == nil {
		keys = []messages.KeyInfo{}
	}
	return c.JSON(fiber.Map{"keys": keys})
}

// revokeKey answers DELETE /api/keys/:id: 204, or 404 for a key that is not the caller's.
// Every edge refuses the key within moments (accounts publishes the revocation).
func (s *Server) revokeKey(c *fiber.Ctx) error {
	id := c.Params("id")
	if !idLike(id) {
		return newError(http.StatusNotFound, "not_found", "no api key %s", excerpt.Quote(id))
	}
	revoked, err := rpc.Call[messages.KeyRevokeRequest, messages.CredentialRevoked](c.UserContext(), s.nc, subjects.KeyRevoke,
		messages.KeyRevokeRequest{V: messages.Version, UserID: userID(c), KeyID: id})
	if err != nil {
		return fromRPC(err, "accounts")
	}
	// At once here: the event, handled on another goroutine, may come after the reply.
	s.creds.Drop(revoked.Hash)
	return c.SendStatus(http.StatusNoContent)
}

// idLike reports whether a path parameter can be one of our ids; others are not asked about.
func idLike(id string) bool {
	return len(id) <= 64 && subjects.Token(id)
}
