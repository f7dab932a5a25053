package integration

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/codeexec/codeexec/shared/config"
)

// TestAnonymousEndpointsAreLimitedPerAddress: register and login share one bucket per
// client address, so password guessing is bounded; a caller with a key is not affected.
func TestAnonymousEndpointsAreLimitedPerAddress(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.AnonRateBurst = 3
		c.AnonRatePerSec = 0.2
	})
	user := registerUser(t, mesh.URL) // token 1
	guess := map[string]string{"email": user.Email, "password": "not the password"}
	for i := range 2 { // tokens 2 and 3
		if a := do(t, mesh.URL, "POST", "/api/login", creds{}, guess); a.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: got %d %s, want 401", i+1, a.status, a.body)
		}
	}
	a := do(t, mesh.URL, "POST", "/api/login", creds{}, guess)
	if a.status != http.StatusTooManyRequests || a.errorCode() != "rate_limited" {
		t.Fatalf("guess 3: got %d %s, want 429 rate_limited", a.status, a.body)
	}
	if secs, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q: want whole seconds, at least 1", a.header.Get("Retry-After"))
	}
	if a := do(t, mesh.URL, "POST", "/api/register", creds{}, map[string]string{
		"email": "late@example.com", "username": "late", "password": "a long password"}); a.status != http.StatusTooManyRequests {
		t.Fatalf("register from the same address: got %d %s, want 429", a.status, a.body)
	}
	if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != testFreeCredit {
		t.Fatalf("a request with a key: got wallet %+v", w)
	}
}
