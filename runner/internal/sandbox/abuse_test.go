package sandbox_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/messages"
)

func TestInfiniteLoopIsKilledAtTheTimeLimit(t *testing.T) {
	for _, p := range []program{
		{"python", "print('start', flush=True)\nwhile True:\n    pass\n"},
		{"javascript", "console.log('start');\nwhile (true) {}\n"},
	} {
		t.Run(p.lang, func(t *testing.T) {
			h := newHarness(t, p.lang)
			begin := time.Now()
			out := h.run(t, p.lang, p.code, "", messages.Limits{RunTimeMs: 2000})
			wantStatus(t, out, messages.StatusTimeLimit)
			if took := time.Since(begin); took > 8*time.Second {
				t.Errorf("took %s for a 2 s limit", took)
			}
			if out.Stdout != "start\n" {
				t.Errorf("stdout before the kill: got %q, want %q", out.Stdout, "start\n")
			}
			// How much of the wall time the loop got on a CPU depends on the host's load:
			// the measurement only has to show it ran.
			if out.WallTime < 2*time.Second || out.CPUTime < 100*time.Millisecond {
				t.Errorf("usage: wall %s cpu %s, want ≥2 s wall and the loop's CPU time", out.WallTime, out.CPUTime)
			}
		})
	}
}

func TestMemoryBombIsMemoryLimitExceeded(t *testing.T) {
	for _, p := range []program{
		{"python", "a = []\nwhile True:\n    a.append(bytearray(8 << 20))\n"},
		// Buffers live outside V8's heap: the cgroup, not V8, runs out.
		{"javascript", "const a = [];\nfor (;;) a.push(Buffer.alloc(8 << 20, 1));\n"},
	} {
		t.Run(p.lang, func(t *testing.T) {
			h := newHarness(t, p.lang)
			const limit = 128 << 20
			for i := range 3 { // OOM detection must hold every time, not once
				out := h.run(t, p.lang, p.code, "", messages.Limits{MemoryBytes: limit})
				wantStatus(t, out, messages.StatusMemoryLimit)
				if out.MemoryBytes < limit*9/10 {
					t.Errorf("round %d: peak memory %d, want close to the limit %d", i, out.MemoryBytes, limit)
				}
			}
		})
	}
}

func TestChildKilledByOOMIsMemoryLimitExceeded(t *testing.T) {
	h := newHarness(t, "python")
	code := "import subprocess, sys\n" +
		"r = subprocess.run([sys.executable, '-c', 'a=[]\\nwhile True: a.append(bytearray(8<<20))'])\n" +
		"print('child ended', r.returncode)\nsys.exit(1)\n"
	out := h.run(t, "python", code, "", messages.Limits{MemoryBytes: 128 << 20})
	wantStatus(t, out, messages.StatusMemoryLimit)
}

func TestOutputFloodIsCut(t *testing.T) {
	for _, p := range []program{
		{"python", "while True:\n    print('x' * 1000)\n"},
		// Node buffers writes to a full pipe in memory until the event loop runs: a flood
		// that never yields is a memory bomb. This one honours backpressure.
		{"javascript", "const s = 'x'.repeat(1000) + '\\n';\nconst w = () => { while (process.stdout.write(s)); process.stdout.once('drain', w); };\nw();\n"},
	} {
		t.Run(p.lang, func(t *testing.T) {
			h := newHarness(t, p.lang)
			const limit = 64 << 10
			begin := time.Now()
			out := h.run(t, p.lang, p.code, "", messages.Limits{OutputBytes: limit})
			wantStatus(t, out, messages.StatusOutputLimit)
			if n := len(out.Stdout) + len(out.Stderr); n != limit {
				t.Errorf("kept %d bytes of output, want exactly the limit %d", n, limit)
			}
			if took := time.Since(begin); took > 5*time.Second {
				t.Errorf("took %s: the flood was not stopped at once", took)
			}
		})
	}
}

// Control bytes cost 6 bytes each once JSON-encoded: 8 MiB of them, at the largest output
// limit a job may ask for, must still give a result that fits its message, with the head
// of the output and the cut said.
func TestBinaryOutputFloodFitsTheResult(t *testing.T) {
	h := newHarness(t, "python")
	code := "import sys\nfor _ in range(8): sys.stdout.buffer.write(b'\\x01' * (1 << 20))\n"
	out := h.run(t, "python", code, "", messages.Limits{OutputBytes: 8 << 20})
	wantStatus(t, out, messages.StatusOutputLimit)
	if !out.Truncated {
		t.Error("truncated: got false, want true")
	}
	enc, err := json.Marshal(struct{ Stdout, Stderr string }{out.Stdout, out.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > messages.MaxOutputEncodedBytes+64 || len(out.Stdout) < 512<<10 {
		t.Errorf("kept %d bytes of output, %d encoded; want the head, at most %d encoded",
			len(out.Stdout), len(enc), messages.MaxOutputEncodedBytes)
	}
	if strings.Trim(out.Stdout, "\x01") != "" {
		t.Error("the kept output is not the program's")
	}
}

func TestNoNetwork(t *testing.T) {
	for _, p := range []program{
		{"python", "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    print('connected')\nexcept OSError as e:\n    print('refused', e)\n"},
		{"javascript", "const s = require('net').connect(53, '1.1.1.1');\ns.setTimeout(3000, () => { console.log('refused timeout'); process.exit(0); });\ns.on('connect', () => { console.log('connected'); process.exit(0); });\ns.on('error', e => { console.log('refused', e.code); process.exit(0); });\n"},
	} {
		t.Run(p.lang, func(t *testing.T) {
			h := newHarness(t, p.lang)
			out := h.run(t, p.lang, p.code, "", messages.Limits{})
			wantStatus(t, out, messages.StatusSucceeded)
			if !strings.HasPrefix(out.Stdout, "refused") {
				t.Errorf("stdout: got %q, want the connection refused", out.Stdout)
			}
		})
	}
}

func TestFilesystem(t *testing.T) {
	h := newHarness(t, "python")
	code := `import os
for path in ['/etc/evil', '/usr/bin/evil', '/evil', '/home/evil']:
    try:
        open(path, 'w').write('x')
        print('wrote', path)
    except OSError as e:
        print('refused', path, e.errno)
open('/work/ok.txt', 'w').write('fine')
open('/tmp/ok.txt', 'w').write('fine')
print('work', open('/work/ok.txt').read(), os.getuid(), os.getgid(), os.getgroups())
`
	out := h.run(t, "python", code, "", messages.Limits{})
	wantStatus(t, out, messages.StatusSucceeded)
	if strings.Contains(out.Stdout, "wrote") {
		t.Errorf("a write outside /work and /tmp succeeded:\n%s", out.Stdout)
	}
	// The program runs as the container's own uid and gid, with no supplementary group,
	// and owns /work and /tmp.
	var uid, gid int
	if _, err := fmt.Sscanf(out.Stdout[strings.Index(out.Stdout, "work fine"):], "work fine %d %d []", &uid, &gid); err != nil {
		t.Fatalf("/work not writable, or not by the program's own uid:\n%s", out.Stdout)
	}
	if uid < sandbox.DefaultUIDs.First || uid >= sandbox.DefaultUIDs.First+sandbox.DefaultUIDs.Count || gid != uid {
		t.Errorf("program runs as %d:%d, want a uid of %+v with the same gid", uid, gid, sandbox.DefaultUIDs)
	}
}

func TestWorkDirIsCapped(t *testing.T) {
	h := newHarness(t, "python")
	code := `try:
    with open('/work/big', 'wb') as f:
        for _ in range(200):
            f.write(b'x' * (1 << 20))
    print('wrote 200 MiB')
except OSError as e:
    print('stopped', e.errno)
`
	out := h.run(t, "python", code, "", messages.Limits{})
	if strings.Contains(out.Stdout, "wrote 200 MiB") {
		t.Errorf("200 MiB written into the work dir: %s", out.Stdout)
	}
}

func TestForkBombIsContained(t *testing.T) {
	h := newHarness(t, "python")
	code := `import os, time
n = 0
for _ in range(10000):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
    except OSError:
        break
print('forked', n, flush=True)
`
	begin := time.Now()
	// 8 s: under gVisor (runsc, its ptrace platform) a fork costs about 65 ms, so reaching
	// the limit of 64 takes about 4 s; under runc or crun it takes a fraction of a second.
	out := h.run(t, "python", code, "", messages.Limits{RunTimeMs: 8000})
	if !strings.HasPrefix(out.Stdout, "forked") {
		t.Fatalf("stdout: %q (status %s, %s)", out.Stdout, out.Status, out.ErrorMessage)
	}
	var n int
	if _, err := fmtSscan(out.Stdout, &n); err != nil || n >= 64 {
		t.Errorf("forked %q processes, want fewer than the pids limit of 64", out.Stdout)
	}
	// The time includes the container's removal with its 63 sleeping children. gVisor's
	// teardown of so many processes is slow and uneven: 1–2 s mostly, but about 30 s in one
	// run of three (Docker's kill waits for the sandbox), so runsc gets a wider bound.
	bound := 20 * time.Second
	if h.sb.Runtime() == sandbox.RuntimeRunsc {
		bound = time.Minute
	}
	if took := time.Since(begin); took > bound {
		t.Errorf("took %s, want at most %s", took, bound)
	}
	// Children left sleeping are gone with the container; the sandbox still works.
	again := h.run(t, "python", "print('alive')\n", "", messages.Limits{})
	wantStatus(t, again, messages.StatusSucceeded)
}

func fmtSscan(s string, n *int) (int, error) { return fmt.Sscanf(strings.TrimSpace(s), "forked %d", n) }

// A compiler that runs out of memory is a compile error that says so: under runsc the
// sandbox stops at its limit (runsc.go), and the runner must see it rather than wait for
// the compile time limit (which would say so instead).
func TestCompilerOutOfMemoryIsACompileError(t *testing.T) {
	h := newHarness(t, "cpp")
	// Ten million initialisers from nested macros: the compiler's memory grows fast,
	// with no file cache to thrash through first (an OOM is seen within a second or two).
	code := "#define A 1,1,1,1,1,1,1,1,1,1,\n#define B A A A A A A A A A A\n#define C B B B B B B B B B B\n" +
		"#define D C C C C C C C C C C\n#define E D D D D D D D D D D\n#define F E E E E E E E E E E\n" +
		"#define G F F F F F F F F F F\nint a[] = { G };\nint main() { return a[0]; }\n"
	out := h.run(t, "cpp", code, "", messages.Limits{MemoryBytes: 64 << 20})
	wantStatus(t, out, messages.StatusCompileError)
	if out.ErrorMessage != "the compiler ran out of memory" {
		t.Errorf("error: got %q, want the compiler's OOM said", out.ErrorMessage)
	}
}
