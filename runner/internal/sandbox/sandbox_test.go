package sandbox_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/runner/internal/testenv"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
)

type harness struct {
	sb      *sandbox.Sandbox
	catalog *languages.Catalog
	docker  *client.Client
}

func newHarness(t testing.TB, langs ...string) *harness {
	t.Helper()
	docker := testenv.Docker(t)
	catalog := testenv.Catalog(t)
	for _, l := range langs {
		testenv.RequireImage(t, docker, catalog, l)
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	// As a runner does by default: its containers in the jobs' cgroup, where the host has it.
	parent, err := sandbox.PrepareJobsCgroup(ctx, docker, sandbox.DefaultCgroupRoot, testJobsCPUWeight, log)
	if err != nil {
		t.Fatalf("jobs' cgroup: %v", err)
	}
	runtime := testenv.Runtime(t, docker)
	sb, err := sandbox.New(docker, sandbox.Options{RunnerID: "test-" + hex.EncodeToString(id), Log: log,
		Runtime: runtime, Engine: testenv.Engine(t, runtime), CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sb.Watch(ctx) }()
	<-sb.WatchReady()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		// Every container this sandbox made must be gone once removal has run.
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ids, err := sb.List(cctx)
			if err != nil {
				t.Fatalf("list containers: %v", err)
			}
			if len(ids) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d containers left behind: %v", len(ids), ids)
				_, _ = sb.RemoveOwn(cctx)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return &harness{sb: sb, catalog: catalog, docker: docker}
}

// run runs code as the entry point of lang with the language's limits lowered by req.
func (h *harness) run(t *testing.T, lang, code, stdin string, req messages.Limits, args ...string) sandbox.Outcome {
	t.Helper()
	l, ok := h.catalog.Resolve(lang)
	if !ok {
		t.Fatalf("language %s not in the table", lang)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lim := h.catalog.Effective(l, req)
	// As the pool does: a warm container with the language's defaults, whose limits the
	// job updates; where the runtime cannot update them (runsc), one made with the job's.
	made := h.catalog.Defaults(l)
	if !h.sb.CanUpdateLimits() {
		made = lim
	}
	c, err := h.sb.Create(ctx, l, made, "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer h.sb.Remove(context.Background(), c)
	out, err := h.sb.Run(ctx, c, sandbox.Job{
		ID: "test", Language: l, Stdin: stdin, Args: args,
		Files:  []messages.File{{Filename: l.SourceFile, Code: code, IsEntryPoint: true}},
		Limits: lim,
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return out
}

func wantStatus(t *testing.T, out sandbox.Outcome, want messages.Status) {
	t.Helper()
	if out.Status != want {
		t.Fatalf("status: got %s, want %s\nerror: %s\nstdout: %.500s\nstderr: %.2000s\ncompile: %.2000s",
			out.Status, want, out.ErrorMessage, out.Stdout, out.Stderr, out.CompileOutput)
	}
}

type program struct {
	lang string
	code string
}

func TestHelloWorldEchoesStdin(t *testing.T) {
	for _, p := range []program{
		{"python", "import sys\nprint('hello ' + sys.stdin.read().strip())\n"},
		{"javascript", "let s='';process.stdin.on('data',d=>s+=d);process.stdin.on('end',()=>console.log('hello '+s.trim()));\n"},
	} {
		t.Run(p.lang, func(t *testing.T) {
			h := newHarness(t, p.lang)
			out := h.run(t, p.lang, p.code, "world\n", messages.Limits{})
			wantStatus(t, out, messages.StatusSucceeded)
			if out.Stdout != "hello world\n" {
				t.Errorf("stdout: got %q, want %q", out.Stdout, "hello world\n")
			}
			if out.ExitCode == nil || *out.ExitCode != 0 {
				t.Errorf("exit code: got %v, want 0", out.ExitCode)
			}
			if out.WallTime <= 0 || out.CPUTime <= 0 || out.MemoryBytes <= 0 {
				t.Errorf("usage not measured: wall %s cpu %s memory %d", out.WallTime, out.CPUTime, out.MemoryBytes)
			}
			t.Logf("wall %s cpu %s memory %.1f MiB", out.WallTime, out.CPUTime, float64(out.MemoryBytes)/(1<<20))
		})
	}
}

func TestExitCodeIsRuntimeError(t *testing.T) {
	for _, p := range []program{
		{"python", "import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)\n"},
		{"javascript", "console.error('bye');process.exit(3);\n"},
	} {
		t.Run(p.lang, func(t *testing.T) {
			h := newHarness(t, p.lang)
			out := h.run(t, p.lang, p.code, "", messages.Limits{})
			wantStatus(t, out, messages.StatusRuntimeError)
			if out.ExitCode == nil || *out.ExitCode != 3 {
				t.Errorf("exit code: got %v, want 3", out.ExitCode)
			}
			if out.Stderr != "bye\n" {
				t.Errorf("stderr: got %q, want %q", out.Stderr, "bye\n")
			}
		})
	}
}

func TestArgsAreAppended(t *testing.T) {
	h := newHarness(t, "python")
	// Every word reaches the program as it was sent, whatever the shell would make of it.
	args := []string{"a b", "c", "it's", "$HOME", "`id`", "", "x\ny", `\'"`, "; exit 7"}
	out := h.run(t, "python", "import json, sys\nprint(json.dumps(sys.argv[1:], separators=(',', ':')))\n", "", messages.Limits{}, args...)
	wantStatus(t, out, messages.StatusSucceeded)
	want, _ := json.Marshal(args)
	if got := strings.TrimSpace(out.Stdout); got != string(want) {
		t.Errorf("args: got %s, want %s", got, want)
	}
}

func TestSignalDeathNamesTheSignal(t *testing.T) {
	h := newHarness(t, "python")
	out := h.run(t, "python", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "", messages.Limits{})
	wantStatus(t, out, messages.StatusRuntimeError)
	if out.Signal != "SIGSEGV" || !strings.Contains(out.ErrorMessage, "SIGSEGV") {
		t.Errorf("signal: got %q (%q), want SIGSEGV", out.Signal, out.ErrorMessage)
	}
}

// A program that SIGKILLs itself far below its memory limit is no OOM.
func TestSelfKillIsNotMemoryLimit(t *testing.T) {
	h := newHarness(t, "python")
	out := h.run(t, "python", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "", messages.Limits{})
	wantStatus(t, out, messages.StatusRuntimeError)
	if out.Signal != "SIGKILL" {
		t.Errorf("signal: got %q, want SIGKILL", out.Signal)
	}
}

// The launcher is the container's PID 1: a program that signals it, or every process it
// may, still gets its result.
func TestProgramCannotKillTheLauncher(t *testing.T) {
	h := newHarness(t, "python")
	code := "import os, signal\n" +
		"for s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n" +
		"    try:\n        os.kill(1, s)\n    except PermissionError:\n        pass\n" +
		"    try:\n        os.kill(-1, s)\n    except ProcessLookupError:\n        pass\n" +
		"print('still here')\n"
	out := h.run(t, "python", code, "", messages.Limits{})
	wantStatus(t, out, messages.StatusSucceeded)
	if out.Stdout != "still here\n" {
		t.Errorf("stdout: got %q", out.Stdout)
	}
}

// The result comes when the program ends, not when the children it left do; they die
// with the container.
func TestChildrenLeftBehindDoNotHoldTheResult(t *testing.T) {
	h := newHarness(t, "python")
	code := "import subprocess\n" +
		"subprocess.Popen(['sh', '-c', 'sleep 30; echo late'])\n" +
		"print('done', end='')\n"
	begin := time.Now()
	out := h.run(t, "python", code, "", messages.Limits{RunTimeMs: 10_000})
	wantStatus(t, out, messages.StatusSucceeded)
	if out.Stdout != "done" {
		t.Errorf("stdout: got %q, want %q", out.Stdout, "done")
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("took %s: the result waited for the child", took)
	}
}

// A program that ignores a large stdin ends at once; output without a final newline and
// on both streams comes back whole.
func TestUnreadStdinAndUnterminatedOutput(t *testing.T) {
	h := newHarness(t, "python")
	code := "import sys\nsys.stdout.write('out')\nsys.stderr.write('err')\n"
	out := h.run(t, "python", code, strings.Repeat("x", 4<<20), messages.Limits{})
	wantStatus(t, out, messages.StatusSucceeded)
	if out.Stdout != "out" || out.Stderr != "err" {
		t.Errorf("got stdout %q stderr %q, want \"out\" and \"err\"", out.Stdout, out.Stderr)
	}
}

// A container that died before its job yields an infrastructure error (the job is retried
// elsewhere), never a result.
func TestDeadContainerIsAnInfrastructureError(t *testing.T) {
	h := newHarness(t, "python")
	l, _ := h.catalog.Resolve("python")
	ctx := context.Background()
	c, err := h.sb.Create(ctx, l, h.catalog.Defaults(l), "")
	if err != nil {
		t.Fatal(err)
	}
	defer h.sb.Remove(ctx, c)
	h.sb.Kill(ctx, c.ID)
	select {
	case <-c.Ended():
	case <-time.After(10 * time.Second):
		t.Fatal("the killed container's stream did not end")
	}
	out, err := h.sb.Run(ctx, c, sandbox.Job{
		ID: "test", Language: l, Limits: h.catalog.Effective(l, messages.Limits{}),
		Files: []messages.File{{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}},
	})
	var infra *sandbox.InfraError
	if !errors.As(err, &infra) {
		t.Fatalf("got %v (status %s), want an InfraError", err, out.Status)
	}
}

// TestCancelledCreateLeavesNoContainer gives up on creates at every point of their course:
// the daemon finishes a create whose caller went away, and that container must not stay.
func TestCancelledCreateLeavesNoContainer(t *testing.T) {
	h := newHarness(t, "python")
	l, _ := h.catalog.Resolve("python")
	cancelled := 0
	for wait := time.Millisecond; wait <= 64*time.Millisecond; wait *= 2 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		c, err := h.sb.Create(ctx, l, h.catalog.Defaults(l), "")
		cancel()
		if err != nil {
			cancelled++
			continue
		}
		h.sb.Remove(context.Background(), c)
	}
	if cancelled == 0 {
		t.Skip("every create beat its deadline; nothing was cancelled")
	}
	time.Sleep(time.Second) // a create the daemon was still finishing would show by now
	ids, err := h.sb.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 0 {
		t.Errorf("%d of %d cancelled creates left a container", len(ids), cancelled)
	}
}

// The containers run with the runtime the sandbox chose: crun where the daemon has it (the
// default), which CI registers, so that this file's tests run under it.
func TestContainersRunWithTheChosenRuntime(t *testing.T) {
	h := newHarness(t, "python")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := h.docker.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, hasCrun := info.Runtimes[sandbox.RuntimeCrun]; hasCrun && os.Getenv("CODEEXEC_RUNTIME") == "" && h.sb.Runtime() != sandbox.RuntimeCrun {
		t.Errorf("runtime %q, want crun: the daemon has it", h.sb.Runtime())
	}
	c, facts := h.inspectedPythonContainer(t, ctx)
	if facts.Runtime != h.sb.Runtime() {
		t.Errorf("container runtime %q, want %q", facts.Runtime, h.sb.Runtime())
	}
	t.Logf("containers run with %s, made by %s (container %s)", facts.Runtime, h.sb.Engine(), c.ID)
}

// inspectedPythonContainer creates a warm python container, removed when the test ends, and
// returns it with what the engine that made it (Docker, or the runtime itself) says of it.
func (h *harness) inspectedPythonContainer(t *testing.T, ctx context.Context) (*sandbox.Container, sandbox.ContainerFacts) {
	t.Helper()
	py, _ := h.catalog.Resolve("python")
	c, err := h.sb.Create(ctx, py, h.catalog.Defaults(py), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.sb.Remove(context.Background(), c) })
	facts, err := h.sb.Facts(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return c, facts
}

// testJobsCPUWeight is the runner's default CODEEXEC_JOBS_CPU_WEIGHT.
const testJobsCPUWeight = 4

// A job's container lives in the jobs' cgroup, whose CPU weight puts the programs before the
// platform's own work on a busy host; with the weight 0 the daemon's default cgroup is kept.
func TestContainersRunInTheJobsCgroup(t *testing.T) {
	h := newHarness(t, "python")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := h.docker.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.CgroupDriver != "cgroupfs" {
		t.Fatalf("cgroup driver %s: this test (and CI) expects Docker's cgroupfs driver", info.CgroupDriver)
	}
	c, facts := h.inspectedPythonContainer(t, ctx)
	if want := "/" + sandbox.JobsCgroup; facts.CgroupParent != want {
		t.Errorf("cgroup parent %q, want %q", facts.CgroupParent, want)
	}
	procCgroups, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", facts.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + sandbox.JobsCgroup + "/" + c.ID; !strings.Contains(string(procCgroups), want) {
		t.Errorf("the launcher's cgroups do not include %s:\n%s", want, procCgroups)
	}
	weightFile, want := filepath.Join(sandbox.DefaultCgroupRoot, "cpu", sandbox.JobsCgroup, "cpu.shares"), testJobsCPUWeight*1024
	if info.CgroupVersion == "2" {
		weightFile, want = filepath.Join(sandbox.DefaultCgroupRoot, sandbox.JobsCgroup, "cpu.weight"), testJobsCPUWeight*100
	}
	if got, err := os.ReadFile(weightFile); err != nil || strings.TrimSpace(string(got)) != strconv.Itoa(want) {
		t.Errorf("%s: got %q (%v), want %d", weightFile, got, err, want)
	}
	if parent, err := sandbox.PrepareJobsCgroup(ctx, h.docker, sandbox.DefaultCgroupRoot, 0, slog.New(slog.DiscardHandler)); err != nil || parent != "" {
		t.Errorf("weight 0: got parent %q (%v), want the daemon's default", parent, err)
	}
}

// Only runtimes the sandbox passes its tests under are accepted; crun falls back to runc,
// runsc is taken where the daemon has it and refused, saying what to do, where it has not.
func TestChooseRuntime(t *testing.T) {
	docker := testenv.Docker(t)
	ctx := context.Background()
	if rt, err := sandbox.ChooseRuntime(ctx, docker, sandbox.RuntimeRunc, nil); err != nil || rt != sandbox.RuntimeRunc {
		t.Errorf("runc: got %q %v", rt, err)
	}
	if rt, err := sandbox.ChooseRuntime(ctx, docker, sandbox.RuntimeCrun, nil); err != nil || (rt != sandbox.RuntimeCrun && rt != sandbox.RuntimeRunc) {
		t.Errorf("crun: got %q %v, want crun, or runc where the daemon lacks it", rt, err)
	}
	info, err := docker.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := sandbox.ChooseRuntime(ctx, docker, sandbox.RuntimeRunsc, nil)
	if _, has := info.Runtimes[sandbox.RuntimeRunsc]; has {
		if err != nil || rt != sandbox.RuntimeRunsc {
			t.Errorf("runsc, which the daemon has: got %q %v", rt, err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "prepare-host") {
		t.Errorf("runsc, which the daemon lacks: got %q %v, want an error saying how to register it", rt, err)
	}
	if rt, err := sandbox.ChooseRuntime(ctx, docker, "kata", nil); err == nil {
		t.Errorf("kata: got %q, want an error", rt)
	}
}

// The direct engine is the default where the runner can drive the runtime itself (root, the
// runtime's binary at hand); runsc always goes through Docker, and a choice that cannot be
// honoured, or is unknown, is an error.
func TestChooseEngine(t *testing.T) {
	_, lookErr := exec.LookPath(sandbox.RuntimeCrun)
	canDirect := lookErr == nil && os.Geteuid() == 0 && os.Getpid() != 1
	want := sandbox.EngineDocker
	if canDirect {
		want = sandbox.EngineDirect
	}
	if got, err := sandbox.ChooseEngine("", sandbox.RuntimeCrun, nil); err != nil || got != want {
		t.Errorf("crun by default: got %q %v, want %q", got, err, want)
	}
	if got, err := sandbox.ChooseEngine(sandbox.EngineDocker, sandbox.RuntimeCrun, nil); err != nil || got != sandbox.EngineDocker {
		t.Errorf("docker asked for: got %q %v", got, err)
	}
	if got, err := sandbox.ChooseEngine("", sandbox.RuntimeRunsc, nil); err != nil || got != sandbox.EngineDocker {
		t.Errorf("runsc by default: got %q %v, want docker", got, err)
	}
	if got, err := sandbox.ChooseEngine(sandbox.EngineDirect, sandbox.RuntimeRunsc, nil); err == nil {
		t.Errorf("direct runsc: got %q, want an error", got)
	}
	if got, err := sandbox.ChooseEngine("containerd", sandbox.RuntimeCrun, nil); err == nil {
		t.Errorf("an unknown engine: got %q, want an error", got)
	}
}
