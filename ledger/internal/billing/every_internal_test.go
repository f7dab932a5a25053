package billing

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestEveryTicksUntilStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		stop := every(10*time.Second, func() { calls.Add(1) })
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if n := calls.Load(); n != 0 {
			t.Fatalf("before the first period: %d calls, want 0", n)
		}
		time.Sleep(26 * time.Second) // at 10, 20 and 30 s
		synctest.Wait()
		if n := calls.Load(); n != 3 {
			t.Fatalf("after 35 s: %d calls, want 3", n)
		}
		stop()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := calls.Load(); n != 3 {
			t.Fatalf("after stop: %d calls, want still 3", n)
		}
	})
}
