package integration

import (
	"sync"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/config"
)

// TestConcurrentExecutionsNeverOverdraw sends 4N executions at once from a wallet that
// pays for exactly N: N run, 3N are refused with 402, and the balance ends at 0.
func TestConcurrentExecutionsNeverOverdraw(t *testing.T) {
	const n = 5
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.FreeCreditMicros = n * testPrice
		c.RateBurst = 100
		c.RatePerSec = 100
		c.MaxConcurrent = 100
		c.RunnerSlots = 4
	})
	user := registerUser(t, mesh.URL)

	var wg sync.WaitGroup
	statuses := make([]int, 4*n)
	outputs := make([]string, 4*n)
	start := make(chan struct{})
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, a := execute(t, mesh.URL, user.APIKey, map[string]any{"language": "python", "code": "print('paid')"})
			statuses[i], outputs[i] = status, a.Result.Stdout
		}()
	}
	close(start)
	wg.Wait()

	ran, refused := 0, 0
	for i, s := range statuses {
		switch s {
		case 200:
			ran++
			if outputs[i] != "paid\n" {
				t.Errorf("request %d: got output %q", i, outputs[i])
			}
		case 402:
			refused++
		default:
			t.Errorf("request %d: got status %d, want 200 or 402", i, s)
		}
	}
	if ran != n || refused != 3*n {
		t.Fatalf("got %d run and %d refused, want %d and %d", ran, refused, n, 3*n)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		w := getWallet(t, mesh.URL, user.APIKey)
		if w.BalanceMicros != 0 {
			t.Fatalf("balance: got %d, want 0", w.BalanceMicros)
		}
		if w.HeldMicros == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holds never settled: %+v", w)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var page usagePage
	for {
		page = usagePage{}
		call(t, mesh.URL, "GET", "/api/usage", user.APIKey, nil, &page)
		if page.Totals.Executions == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if page.Totals.Executions != n || page.Totals.PriceMicros != n*testPrice {
		t.Fatalf("usage totals: got %+v, want %d executions costing %d", page.Totals, n, n*testPrice)
	}
}
