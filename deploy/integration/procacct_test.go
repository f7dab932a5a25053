package integration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processAccounting records the CPU time of every process that ends while it is on, with
// the kernel's process accounting (acct(2), BSD process accounting): the short-lived
// processes of a job's container — its shim, each call of the OCI runtime, the launcher,
// the user's program — which /proc has forgotten by the time a benchmark reads it. It needs
// root and a kernel built with BSD_PROCESS_ACCT. One file per host is written at a time:
// turning it on replaces any other.
type processAccounting struct{ file string }

func startProcessAccounting(dir string) (*processAccounting, error) {
	file := filepath.Join(dir, "pacct")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		return nil, err
	}
	if err := syscall.Acct(file); err != nil {
		return nil, fmt.Errorf("process accounting: %w", err)
	}
	return &processAccounting{file: file}, nil
}

// stop turns accounting off and returns the CPU time of the processes that ended, by their
// command name (the last program each ran: a shell that exec'd sleep is "sleep").
func (p *processAccounting) stop() (map[string]time.Duration, error) {
	// acct(NULL) turns it off (an empty path is a missing file to the kernel).
	if _, _, errno := syscall.Syscall(syscall.SYS_ACCT, 0, 0, 0); errno != 0 {
		return nil, fmt.Errorf("process accounting off: %w", errno)
	}
	data, err := os.ReadFile(p.file)
	if err != nil {
		return nil, err
	}
	return parseAccounting(data)
}

// acctV3Size is the size of the kernel's struct acct_v3 (linux/acct.h).
const acctV3Size = 64

// parseAccounting reads acct_v3 records: flag, version (3), tty, exit code, uid, gid, pid,
// ppid, btime, etime (float), then utime, stime and six more comp_t, then the command name.
func parseAccounting(data []byte) (map[string]time.Duration, error) {
	if len(data)%acctV3Size != 0 {
		return nil, fmt.Errorf("process accounting: %d bytes, not whole %d-byte records", len(data), acctV3Size)
	}
	byName := map[string]time.Duration{}
	for rec := range slices.Chunk(data, acctV3Size) {
		if rec[1] != 3 {
			return nil, errors.New("process accounting: not in the v3 format")
		}
		utime := compT(binary.LittleEndian.Uint16(rec[32:]))
		stime := compT(binary.LittleEndian.Uint16(rec[34:]))
		name, _, _ := strings.Cut(string(rec[48:64]), "\x00")
		byName[name] += ticks(int64(utime + stime)) // in AHZ ticks: 100 per second
	}
	return byName, nil
}

// compT decodes the kernel's comp_t: a 13-bit mantissa and a 3-bit base-8 exponent.
func compT(v uint16) uint64 { return uint64(v&0x1fff) << (3 * (v >> 13)) }

// endedParts are the short-lived processes of a job, by part, as process accounting names
// them: the container shim, the OCI runtime (each call, and its init before it becomes the
// launcher), the launcher (a shell that ends as sleep; tar unpacks the files), and the
// program (python3 in the benchmark), and reexec: processes started from /proc/self/exe,
// whose name is "exe". Under runsc those are gVisor's Sentry, its gofer and the ptrace
// platform's stubs (runsc re-executes itself), which hold the launcher's and the program's
// time, unseen by the host, with gVisor's own work. A plain `docker run` has them too:
// dockerd runs itself as the container's libnetwork-setkey hook, to set up its network
// sandbox, which CodeExec's containers (NetworkDisabled) skip.
var endedParts = []struct {
	part  string
	match func(name string) bool
}{
	{"shim", func(n string) bool { return strings.HasPrefix(n, "containerd-shim") }},
	{"runtime", func(n string) bool { return n == "crun" || n == "runsc" || strings.HasPrefix(n, "runc") }},
	{"reexec", func(n string) bool { return n == "exe" || strings.HasPrefix(n, "runsc-") }},
	{"launcher", func(n string) bool { return n == "sh" || n == "sleep" || n == "tar" || n == "setpriv" }},
	{"program", func(n string) bool { return n == "python3" }},
}

// endedPerJob sums what ended processes used by part, in milliseconds per job.
func endedPerJob(byName map[string]time.Duration, jobs int) map[string]float64 {
	out := map[string]float64{}
	for name, d := range byName {
		for _, p := range endedParts {
			if p.match(name) {
				out[p.part] += float64(d) / float64(time.Millisecond) / float64(jobs)
				break
			}
		}
	}
	return out
}

// Process accounting reads this kernel's records: a shell that spins a moment is found
// with its CPU time.
func TestProcessAccountingSeesEndedProcesses(t *testing.T) {
	acct, err := startProcessAccounting(t.TempDir())
	if err != nil {
		t.Fatalf("%v (the benchmark's CPU split needs root and BSD process accounting)", err)
	}
	spin := exec.Command("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`)
	runErr := spin.Run()
	byName, err := acct.stop()
	if runErr != nil || err != nil {
		t.Fatalf("spin: %v; accounting: %v", runErr, err)
	}
	if spun := spin.ProcessState.UserTime() + spin.ProcessState.SystemTime(); byName["sh"] < spun/2 {
		t.Errorf("accounting has sh at %s, the process itself says %s; all: %v", byName["sh"], spun, byName)
	}
	if got := compT(0x2001); got != 8 {
		t.Errorf("comp_t 0x2001: got %d, want 8", got)
	}
}
