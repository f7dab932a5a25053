package limits

import (
	"testing"
	"time"
)

func TestTake(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const rate, burst = 2.0, 3
	var b Bucket
	for i := range burst {
		var ok bool
		b, ok, _ = Take(b, t0, rate, burst)
		if !ok {
			t.Fatalf("take %d of a full bucket of %d: refused", i+1, burst)
		}
	}
	next, ok, wait := Take(b, t0, rate, burst)
	if ok || wait != 500*time.Millisecond || next != b {
		t.Fatalf("empty bucket: got ok %v wait %v state %+v, want refused, 500ms, unchanged", ok, wait, next)
	}
	// A quarter second refills half a token: still refused, a quarter second to go.
	if _, ok, wait = Take(b, t0.Add(250*time.Millisecond), rate, burst); ok || wait != 250*time.Millisecond {
		t.Fatalf("after 250ms: got ok %v wait %v, want refused with 250ms", ok, wait)
	}
	if b, ok, _ = Take(b, t0.Add(500*time.Millisecond), rate, burst); !ok || b.Tokens != 0 {
		t.Fatalf("after 500ms: got ok %v tokens %v, want one token taken, none left", ok, b.Tokens)
	}
	// A long pause refills to the burst, no more.
	if b, ok, _ = Take(b, t0.Add(time.Hour), rate, burst); !ok || b.Tokens != burst-1 {
		t.Fatalf("after an hour: got ok %v tokens %v, want %d left", ok, b.Tokens, burst-1)
	}
	// A clock behind the state's time refills nothing and keeps the later time.
	late := Bucket{Tokens: 0.5, At: t0.UnixNano()}
	if next, ok, _ := Take(late, t0.Add(-time.Second), rate, burst); ok || next.At != late.At {
		t.Fatalf("clock behind: got ok %v state %+v, want refused, time kept", ok, next)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {10 * time.Second, 10}} {
		if got := RetryAfter(tc.wait); got != tc.want {
			t.Errorf("RetryAfter(%v): got %d, want %d", tc.wait, got, tc.want)
		}
	}
}
