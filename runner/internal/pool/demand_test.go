package pool

import (
	"testing"
	"time"
)

func TestDemandFollowsRecentTakes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	d := newDemand(time.Minute, 1, 4, clock)
	if got := d.target(); got != 4 {
		t.Fatalf("no history yet: target %d, want the max 4", got)
	}
	now = now.Add(time.Minute)
	if got := d.target(); got != 1 {
		t.Fatalf("a window without takes: target %d, want the min 1", got)
	}
	for range 3 {
		d.take()
		now = now.Add(10 * time.Second)
	}
	if got := d.target(); got != 3 {
		t.Fatalf("3 takes in the window: target %d, want 3", got)
	}
	for range 10 {
		d.take()
	}
	if got := d.target(); got != 4 {
		t.Fatalf("13 takes: target %d, want the max 4", got)
	}
	now = now.Add(time.Minute + time.Second)
	if got := d.target(); got != 1 {
		t.Fatalf("the takes left the window: target %d, want the min 1", got)
	}
	idle := newDemand(time.Minute, 0, 4, clock)
	now = now.Add(time.Minute)
	if got := idle.target(); got != 0 {
		t.Fatalf("a language nobody uses: target %d, want 0", got)
	}
}

func TestRefillYieldsTheCPUToJobs(t *testing.T) {
	for _, tc := range []struct {
		idle        float64
		nothingWarm bool
		want        int
	}{
		{0.9, false, Creators},
		{0.3, false, 1},
		{0.1, false, 0},
		{0.1, true, 1}, // its next job would create one on the spot anyway
	} {
		if got := creators(tc.idle, tc.nothingWarm); got != tc.want {
			t.Errorf("creators(idle %.1f, nothing warm %v) = %d, want %d", tc.idle, tc.nothingWarm, got, tc.want)
		}
	}
}

func TestHostIdleReadsTheHost(t *testing.T) {
	if _, _, ok := readCPUTimes(); !ok {
		t.Fatal("/proc/stat unreadable")
	}
	if got := hostIdle(); got < 0 || got > 1 {
		t.Fatalf("idle share %v outside [0, 1]", got)
	}
}
