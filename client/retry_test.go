package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codeexec/codeexec/client"
)

// limitedServer answers its first `refusals` calls with status and Retry-After: 1, then
// 200 with a wallet.
func limitedServer(t *testing.T, status, refusals int, jobID string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if int(calls.Add(1)) <= refusals {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(status)
			w.Write([]byte(`{"succeeded":false,"error":{"code":"rate_limited","message":"slow down"},"jobId":"` + jobID + `"}`))
			return
		}
		w.Write([]byte(`{"balanceMicros":990000,"balance":"0.99","heldMicros":0,"currency":"USD","priceMicros":10000}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestRetryAfter(t *testing.T) {
	ctx := context.Background()
	t.Run("off by default: a typed error with the code and the wait", func(t *testing.T) {
		srv, calls := limitedServer(t, 429, 1, "")
		c, err := client.New(srv.URL, client.WithAPIKey("k"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Wallet(ctx)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 429 || e.Code != "rate_limited" || e.RetryAfter != time.Second {
			t.Fatalf("got %v, want *client.Error 429 rate_limited with RetryAfter 1s", err)
		}
		if !client.IsCode(err, "rate_limited") || calls.Load() != 1 {
			t.Fatalf("IsCode %v, %d calls; want true, 1", client.IsCode(err, "rate_limited"), calls.Load())
		}
	})
	t.Run("on: waits as asked and succeeds", func(t *testing.T) {
		srv, calls := limitedServer(t, 503, 1, "")
		c, _ := client.New(srv.URL, client.WithRetry(3*time.Second))
		start := time.Now()
		w, err := c.Wallet(ctx)
		if err != nil || w.BalanceMicros != 990000 {
			t.Fatalf("got %+v %v, want the wallet", w, err)
		}
		if took := time.Since(start); took < time.Second || calls.Load() != 2 {
			t.Fatalf("took %s in %d calls, want at least the 1 s asked for, 2 calls", took, calls.Load())
		}
	})
	t.Run("on: gives up past the max wait", func(t *testing.T) {
		srv, calls := limitedServer(t, 429, 5, "")
		c, _ := client.New(srv.URL, client.WithRetry(2*time.Second))
		if _, err := c.Wallet(ctx); !client.IsCode(err, "rate_limited") || calls.Load() != 3 {
			t.Fatalf("got %v after %d calls, want rate_limited after 3 (two waits of 1 s fit in 2 s)", err, calls.Load())
		}
	})
	t.Run("never retries a 503 about a job that runs", func(t *testing.T) {
		srv, calls := limitedServer(t, 503, 1, "0f8c2d7e")
		c, _ := client.New(srv.URL, client.WithRetry(3*time.Second))
		var e *client.Error
		if _, err := c.Wallet(ctx); !errors.As(err, &e) || e.JobID != "0f8c2d7e" || calls.Load() != 1 {
			t.Fatalf("got %v after %d calls, want the error with its jobId after 1", err, calls.Load())
		}
	})
	t.Run("stops waiting when the context ends", func(t *testing.T) {
		srv, _ := limitedServer(t, 429, 5, "")
		c, _ := client.New(srv.URL, client.WithRetry(time.Minute))
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.Wallet(cctx); !errors.Is(err, context.DeadlineExceeded) || !client.IsCode(err, "rate_limited") {
			t.Fatalf("got %v, want rate_limited and the context's deadline", err)
		}
		if took := time.Since(start); took > 900*time.Millisecond {
			t.Fatalf("took %s, want an end at the context's deadline (200 ms)", took)
		}
	})
}
