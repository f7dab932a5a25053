// Package waitfor is the one way CodeExec's tests wait: for a condition, polled, with a
// deadline that fails the test — never a sleep followed by an assertion.
package waitfor

import (
	"testing"
	"time"
)

// pollEvery is the pause between two checks of a condition.
const pollEvery = 20 * time.Millisecond

// Eventually polls cond until it holds, failing the test when cond errs or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, timeout)
		}
		time.Sleep(pollEvery)
	}
}
