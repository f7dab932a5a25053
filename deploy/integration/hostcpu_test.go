package integration

import (
	"bytes"
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// hostCPU is a reading of where the host's CPU time went, from /proc: the whole host's busy
// time (/proc/stat), and that of the long-lived processes a job's container goes through,
// by name. What short-lived processes used (container shims, the OCI runtime, the user's
// program, docker-init) is the rest: their time is gone from /proc once they exit.
type hostCPU struct {
	busy   time.Duration
	byName map[string]time.Duration
}

// cpuParts are the process names read (as /proc/PID/comm shows them), in report order;
// "codeexec" is this test process, where the benchmark's mesh (edge, runner, ledger,
// accounts, NATS and FerretDB) runs.
var cpuParts = []string{"dockerd", "containerd", "codeexec"}

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux this runs on.
const clockTick = 100

func readHostCPU() (hostCPU, error) {
	h := hostCPU{byName: map[string]time.Duration{}}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return h, err
	}
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line)) // cpu user nice system idle iowait irq softirq steal …
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i > 7 { // guest times are already in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		h.busy += ticks(n)
	}
	self := os.Getpid()
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range pids {
		pid, _ := strconv.Atoi(filepath.Base(dir))
		data, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid … utime(14) stime(15) cutime(16) cstime(17)
		end := bytes.LastIndexByte(data, ')')
		start := bytes.IndexByte(data, '(')
		if start < 0 || end < start {
			continue
		}
		name := string(data[start+1 : end])
		if pid == self {
			name = "codeexec"
		}
		fields := strings.Fields(string(data[end+1:]))
		if len(fields) < 15 {
			continue
		}
		// The process's own time only: what its children used (a shim's first call for
		// containerd, the OCI runtime's calls for the direct engine's runner, dockerd's
		// hooks) is process accounting's (procacct_test.go), and counted there.
		var sum int64
		for _, i := range []int{11, 12} { // utime, stime
			n, _ := strconv.ParseInt(fields[i], 10, 64)
			sum += n
		}
		h.byName[name] += ticks(sum)
	}
	return h, nil
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }

// cpuPerJob is what one job cost the host between two readings: in all, per part, and the
// rest, in milliseconds.
type cpuPerJob struct {
	total float64
	parts map[string]float64
	rest  float64
}

func (h hostCPU) perJob(before hostCPU, jobs int) cpuPerJob {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(jobs) }
	c := cpuPerJob{total: ms(h.busy - before.busy), parts: map[string]float64{}}
	c.rest = c.total
	for _, p := range cpuParts {
		c.parts[p] = ms(h.byName[p] - before.byName[p])
		c.rest -= c.parts[p]
	}
	return c
}

// topGrowth names the n processes whose CPU time grew most between two readings. An init
// (PID 1) that grows is reaping orphans: container shims and their runtime calls, whose
// time is added to it when they exit.
func (h hostCPU) topGrowth(before hostCPU, n int) string {
	type grew struct {
		name string
		d    time.Duration
	}
	var all []grew
	for name, d := range h.byName {
		if strings.HasPrefix(name, "kworker/") {
			continue // a kernel worker's name changes with its work: its times do not add up
		}
		if g := d - before.byName[name]; g > 0 {
			all = append(all, grew{name, g})
		}
	}
	slices.SortFunc(all, func(a, b grew) int { return cmp.Compare(b.d, a.d) })
	var parts []string
	for _, g := range all[:min(n, len(all))] {
		parts = append(parts, g.name+"="+g.d.Round(time.Millisecond).String())
	}
	return strings.Join(parts, " ")
}
