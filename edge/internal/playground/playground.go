// Package playground serves the web playground: its page at / and at /s/:shareId (a shared
// project's read-only view), and its bundled assets under /assets/. Everything is embedded
// in the binary, so the playground works with no internet. The page talks to the /api
// routes of the same edge with the session cookie.
//
// The bundle in dist/ is built from web/ by web/build.sh (`make playground`) and committed.
package playground

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

//go:embed dist/index.html dist/assets
var dist embed.FS

// nonceSlot is where the page takes the per-response nonce that CodeMirror puts on the
// style elements it creates (the policy admits no other inline style, and no inline script).
const nonceSlot = "{{nonce}}"

// policy is the Content-Security-Policy of every playground response; nonce, when set,
// admits the style elements that carry it.
func policy(nonce string) string {
	style := "'self'"
	if nonce != "" {
		style += " 'nonce-" + nonce + "'"
	}
	return "default-src 'none'; script-src 'self'; style-src " + style + "; " +
		"img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'"
}

var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
}

// asset is one bundled file, with its gzip form for clients that take it.
type asset struct {
	body, gzipped []byte
	contentType   string
}

// Site is the playground's pages and assets, read from the embedded bundle.
type Site struct {
	index  []byte
	assets map[string]asset
}

// New reads the embedded bundle.
func New() (*Site, error) {
	index, err := dist.ReadFile("dist/index.html")
	if err != nil {
		return nil, fmt.Errorf("read the page: %w", err)
	}
	if !bytes.Contains(index, []byte(nonceSlot)) {
		return nil, fmt.Errorf("the page has no %s slot", nonceSlot)
	}
	s := &Site{index: index, assets: map[string]asset{}}
	entries, err := fs.ReadDir(dist, "dist/assets")
	if err != nil {
		return nil, fmt.Errorf("list the assets: %w", err)
	}
	for _, e := range entries {
		ct, ok := contentTypes[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		body, err := dist.ReadFile("dist/assets/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read asset %s: %w", e.Name(), err)
		}
		gz, err := gzipped(body)
		if err != nil {
			return nil, fmt.Errorf("compress asset %s: %w", e.Name(), err)
		}
		s.assets[e.Name()] = asset{body: body, gzipped: gz, contentType: ct}
	}
	return s, nil
}

func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Register adds the playground's routes; none is under /api.
func (s *Site) Register(r fiber.Router) {
	r.Get("/", s.page)
	r.Get("/s/:shareId", s.page)
	r.Get("/assets/:name", s.asset)
}

// secure sets the headers every playground response carries.
func secure(c *fiber.Ctx, nonce string) {
	c.Set(fiber.HeaderContentSecurityPolicy, policy(nonce))
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "same-origin")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
}

// page answers the playground's page, with a fresh nonce for its style elements. The
// script reads the path to tell the playground from a shared project's view.
func (s *Site) page(c *fiber.Ctx) error {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("make a nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(raw[:])
	secure(c, nonce)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(bytes.Replace(s.index, []byte(nonceSlot), []byte(nonce), 1))
}

// asset answers a bundled file. Their names carry a digest of their content, so they
// never change and may be cached for good.
func (s *Site) asset(c *fiber.Ctx) error {
	a, ok := s.assets[c.Params("name")]
	if !ok {
		return fiber.ErrNotFound
	}
	secure(c, "")
	c.Set(fiber.HeaderContentType, a.contentType)
	c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	if strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip") {
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(a.gzipped)
	}
	return c.Send(a.body)
}
