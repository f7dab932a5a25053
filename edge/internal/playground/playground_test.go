package playground

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func newApp(t *testing.T) *fiber.App {
	t.Helper()
	site, err := New()
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	site.Register(app)
	return app
}

func get(t *testing.T, app *fiber.App, path string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", path, err)
	}
	return res, body
}

var (
	scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	assetRef  = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)
	nonceMeta = regexp.MustCompile(`<meta name="csp-nonce" content="([^"]+)">`)
	inlineOn  = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

// directive returns one directive of a Content-Security-Policy.
func directive(policy, name string) string {
	for _, d := range strings.Split(policy, ";") {
		d = strings.TrimSpace(d)
		if d == name || strings.HasPrefix(d, name+" ") {
			return d
		}
	}
	return ""
}

func TestPagesCarryAStrictPolicyAndNoInlineScript(t *testing.T) {
	app := newApp(t)
	var nonces []string
	for _, path := range []string{"/", "/s/0123456789abcdef", "/?project=abc"} {
		t.Run(path, func(t *testing.T) {
			res, body := get(t, app, path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("got %d, want 200", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type: got %q, want text/html", ct)
			}
			csp := res.Header.Get("Content-Security-Policy")
			if got := directive(csp, "script-src"); got != "script-src 'self'" {
				t.Errorf("script-src: got %q, want \"script-src 'self'\" (policy %q)", got, csp)
			}
			if got := directive(csp, "default-src"); got != "default-src 'none'" {
				t.Errorf("default-src: got %q, want 'none'", got)
			}
			if strings.Contains(csp, "unsafe-") {
				t.Errorf("policy %q admits something unsafe", csp)
			}
			m := nonceMeta.FindSubmatch(body)
			if m == nil {
				t.Fatalf("the page has no csp-nonce meta:\n%s", body)
			}
			nonce := string(m[1])
			if got, want := directive(csp, "style-src"), "style-src 'self' 'nonce-"+nonce+"'"; got != want {
				t.Errorf("style-src: got %q, want %q", got, want)
			}
			nonces = append(nonces, nonce)
			scripts := scriptTag.FindAllSubmatch(body, -1)
			if len(scripts) == 0 {
				t.Fatal("the page loads no script")
			}
			for _, s := range scripts {
				if !bytes.Contains(s[1], []byte(`src="/assets/`)) || len(bytes.TrimSpace(s[2])) > 0 {
					t.Errorf("inline script or script from elsewhere: %s", s[0])
				}
			}
			if inlineOn.Match(body) {
				t.Errorf("the page has an inline event handler attribute")
			}
			for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"} {
				if res.Header.Get(h) == "" {
					t.Errorf("header %s is missing", h)
				}
			}
		})
	}
	if len(nonces) == 3 && (nonces[0] == nonces[1] || nonces[1] == nonces[2]) {
		t.Errorf("the nonce is not fresh per page: %v", nonces)
	}
}

func TestEveryAssetThePageNamesIsServed(t *testing.T) {
	app := newApp(t)
	_, page := get(t, app, "/", nil)
	refs := assetRef.FindAllSubmatch(page, -1)
	if len(refs) < 3 { // script, style, licenses
		t.Fatalf("got %d asset references in the page, want at least 3", len(refs))
	}
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
	for _, r := range refs {
		path := string(r[1])
		res, plain := get(t, app, path, nil)
		if res.StatusCode != http.StatusOK || len(plain) == 0 {
			t.Errorf("GET %s: got %d with %d bytes, want 200 with a body", path, res.StatusCode, len(plain))
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantType[filepath.Ext(path)]) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, wantType[filepath.Ext(path)])
		}
		if res.Header.Get("Content-Encoding") != "" {
			t.Errorf("GET %s without Accept-Encoding: got Content-Encoding %q", path, res.Header.Get("Content-Encoding"))
		}
		res, packed := get(t, app, path, map[string]string{"Accept-Encoding": "gzip, deflate"})
		if res.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("GET %s with gzip accepted: Content-Encoding %q, want gzip", path, res.Header.Get("Content-Encoding"))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(packed))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		unpacked, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unpacked, plain) {
			t.Errorf("GET %s: the gzip body does not unpack to the plain one (err %v)", path, err)
		}
	}
}

func TestUnknownAssetsAreNotFound(t *testing.T) {
	app := newApp(t)
	for _, path := range []string{"/assets/nope.js", "/assets/..%2Fplayground.go", "/assets/", "/s/", "/index.html"} {
		res, _ := get(t, app, path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, res.StatusCode)
		}
	}
}

// inputsDigest is web/build.sh's digest of the bundle's inputs: sha256 over lines
// "<sha256 of file>  <path>" for package.json, package-lock.json, build.mjs and every file
// under src/, sorted by path.
func inputsDigest(t *testing.T, dir string) string {
	t.Helper()
	files := []string{"package.json", "package-lock.json", "build.mjs"}
	err := filepath.WalkDir(filepath.Join(dir, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	var lines strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, "%x  %s\n", sha256.Sum256(b), f)
	}
	sum := sha256.Sum256([]byte(lines.String()))
	return hex.EncodeToString(sum[:])
}

// TestBundleIsBuiltFromTheSources fails when web/ changed after the last `make playground`:
// the committed bundle would not be what the sources say.
func TestBundleIsBuiltFromTheSources(t *testing.T) {
	stamp, err := os.ReadFile("dist/inputs.sha256")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := inputsDigest(t, "web"), strings.TrimSpace(string(stamp)); got != want {
		t.Errorf("the playground's sources changed since its bundle was built (digest %s, bundle built from %s): run `make playground` and commit dist/", got, want)
	}
}

// TestThePageCarriesTheTestIDs keeps the data-testid hooks that browser tests and users'
// own scripts rely on.
func TestThePageCarriesTheTestIDs(t *testing.T) {
	_, page := get(t, newApp(t), "/", nil)
	for _, id := range []string{"email", "username", "password", "register", "login", "logout",
		"language", "editor", "stdin", "args", "run", "stdout", "stderr", "status", "usage", "wallet",
		"save", "project-name", "projects", "share", "share-link", "fork", "notice"} {
		if n := bytes.Count(page, []byte(`data-testid="`+id+`"`)); n != 1 {
			t.Errorf("data-testid %q: got %d elements, want 1", id, n)
		}
	}
}
