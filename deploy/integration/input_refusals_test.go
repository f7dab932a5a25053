package integration

import (
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/messages"
)

// TestInputRefusals: every request the edge cannot run ends in a clear 4xx in the error
// shape, quoting no more than an excerpt of its input, and leaves no hold behind.
func TestInputRefusals(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Services = []string{"accounts", "ledger", "edge"} // no runner: accepted jobs stay queued
		c.NATSListen = "127.0.0.1:0"
		c.Languages = nil
		c.RatePerSec, c.RateBurst = 1000, 1000
	})
	announceRunner(t, mesh.NATSURL, "python")
	waitAvailable(t, mesh.URL, "python")
	user := registerUser(t, mesh.URL)
	huge := strings.Repeat("x", 7<<20)
	files := func(names ...string) []map[string]any {
		var out []map[string]any
		for i, n := range names {
			out = append(out, map[string]any{"filename": n, "code": "print(1)", "isEntryPoint": i == 0})
		}
		return out
	}
	cases := []struct {
		name, path string
		body       any
		status     int
		code       string
		says       string // the message holds it
	}{
		{"7 MB language", "/api/v1/execute", map[string]any{"language": huge, "code": "x"}, 400, "unknown_language", "xxx…"},
		{"7 MB unknown field", "/api/v1/execute", map[string]any{"language": "python", "code": "x", huge: 1}, 400, "invalid_input", "unknown field"},
		{"7 MB filename", "/api/v2/execute", map[string]any{"language": "python", "files": files(huge)}, 400, "invalid_files", "longer than"},
		{"7 MB project language", "/api/projects", map[string]any{"name": "p", "language": huge, "files": files("main.py")}, 400, "unknown_language", "xxx…"},
		{"stdin of control bytes over the job size", "/api/v1/execute",
			map[string]any{"language": "python", "code": "x", "stdin": strings.Repeat("\x01", messages.MaxStdinBytes), "wait": false},
			413, "job_too_large", "over the limit of"},
		{"memory 1", "/api/v1/execute", map[string]any{"language": "python", "code": "x", "limits": map[string]any{"memoryBytes": 1}}, 400, "invalid_limits", "the minimum for python is 33554432"},
		{"cpu 1", "/api/v1/execute", map[string]any{"language": "python", "code": "x", "limits": map[string]any{"cpuMillis": 1}}, 400, "invalid_limits", "the minimum for python is 100"},
		{"pids 1", "/api/v1/execute", map[string]any{"language": "python", "code": "x", "limits": map[string]any{"pids": 1}}, 400, "invalid_limits", "the minimum for python is 16"},
		{"java memory under its own floor", "/api/v1/execute", map[string]any{"language": "java", "code": "x", "limits": map[string]any{"memoryBytes": 32 << 20}}, 400, "invalid_limits", "the minimum for java is 67108864"},
		{"file and directory", "/api/v2/execute", map[string]any{"language": "python", "files": files("main.py", "a", "a/b.py")}, 400, "invalid_files", `"a" is also the directory of "a/b.py"`},
		{"duplicate file", "/api/v2/execute", map[string]any{"language": "python", "files": files("main.py", "main.py")}, 400, "invalid_files", "given twice"},
		{"project with a file and directory", "/api/projects", map[string]any{"name": "p", "language": "python", "files": files("main.py", "a", "a/b.py")}, 400, "invalid_files", "is also the directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, mesh.URL, "POST", tc.path, creds{key: user.APIKey}, tc.body)
			var e executeAnswer
			a.decode(t, &e)
			if a.status != tc.status || a.errorCode() != tc.code || !strings.Contains(e.Error.Message, tc.says) {
				t.Fatalf("got %d %.300s, want %d %s saying %q", a.status, a.body, tc.status, tc.code, tc.says)
			}
			if len(a.body) > 1<<10 {
				t.Fatalf("the answer is %d bytes, want under 1 KiB", len(a.body))
			}
		})
	}
	if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != testFreeCredit || w.HeldMicros != 0 {
		t.Fatalf("after the refusals: wallet %+v, want the free credit untouched and nothing held", w)
	}
	// The limits are in the encoding, not in the bytes: 1 MiB of plain stdin is queued.
	a := do(t, mesh.URL, "POST", "/api/v1/execute", creds{key: user.APIKey},
		map[string]any{"language": "python", "code": "x", "stdin": strings.Repeat("a", messages.MaxStdinBytes), "wait": false,
			"limits": map[string]any{"memoryBytes": 32 << 20, "cpuMillis": 100, "pids": 16}})
	if a.status != 202 {
		t.Fatalf("1 MiB of plain stdin at the minimum limits: got %d %.300s, want 202", a.status, a.body)
	}
}

// TestMetricsAreOffTheAPIPort: the public API port answers /metrics with 404; the
// all-in-one's one metrics listener serves the edge's metrics and the other parts'.
func TestMetricsAreOffTheAPIPort(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Services = []string{"accounts", "ledger", "edge"}
		c.Languages = nil
	})
	registerUser(t, mesh.URL) // something for the edge and accounts to count
	a := do(t, mesh.URL, "GET", "/metrics", creds{}, nil)
	if a.status != 404 || a.errorCode() != "not_found" {
		t.Fatalf("GET /metrics on the API port: got %d %.200s, want 404 not_found", a.status, a.body)
	}
	if mesh.MetricsURL == "" || mesh.MetricsURL == mesh.URL {
		t.Fatalf("metrics URL %q: want a listener of its own, not the API's %q", mesh.MetricsURL, mesh.URL)
	}
	m := do(t, mesh.MetricsURL, "GET", "/metrics", creds{}, nil)
	if m.status != 200 {
		t.Fatalf("GET /metrics on the metrics listener: got %d, want 200", m.status)
	}
	for _, metric := range []string{"codeexec_edge_http_requests_total", "codeexec_accounts_registrations_total"} {
		if !strings.Contains(m.text(), metric) {
			t.Errorf("the metrics listener does not serve %s", metric)
		}
	}
}
