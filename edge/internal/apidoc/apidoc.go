// Package apidoc serves the edge's HTTP API description and its documentation page: the
// OpenAPI 3.1 description (openapi.json, the one source of truth for clients, the Go client
// and the conformance tests) at GET /api/openapi.json, and Swagger UI (vendored from npm's
// swagger-ui-dist 5.35.0, Apache-2.0, under docs/) rendering it at GET /docs.
package apidoc

import (
	"bytes"
	"embed"
	"net/http"
	"path"

	"github.com/gofiber/fiber/v2"
)

//go:embed openapi.json
var description []byte

//go:embed docs
var pages embed.FS

// DescriptionPath is where the description is served.
const DescriptionPath = "/api/openapi.json"

// DocsPath is where the documentation page is served; its assets are under DocsPath+"/".
const DocsPath = "/docs"

// ContentSecurityPolicy guards the documentation page: scripts and styles from this origin
// only (Swagger UI sets style attributes, hence 'unsafe-inline' for styles, never scripts).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Description returns the OpenAPI description, JSON.
func Description() []byte { return bytes.Clone(description) }

// Register adds GET DescriptionPath, GET DocsPath and the page's assets to r.
func Register(r fiber.Router) {
	r.Get(DescriptionPath, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(description)
	})
	r.Get(DocsPath, func(c *fiber.Ctx) error { return sendPage(c, "index.html") })
	r.Get(DocsPath+"/:file", func(c *fiber.Ctx) error { return sendPage(c, c.Params("file")) })
}

// contentType is the type of one of the page's files that are served; the licence files
// go with the vendored code and are not served (ok false).
func contentType(name string) (ctype string, ok bool) {
	switch path.Ext(name) {
	case ".html":
		return fiber.MIMETextHTMLCharsetUTF8, true
	case ".js":
		return fiber.MIMETextJavaScriptCharsetUTF8, true
	case ".css":
		return "text/css; charset=utf-8", true
	}
	return "", false
}

func sendPage(c *fiber.Ctx, name string) error {
	ctype, ok := contentType(name)
	if !ok {
		return fiber.ErrNotFound
	}
	body, err := pages.ReadFile(path.Join("docs", name))
	if err != nil {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderContentSecurityPolicy, ContentSecurityPolicy)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderContentType, ctype)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Status(http.StatusOK).Send(body)
}
