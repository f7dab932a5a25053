package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// Hostile programs against the trust boundary: whatever reads the job, starts the program
// and reports how it ended must be out of the program's reach. Each program below tries
// what worked while the program ran under the launcher's own uid.

// stealSecrets is python that searches the launcher's memory (PID 1) for the job's exit
// token and unpack marker. It prints what it found, or why it could not.
const stealSecrets = `import re, sys
def scan():
    found = {}
    try:
        maps = open('/proc/1/maps').read().splitlines()
        mem = open('/proc/1/mem', 'rb')
    except OSError as e:
        print('denied:', e.__class__.__name__, file=sys.stderr)
        return found
    for line in maps:
        parts = line.split()
        if len(parts) < 2 or 'r' not in parts[1]:
            continue
        lo, hi = (int(x, 16) for x in parts[0].split('-'))
        try:
            mem.seek(lo)
            chunk = mem.read(hi - lo)
        except (OSError, OverflowError, ValueError):
            continue
        for m in re.finditer(rb'codeexec-exit-[0-9a-f]{32}:', chunk):
            found['exit'] = m.group().decode()
        for m in re.finditer(rb'codeexec-unpack-failed-[0-9a-f]{32}', chunk):
            found['unpack'] = m.group().decode()
    return found
secrets = scan()
print('found:', sorted(secrets), file=sys.stderr)
`

func TestProgramCannotReadTheLaunchersMemory(t *testing.T) {
	h := newHarness(t, "python")
	code := "import os\n" +
		"for p in ('/proc/1/mem', '/proc/1/environ', '/proc/1/fd/0', '/proc/1/fd/1'):\n" +
		"    try:\n        got = open(p, 'rb').read()\n" +
		"        own = set(open('/proc/self/environ', 'rb').read().split(b'\\0'))\n" +
		"        same = p.endswith('environ') and set(got.split(b'\\0')) <= own\n" +
		"        print('read', p, 'its own' if same else 'other')\n" +
		"    except OSError as e:\n        print('denied', p, e.__class__.__name__)\n"
	out := h.run(t, "python", code, "", messages.Limits{})
	wantStatus(t, out, messages.StatusSucceeded)
	for _, line := range strings.Split(strings.TrimSpace(out.Stdout), "\n") {
		// gVisor's procfs (runsc 20221219) lets anyone read /proc/<pid>/environ (mode 0444,
		// no ptrace check; Linux says 0400). The launcher's environment is in the one the
		// program inherits, nothing more: there, the program may read what it has already.
		if h.sb.Runtime() == sandbox.RuntimeRunsc && line == "read /proc/1/environ its own" {
			continue
		}
		if strings.HasPrefix(line, "read ") {
			t.Errorf("the program read the launcher's memory, environment or streams:\n%s", out.Stdout)
		}
	}
}

// A program that forges the exit line with what it found, then keeps running, must run
// into its time limit: its forged "succeeded" is not the result.
func TestForgedExitLineThenLoopIsTimeLimitExceeded(t *testing.T) {
	h := newHarness(t, "python")
	code := stealSecrets +
		"tok = secrets.get('exit', 'codeexec-exit-' + '0'*32 + ':')\n" +
		"print('forged'); sys.stdout.write(tok + '0\\n'); sys.stderr.write(tok + '0\\n')\n" +
		"sys.stdout.flush(); sys.stderr.flush()\n" +
		"while True: pass\n"
	out := h.run(t, "python", code, "", messages.Limits{RunTimeMs: 2000})
	wantStatus(t, out, messages.StatusTimeLimit)
}

// An impossible exit status (-7) cannot be reported.
func TestForgedImpossibleExitStatus(t *testing.T) {
	h := newHarness(t, "python")
	code := stealSecrets +
		"tok = secrets.get('exit', 'codeexec-exit-' + '0'*32 + ':')\n" +
		"sys.stdout.write(tok + '-7\\n'); sys.stderr.write(tok + '-7\\n')\n" +
		"sys.stdout.flush(); sys.stderr.flush()\nsys.exit(3)\n"
	out := h.run(t, "python", code, "", messages.Limits{})
	wantStatus(t, out, messages.StatusRuntimeError)
	if out.ExitCode == nil || *out.ExitCode != 3 {
		t.Errorf("exit code: got %v, want 3", out.ExitCode)
	}
}

// A program that prints the unpack-failure marker and exits 125 is a program that exited
// 125: a runtime error, not a platform failure that would be retried for free.
func TestFakeUnpackMarkerIsARuntimeError(t *testing.T) {
	h := newHarness(t, "python")
	code := stealSecrets +
		"print(secrets.get('unpack', 'codeexec-unpack-failed-' + '0'*32), file=sys.stderr)\n" +
		"sys.exit(125)\n"
	out := h.run(t, "python", code, "", messages.Limits{})
	wantStatus(t, out, messages.StatusRuntimeError)
	if out.ExitCode == nil || *out.ExitCode != 125 {
		t.Errorf("exit code: got %v, want 125", out.ExitCode)
	}
}

// Writing into the launcher's memory (to crash it, or to change what it reports) fails, so
// the program's own end is what is reported.
func TestProgramCannotCorruptTheLauncher(t *testing.T) {
	h := newHarness(t, "python")
	code := "import os, sys\n" +
		"wrote = 0\n" +
		"try:\n" +
		"    maps = open('/proc/1/maps').read().splitlines()\n" +
		"    mem = open('/proc/1/mem', 'r+b', buffering=0)\n" +
		"    for line in maps:\n" +
		"        p = line.split()\n" +
		"        if '[stack]' in line or '[heap]' in line:\n" +
		"            lo, hi = (int(x, 16) for x in p[0].split('-'))\n" +
		"            mem.seek(lo); mem.write(b'\\xcc' * (hi - lo)); wrote += hi - lo\n" +
		"except OSError as e:\n" +
		"    print('denied', e.__class__.__name__, file=sys.stderr)\n" +
		"print('wrote', wrote)\n"
	out := h.run(t, "python", code, "", messages.Limits{})
	wantStatus(t, out, messages.StatusSucceeded)
	if out.Stdout != "wrote 0\n" {
		t.Errorf("stdout: got %q, want %q", out.Stdout, "wrote 0\n")
	}
}

// Per-uid kernel accounting stays per job: one tenant holding every inotify instance its
// uid may have (fs.inotify.max_user_instances, 128 by default) does not take them from
// another tenant's job running at the same time.
func TestTenantsDoNotShareInotifyInstances(t *testing.T) {
	h := newHarness(t, "python")
	hog := "import ctypes, time\n" +
		"libc = ctypes.CDLL(None, use_errno=True)\n" +
		"fds = []\n" +
		"while True:\n" +
		"    fd = libc.inotify_init()\n" +
		"    if fd < 0: break\n" +
		"    fds.append(fd)\n" +
		"while True: time.sleep(1)\n" // holds them until it is killed
	victim := "import ctypes, os\n" +
		"libc = ctypes.CDLL(None, use_errno=True)\n" +
		"fd = libc.inotify_init()\n" +
		"print('victim', 'ok' if fd >= 0 else os.strerror(ctypes.get_errno()))\n"
	l, _ := h.catalog.Resolve("python")
	hogCtx, stopHog := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stopHog()
	hogC, err := h.sb.Create(hogCtx, l, h.catalog.Defaults(l), "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer h.sb.Remove(context.Background(), hogC)
	hogDone := make(chan struct{})
	go func() {
		defer close(hogDone)
		// Ended by stopHog: the error says so, and the hog's outcome does not matter.
		_, _ = h.sb.Run(hogCtx, hogC, sandbox.Job{
			ID: "hog", Language: l,
			Files:  []messages.File{{Filename: l.SourceFile, Code: hog, IsEntryPoint: true}},
			Limits: h.catalog.Effective(l, messages.Limits{RunTimeMs: 60_000}),
		})
	}()
	waitfor.Eventually(t, time.Minute, "a process of the hog holds its uid's inotify instances", func() (bool, error) {
		if h.sb.Runtime() == sandbox.RuntimeRunsc {
			// Under gVisor the hog's inotify instances live in its sandbox's own kernel,
			// unseen by the host's /proc: they are counted from inside its container.
			return inotifyInstancesIn(t, h, hogC) >= 100, nil
		}
		return maxInotifyInstances() >= 100, nil
	})
	out := h.run(t, "python", victim, "", messages.Limits{})
	stopHog()
	<-hogDone
	wantStatus(t, out, messages.StatusSucceeded)
	if out.Stdout != "victim ok\n" {
		t.Errorf("the other tenant's job: got %q, want %q", out.Stdout, "victim ok\n")
	}
}

// inotifyInstancesIn returns the most inotify instances one process of container c holds,
// counted by a process of c's uid (which may read its processes' fds) exec'd into it.
// gVisor names an inotify fd anon_inode:[inotifyfd:N], Linux anon_inode:inotify.
func inotifyInstancesIn(t *testing.T, h *harness, c *sandbox.Container) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	count := "import glob, os\nmost = 0\nfor d in glob.glob('/proc/[0-9]*/fd'):\n" +
		"    try:\n        most = max(most, sum('inotify' in os.readlink(os.path.join(d, f)) for f in os.listdir(d)))\n" +
		"    except OSError:\n        pass\nprint(most)\n"
	uid := strconv.Itoa(c.UID)
	ex, err := h.docker.ContainerExecCreate(ctx, c.ID, container.ExecOptions{User: uid + ":" + uid,
		Cmd: []string{"python3", "-c", count}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec into the hog: %v", err)
	}
	hj, err := h.docker.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec into the hog: %v", err)
	}
	defer hj.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, hj.Reader); err != nil {
		t.Fatalf("exec into the hog: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		ins, ierr := h.docker.ContainerExecInspect(ctx, ex.ID)
		t.Fatalf("count in the hog: %q %q (exit %d %v)", stdout.String(), stderr.String(), ins.ExitCode, ierr)
	}
	return n
}

// maxInotifyInstances returns the most inotify instances one process of the host holds.
func maxInotifyInstances() int {
	most := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, dir := range procs {
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		n := 0
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && target == "anon_inode:inotify" {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// A job runs only once its Ready says so: a refusal ends it before the program starts
// (compiled or not), and the wait for Ready is not the program's time.
func TestReadyGatesTheProgram(t *testing.T) {
	h := newHarness(t, "python", "go")
	refused := errors.New("no hold")
	for _, lang := range []string{"python", "go"} {
		l, _ := h.catalog.Resolve(lang)
		code := map[string]string{"python": "print('ran')\n", "go": "package main\nfunc main() { println(\"ran\") }\n"}[lang]
		run := func(ready func(context.Context) error, lim messages.Limits) (sandbox.Outcome, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c, err := h.sb.Create(ctx, l, h.catalog.Defaults(l), "")
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			defer h.sb.Remove(context.Background(), c)
			return h.sb.Run(ctx, c, sandbox.Job{ID: "gated", Language: l, Ready: ready,
				Files:  []messages.File{{Filename: l.SourceFile, Code: code, IsEntryPoint: true}},
				Limits: h.catalog.Effective(l, lim)})
		}
		t.Run(lang+"/refused", func(t *testing.T) {
			out, err := run(func(context.Context) error { return refused }, messages.Limits{})
			if !errors.Is(err, refused) || out.Status != "" {
				t.Errorf("got %v %+v, want the refusal and no outcome", err, out)
			}
		})
		t.Run(lang+"/slow", func(t *testing.T) {
			slow := func(ctx context.Context) error {
				select {
				case <-time.After(1500 * time.Millisecond): // longer than the run's limit
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			out, err := run(slow, messages.Limits{RunTimeMs: 1000})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			wantStatus(t, out, messages.StatusSucceeded)
			if out.WallTime >= time.Second {
				t.Errorf("wall time %s counts the wait for Ready", out.WallTime)
			}
		})
	}
}

// The program runs under another uid than the launcher's, with no capability (effective,
// permitted or inheritable) and no way to gain one (no-new-privileges), under every runtime.
// gVisor's /proc/<pid>/status has no NoNewPrivs line: the flag is asked of prctl.
func TestProgramHasNoPrivileges(t *testing.T) {
	h := newHarness(t, "python")
	code := "import ctypes, os\n" +
		"libc = ctypes.CDLL(None, use_errno=True)\n" +
		"caps = {k: v.strip() for k, v in (l.split(':', 1) for l in open('/proc/self/status') if l.startswith('Cap'))}\n" +
		"launcher = [l.split()[1] for l in open('/proc/1/status') if l.startswith('Uid:')][0]\n" +
		"print(os.getuid(), os.geteuid(), launcher, libc.prctl(39, 0, 0, 0, 0), caps['CapEff'], caps['CapPrm'], caps['CapInh'])\n"
	out := h.run(t, "python", code, "", messages.Limits{})
	wantStatus(t, out, messages.StatusSucceeded)
	var uid, euid, launcher, noNewPrivs int
	var eff, prm, inh string
	if _, err := fmt.Sscan(out.Stdout, &uid, &euid, &launcher, &noNewPrivs, &eff, &prm, &inh); err != nil {
		t.Fatalf("stdout %q: %v", out.Stdout, err)
	}
	if uid == launcher || euid != uid || uid < sandbox.DefaultUIDs.First {
		t.Errorf("program uid %d (euid %d), launcher %d: want the container's own uid, not the launcher's", uid, euid, launcher)
	}
	if noNewPrivs != 1 {
		t.Errorf("no_new_privs: got %d, want 1", noNewPrivs)
	}
	for name, v := range map[string]string{"CapEff": eff, "CapPrm": prm, "CapInh": inh} {
		if strings.Trim(v, "0") != "" {
			t.Errorf("%s: got %s, want no capability", name, v)
		}
	}
}
