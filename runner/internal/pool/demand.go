package pool

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// DemandWindow is how far back a language's takes count toward its warm pool's size.
const DemandWindow = 2 * time.Minute

// demand sizes one language's warm pool from its recent takes: as many warm containers as
// jobs took in the last window, within [min, max]. A language nobody used for a window
// keeps min warm (none by default); a busy one up to max, whatever the others do. Until
// the pool has run for a window, with no history yet, the target is max.
type demand struct {
	window   time.Duration
	min, max int
	now      func() time.Time
	started  time.Time
	takes    []time.Time // oldest first, within the window
}

func newDemand(window time.Duration, min, max int, now func() time.Time) *demand {
	return &demand{window: window, min: min, max: max, now: now, started: now()}
}

func (d *demand) take() {
	d.takes = append(d.takes, d.now())
	d.trim()
}

func (d *demand) trim() {
	cut := d.now().Add(-d.window)
	i := 0
	for i < len(d.takes) && d.takes[i].Before(cut) {
		i++
	}
	d.takes = d.takes[i:]
}

// target is how many warm containers the language should have now.
func (d *demand) target() int {
	d.trim()
	if d.now().Sub(d.started) < d.window {
		return d.max
	}
	return max(d.min, min(len(d.takes), d.max))
}

// creators is how many warm containers may be created at once, given the share of the
// host's CPU that is idle: creating one costs the daemon tens of milliseconds of CPU, which
// running jobs need more. A language with nothing warm gets one creator whatever the load:
// its next job would create a container on the spot anyway.
func creators(idle float64, nothingWarm bool) int {
	switch {
	case idle >= 0.5:
		return Creators
	case idle >= 0.25 || nothingWarm:
		return 1
	default:
		return 0
	}
}

// idleSample is how long the host's idle CPU share is sampled for, at each look: the state
// now, not since the last look (a job that just ended must not hold its replacement back).
const idleSample = 50 * time.Millisecond

// hostIdle samples the host's idle CPU share over idleSample, from /proc/stat. Where that
// cannot be read, the host counts as idle (the refill is not held back).
func hostIdle() float64 {
	idle0, all0, ok := readCPUTimes()
	if !ok {
		return 1
	}
	time.Sleep(idleSample)
	idle1, all1, ok := readCPUTimes()
	if !ok || all1 <= all0 {
		return 1
	}
	return float64(idle1-idle0) / float64(all1-all0)
}

// readCPUTimes returns the host's idle (idle and iowait) and total CPU ticks.
func readCPUTimes() (idle, all int64, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		all += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return idle, all, true
}
