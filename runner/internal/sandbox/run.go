package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
)

// Job is what the sandbox needs of a job.
type Job struct {
	ID       string
	Language *languages.Language
	// Ready, when set, must return nil before anything of the job runs (the compiler
	// included); the sandbox asks it while it unpacks the files where it can. Its error
	// ends the job and is returned as is.
	Ready func(context.Context) error
	Files []messages.File
	Stdin string
	Args  []string
	// Limits are the effective limits (languages.Catalog.Effective), all fields set.
	Limits messages.Limits
}

// Outcome is how the user's program fared. Every figure is measured.
type Outcome struct {
	Status        messages.Status
	Stdout        string
	Stderr        string
	CompileOutput string
	ExitCode      *int
	Signal        string
	ErrorMessage  string
	// Truncated says the output (or the compiler's) was cut at its limit: its head is kept.
	Truncated bool
	WallTime  time.Duration // of the run step
	CPUTime   time.Duration // of the run step (the container's, without the compile)
	// MemoryBytes is the container's peak during the run step, or since its start where
	// the cgroup's peak cannot be restarted after a compile.
	MemoryBytes int64
}

// oomGrace is how long a SIGKILLed program's result waits for Docker's oom event.
const oomGrace = 300 * time.Millisecond

// Run runs job in c, which must be fresh. c is finished afterwards: the caller removes it.
// The error is an *InfraError when the platform failed; whatever the program did is in
// the Outcome.
func (s *Sandbox) Run(ctx context.Context, c *Container, job Job) (Outcome, error) {
	var out Outcome
	lim := job.Limits
	entry, ok := entryPoint(job.Files)
	if !ok {
		return out, infraf("prepare", "job has no entry point")
	}
	if err := s.update(ctx, c, lim); err != nil {
		return out, err
	}

	archive, err := tarFiles(job.Files, c.UID)
	if err != nil {
		return out, infra("pack files", err)
	}
	// The files travel on the stdin of the job's first process (the compiler's exec, or else
	// the launcher), which unpacks them before it runs the step.
	unpack, err := newUnpacker(archive)
	if err != nil {
		return out, err
	}

	var before usage
	ready := job.Ready
	if len(job.Language.Compile) > 0 && ready != nil {
		if err := ready(ctx); err != nil {
			return out, err
		}
		ready = nil
	}
	if len(job.Language.Compile) > 0 {
		comp, err := s.exec(ctx, c, execSpec{
			op: "compile", cmd: expand(job.Language.Compile, entry, nil), unpack: unpack,
			timeout: ms(lim.CompileTimeMs), outputCap: lim.OutputBytes, encodedCap: messages.MaxCompileOutputEncodedBytes,
		})
		if err != nil {
			return out, err
		}
		if err := unpack.check(comp); err != nil {
			return out, err
		}
		unpack = nil // done
		stdout, stderr := comp.out.Strings()
		out.CompileOutput = stdout + stderr
		switch {
		case comp.end == endTimeout:
			out.Status = messages.StatusCompileError
			out.ErrorMessage = fmt.Sprintf("compilation exceeded the time limit of %s", ms(lim.CompileTimeMs))
			return out, nil
		case comp.end == endOOM:
			out.Status = messages.StatusCompileError
			out.ErrorMessage = "the compiler ran out of memory"
			return out, nil
		case comp.end == endOutput:
			out.Status = messages.StatusCompileError
			out.Truncated = true
			out.ErrorMessage = "compiler output exceeded the output limit"
			return out, nil
		case comp.exitCode != 0:
			out.Status = messages.StatusCompileError
			out.ErrorMessage = fmt.Sprintf("compiler exited with code %d", comp.exitCode)
			if s.oomSeen(ctx, c.ID, 0) {
				out.ErrorMessage = "the compiler ran out of memory"
			}
			return out, nil
		}
	}
	// The run's CPU time excludes the compile's (a program that needs none unpacks its own
	// files, a few milliseconds of tar counted with it); so does its memory peak
	// where the cgroup lets us restart it (else the peak is the container's since its
	// start). Without the cgroup files at hand, Docker's slow stats are asked only when a
	// compile makes the difference worth it.
	if u, err := cgroupUsage(s.cgroupRoot, s.cgroupLeaves(c.ID)); err == nil {
		before = u
	} else if len(job.Language.Compile) > 0 {
		before, _ = s.usage(ctx, c.ID)
	}
	resetPeak(s.cgroupRoot, s.cgroupLeaves(c.ID))

	spec := execSpec{
		op: "run", cmd: expand(job.Language.Run, entry, job.Args), unpack: unpack, stdin: strings.NewReader(job.Stdin),
		timeout: ms(lim.RunTimeMs), outputCap: lim.OutputBytes, encodedCap: messages.MaxOutputEncodedBytes,
		ready: ready,
	}
	run, err := s.launch(ctx, c, spec)
	if err != nil {
		return out, err
	}
	if unpack != nil {
		if err := unpack.check(run); err != nil {
			return out, err
		}
	}
	out.Stdout, out.Stderr = run.out.Strings()
	out.WallTime = run.wall
	switch {
	case run.hasReport && run.report.cpu() >= 0:
		out.CPUTime = run.report.cpu() // the launcher's own before and after
		out.MemoryBytes = run.usage.peakMemory
	case run.hasUsage:
		out.CPUTime = max(run.usage.cpu-before.cpu, 0)
		out.MemoryBytes = run.usage.peakMemory
	}
	switch run.end {
	case endOOM:
		// The sandbox stopped at its memory limit (stopsAtOOM) and was killed.
		out.Status = messages.StatusMemoryLimit
		out.Signal = "SIGKILL"
		out.ErrorMessage = fmt.Sprintf("the program exceeded the memory limit of %d MiB", lim.MemoryBytes>>20)
		return out, nil
	case endTimeout:
		out.Status = messages.StatusTimeLimit
		out.ErrorMessage = fmt.Sprintf("the program exceeded the time limit of %s", ms(lim.RunTimeMs))
		return out, nil
	case endOutput:
		out.Status = messages.StatusOutputLimit
		out.Truncated = true
		out.ErrorMessage = fmt.Sprintf("the program's output exceeded the limit of %d bytes (%d bytes once encoded)",
			lim.OutputBytes, messages.MaxOutputEncodedBytes)
		return out, nil
	}
	code := run.exitCode
	if code == 0 {
		out.Status = messages.StatusSucceeded
		out.ExitCode = &code
		return out, nil
	}
	if s.oomKilled(ctx, c, run, code) {
		out.Status = messages.StatusMemoryLimit
		out.Signal = signalName(code - 128)
		out.ErrorMessage = fmt.Sprintf("the program exceeded the memory limit of %d MiB", lim.MemoryBytes>>20)
		return out, nil
	}
	out.Status = messages.StatusRuntimeError
	out.ExitCode = &code
	if code > 128 && code < 128+65 {
		out.Signal = signalName(code - 128)
		out.ErrorMessage = "the program was killed by " + out.Signal
	} else {
		out.ErrorMessage = fmt.Sprintf("the program exited with code %d", code)
	}
	return out, nil
}

// oomKilled decides, from evidence, whether the kernel's OOM killer struck the run: the
// cgroup's own OOM-kill count, read by the launcher before and after the program. Where
// the launcher could not read it (or died), Docker's oom event for the container, or — should
// the event stream have missed it — a SIGKILL death with the cgroup's peak at its limit.
func (s *Sandbox) oomKilled(ctx context.Context, c *Container, run execResult, code int) bool {
	if run.hasReport {
		if n := run.report.oomKills(); n >= 0 {
			return n > 0
		}
	}
	grace := time.Duration(0)
	if code == 128+9 {
		grace = oomGrace
	}
	if s.oomSeen(ctx, c.ID, grace) {
		return true
	}
	return code == 128+9 && c.Limits.MemoryBytes > 0 && run.usage.peakMemory >= c.Limits.MemoryBytes
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func entryPoint(files []messages.File) (string, bool) {
	for _, f := range files {
		if f.IsEntryPoint {
			return f.Filename, true
		}
	}
	return "", false
}

// expand substitutes the placeholders of a language's command and appends args:
// {entry} is the entry point's path, {main} its base name without extension.
func expand(argv []string, entry string, args []string) []string {
	base := path.Base(entry)
	main := strings.TrimSuffix(base, path.Ext(base))
	r := strings.NewReplacer("{entry}", entry, "{main}", main)
	out := make([]string, 0, len(argv)+len(args))
	for _, a := range argv {
		out = append(out, r.Replace(a))
	}
	return append(out, args...)
}

// unpacker puts a job's files in the work dir from the stdin of the job's first process:
// `sh -c 'head -c N | tar -x … && exec "$@"'` reads exactly the archive's N bytes (head
// never reads past them), so what follows on stdin is the program's own input.
type unpacker struct {
	archive []byte
	// marker, printed on stderr when unpacking fails, carries a random nonce so that no
	// program can fake an unpack failure (and with it a free retry).
	marker string
}

// unpackFailed is the exit code of the wrapper when the files could not be unpacked.
const unpackFailed = 125

func newUnpacker(archive []byte) (*unpacker, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, infra("unpack nonce", err)
	}
	return &unpacker{archive: archive, marker: "codeexec-unpack-failed-" + hex.EncodeToString(nonce)}, nil
}

// extract is the shell pipeline that unpacks the archive from stdin into the work dir.
func (u *unpacker) extract() string {
	return fmt.Sprintf("head -c %d | tar -x -m -C %s -f -", len(u.archive), WorkDir)
}

// wrap returns the argv of a process that unpacks the archive from stdin, then execs cmd
// (the compile step's exec, as the container's uid). The marker it prints, in its argv
// only until cmd replaces it, is known to no process of the job's.
func (u *unpacker) wrap(cmd []string) []string {
	script := fmt.Sprintf(`%s || { echo %s >&2; exit %d; }; exec "$@"`, u.extract(), u.marker, unpackFailed)
	return append([]string{"sh", "-c", script, "sh"}, cmd...)
}

// check turns an unpack failure into an infrastructure error.
func (u *unpacker) check(r execResult) error {
	if r.end != endExited || r.exitCode != unpackFailed {
		return nil
	}
	if _, stderr := r.out.Strings(); strings.Contains(stderr, u.marker) {
		return infraf("unpack files", "tar failed: %s", strings.TrimSpace(strings.ReplaceAll(stderr, u.marker, "")))
	}
	return nil
}

// tarFiles packs the job's files, owned by uid (the container's), directories included.
func tarFiles(files []messages.File, uid int) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Now()
	for _, f := range files {
		if err := messages.ValidateFilename(f.Filename); err != nil {
			return nil, err
		}
		for d := path.Dir(f.Filename); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range sortedDirs(dirs) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, Uid: uid, Gid: uid, ModTime: now}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Filename, Mode: 0o644, Size: int64(len(f.Code)), Uid: uid, Gid: uid, ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.Code)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sortedDirs returns parents before children.
func sortedDirs(dirs map[string]bool) []string {
	out := make([]string, 0, len(dirs))
	for d := range dirs {
		out = append(out, d)
	}
	// Shorter paths (by segment count) first puts every parent before its children.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && strings.Count(out[j], "/") < strings.Count(out[j-1], "/"); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

var signalNames = map[int]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
	8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
	14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS",
}

func signalName(n int) string {
	if name, ok := signalNames[n]; ok {
		return name
	}
	return fmt.Sprintf("signal %d", n)
}
