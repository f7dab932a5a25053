package integration

import (
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/config"
)

// TestAuthAndLimitLatency measures what the credential check, the rate-limit token and the
// concurrency lease add to an execute request, from the edge's own histograms (sums and
// counts: exact means), over sequential python executions. Run with -v to read it.
func TestAuthAndLimitLatency(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.FreeCreditMicros = 1_000_000_000
		c.Languages = []string{"python"}
		c.RatePerSec, c.RateBurst = 1000, 1000
		// Every execution after the first must find the key cached, however slowly a
		// loaded host runs the 40 of them.
		c.KeyCacheTTL = 10 * time.Minute
	})
	base := mesh.URL
	user := registerUser(t, base)
	cr := creds{key: user.APIKey}
	run := func() {
		t.Helper()
		expect(t, do(t, base, "POST", "/api/v1/execute", cr, map[string]any{"language": "python", "code": "print(1)", "saveMetric": false}), 200, "", "execute")
	}
	run() // warm: the key is cached, the limit states are known to this edge

	const n = 40
	before := do(t, mesh.MetricsURL, "GET", "/metrics", creds{}, nil).text()
	start := time.Now()
	for range n {
		run()
	}
	wall := time.Since(start)
	after := do(t, mesh.MetricsURL, "GET", "/metrics", creds{}, nil).text()
	mean := func(metric string, labels ...string) (time.Duration, float64) {
		sum := metricValue(after, metric+"_sum", labels...) - metricValue(before, metric+"_sum", labels...)
		count := metricValue(after, metric+"_count", labels...) - metricValue(before, metric+"_count", labels...)
		if count == 0 {
			return 0, 0
		}
		return time.Duration(sum / count * float64(time.Second)), count
	}
	auth, authN := mean("codeexec_edge_auth_seconds", `check="hit"`)
	rate, _ := mean("codeexec_edge_limit_seconds", `op="rate"`)
	acquire, acqN := mean("codeexec_edge_limit_seconds", `op="acquire"`)
	release, relN := mean("codeexec_edge_limit_seconds", `op="release"`)
	if authN != n || acqN != n || relN != n {
		t.Fatalf("got %v cached auths, %v acquisitions, %v releases, want %d each", authN, acqN, relN, n)
	}
	added := auth + acquire + release
	t.Logf("per execute request, mean over %d (request %v on average): credential check from cache + rate token %v (of which the token %v), lease acquire %v, lease release %v: %v added",
		n, wall/n, auth, rate, acquire, release, added)

	// The miss path: a key this edge has not seen asks accounts.
	const misses = 20
	before = do(t, mesh.MetricsURL, "GET", "/metrics", creds{}, nil).text()
	for range misses {
		k := registerUser(t, base)
		expect(t, do(t, base, "GET", "/api/wallet", creds{key: k.APIKey}, nil), 200, "", "wallet with a new key")
	}
	after = do(t, mesh.MetricsURL, "GET", "/metrics", creds{}, nil).text()
	miss, missN := mean("codeexec_edge_auth_seconds", `check="miss"`)
	if missN != misses {
		t.Fatalf("got %v uncached auths, want %d", missN, misses)
	}
	t.Logf("credential check asking accounts (cache miss) + rate token: %v mean over %d", miss, misses)
	if added > 50*time.Millisecond || miss > 100*time.Millisecond {
		t.Errorf("the hot path is slow: %v added per execute, %v per cache miss", added, miss)
	}
}
