// Package limits holds the request limits that must hold across every edge: a token bucket
// per credential and a lease record of running executions per account. Both live in
// JetStream key-value buckets and change only by compare-and-set (Update with the revision
// read), which the server applies atomically; an edge's own copy only saves a read.
package limits

import (
	"math"
	"time"
)

// Bucket is a token bucket's state: Tokens left at At (unix nanoseconds).
type Bucket struct {
	Tokens float64 `json:"t"`
	At     int64   `json:"at"`
}

// Take refills b for the time since b.At at rate tokens per second up to burst, then takes
// one token. It returns the new state, or ok false and how long until a token is there.
// A zero b is a full bucket.
func Take(b Bucket, now time.Time, rate float64, burst int) (next Bucket, ok bool, wait time.Duration) {
	tokens := float64(burst)
	at := now.UnixNano()
	if b.At != 0 {
		elapsed := float64(at-b.At) / 1e9
		if elapsed < 0 { // another edge's clock ran ahead: no refill, keep its time
			elapsed, at = 0, b.At
		}
		tokens = math.Min(float64(burst), b.Tokens+elapsed*rate)
	}
	if tokens < 1 {
		return b, false, time.Duration(math.Ceil((1 - tokens) / rate * 1e9))
	}
	return Bucket{Tokens: tokens - 1, At: at}, true, 0
}

// RetryAfter turns a wait into whole seconds for the Retry-After header, at least 1.
func RetryAfter(wait time.Duration) int {
	s := int(math.Ceil(wait.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}
