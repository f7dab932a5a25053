package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/edge/internal/api"
	"github.com/codeexec/codeexec/edge/internal/apidoc"
	"github.com/codeexec/codeexec/shared/languages"
)

// newApp builds the edge's Fiber app as the edge does; no request here reaches NATS.
func newApp(t *testing.T) *fiber.App {
	t.Helper()
	catalog, err := languages.Default()
	if err != nil {
		t.Fatal(err)
	}
	app, err := api.New(api.Config{Region: "local"}, nil, catalog, nil, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func loadDescription(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(apidoc.Description())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		t.Fatalf("openapi.json is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid description: %v", err)
	}
	return doc
}

// fiberParam turns the description's {id} into Fiber's :id.
var descriptionParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestDescriptionCoversEveryRoute fails when the app answers a route under /api (or
// /healthz, /readyz) that openapi.json does not describe, or describes one the app lacks.
// Pages outside /api (/docs, the playground) are not part of the API.
func TestDescriptionCoversEveryRoute(t *testing.T) {
	doc := loadDescription(t)
	var described []api.Route
	for p, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, api.Route{Method: method, Path: descriptionParam.ReplaceAllString(p, ":$1")})
		}
	}
	var served []api.Route
	for _, r := range api.Routes(newApp(t)) {
		if strings.HasPrefix(r.Path, "/api/") || r.Path == "/healthz" || r.Path == "/readyz" {
			served = append(served, r)
		}
	}
	if len(served) < 25 {
		t.Fatalf("the app lists %d API routes, want every route of server.go: %v", len(served), served)
	}
	for _, r := range served {
		if !slices.Contains(described, r) {
			t.Errorf("%s %s is served but openapi.json does not describe it", r.Method, r.Path)
		}
	}
	for _, r := range described {
		if !slices.Contains(served, r) {
			t.Errorf("openapi.json describes %s %s, which the app does not serve", r.Method, r.Path)
		}
	}
}

// TestDescriptionOperations: every operation has an operationId (the Go client's method
// names follow them), a summary, and an answer for its errors in the error shape.
func TestDescriptionOperations(t *testing.T) {
	doc := loadDescription(t)
	ids := map[string]bool{}
	for p, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			switch {
			case op.OperationID == "":
				t.Errorf("%s %s has no operationId", method, p)
			case ids[op.OperationID]:
				t.Errorf("operationId %s is used twice", op.OperationID)
			case op.Summary == "":
				t.Errorf("%s has no summary", op.OperationID)
			}
			ids[op.OperationID] = true
			if strings.HasPrefix(p, "/api/") && p != apidoc.DescriptionPath && op.Responses.Value("503") == nil {
				t.Errorf("%s does not describe its 503 (every /api route answers 503 not_ready while the edge starts)", op.OperationID)
			}
		}
	}
}

func TestDocsPage(t *testing.T) {
	app := newApp(t)
	get := func(path string) (int, string, fiber.Map) {
		t.Helper()
		resp, err := app.Test(httptest.NewRequest("GET", path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		h := fiber.Map{}
		for k := range resp.Header {
			h[k] = resp.Header.Get(k)
		}
		return resp.StatusCode, string(body), h
	}
	status, page, h := get("/docs")
	if status != 200 || !strings.Contains(page, `id="api-docs"`) {
		t.Fatalf("GET /docs: got %d %.200s, want 200 with the page", status, page)
	}
	if h["Content-Security-Policy"] != apidoc.ContentSecurityPolicy || !strings.Contains(apidoc.ContentSecurityPolicy, "script-src 'self';") {
		t.Errorf("GET /docs: Content-Security-Policy %q, want %q with scripts from this origin only", h["Content-Security-Policy"], apidoc.ContentSecurityPolicy)
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/docs/`) {
			t.Errorf("GET /docs holds an inline script %s; the CSP refuses it", tag)
		}
	}
	for _, asset := range regexp.MustCompile(`(?:src|href)="(/docs/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		if status, body, _ := get(asset[1]); status != 200 || len(body) == 0 {
			t.Errorf("GET %s: got %d with %d bytes, want 200 with the file", asset[1], status, len(body))
		}
	}
	if status, _, _ := get("/docs/swagger-ui-LICENSE"); status != 404 {
		t.Errorf("GET /docs/swagger-ui-LICENSE: got %d, want 404 (only the page's own files are served)", status)
	}
	status, body, h := get(apidoc.DescriptionPath)
	if status != 200 || !strings.HasPrefix(h["Content-Type"].(string), "application/json") || body != string(apidoc.Description()) {
		t.Errorf("GET %s: got %d %v, want 200 application/json with openapi.json", apidoc.DescriptionPath, status, h["Content-Type"])
	}
}
