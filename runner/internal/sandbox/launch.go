package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
)

// The run step does not go through `docker exec`, whose create, attach and inspect round
// trips cost about 40 ms of a 50 ms hello world on dockerd 20.10; nor does it wait for
// Docker to notice that a container stopped (another 25 ms). The container's main process,
// the launcher, is a shell waiting on its stdin, which the runner attached before the start
// and keeps. The job arrives there: a length line, then a shell script the runner wrote —
// unpack the files, run the program with its arguments (every word quoted), print an exit
// line with the program's status on stdout and on stderr, then sleep — followed by the
// files' archive and the program's own stdin.
//
// The launcher is root in the container, with only the capabilities it needs to unpack the
// files and drop privileges (launcherCaps); the program runs under the container's own uid
// (setpriv), with no capability and no way back (no-new-privileges). So the program can
// neither read the launcher's memory, environment or file descriptors (/proc/1/… need
// ptrace rights over another uid), nor write them, nor signal the launcher. The exit lines start with a random
// token that lives only in the launcher's memory, so the program cannot forge them; each is
// the last thing the launcher writes on its stream, after the program ended and after the
// launcher killed whatever the program left (kill -9 -1), so nothing the program wrote can
// follow it. The line carries the evidence of the program's end, read by the launcher from
// the kernel: the exit status, and the container cgroup's OOM-kill count, CPU time and
// memory peak before and after the program (read-only cgroup files, cgroup v1 or v2).

// launcher is the main process of every container: read the script's length, then run the
// script, which reads the rest of stdin itself.
var launcher = []string{"sh", "-c", `read -r n && eval "$(head -c "$n")"`}

// launchScript is what the launcher runs for a job, and the token of its exit lines.
type launchScript struct {
	text  string
	token []byte // starts both exit lines: "<token><status> <evidence…>\n"
}

// cgroupReader is a shell function that sets c (CPU time in ns), o (OOM kills) and p
// (memory peak in bytes) from the container's cgroup, -1 where unknown, with shell
// builtins only (no process to start).
const cgroupReader = `cg() {
c=-1 o=-1 p=-1
if [ -r /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
read -r c </sys/fs/cgroup/cpuacct/cpuacct.usage
read -r p </sys/fs/cgroup/memory/memory.max_usage_in_bytes
while read -r k v; do [ "$k" = oom_kill ] && o=$v; done </sys/fs/cgroup/memory/memory.oom_control
elif [ -r /sys/fs/cgroup/cpu.stat ]; then
while read -r k v; do [ "$k" = usage_usec ] && c=$((v*1000)); done </sys/fs/cgroup/cpu.stat
while read -r k v; do [ "$k" = oom_kill ] && o=$v; done </sys/fs/cgroup/memory.events
read -r p 2>/dev/null </sys/fs/cgroup/memory.peak || read -r p </sys/fs/cgroup/memory.current
fi
}
`

// dropTo is the command prefix that runs a command as uid with no capability.
func dropTo(uid int) string {
	return fmt.Sprintf("setpriv --reuid=%d --regid=%d --clear-groups --", uid, uid)
}

// newLaunchScript writes the script that runs spec's command as uid, behind its unpacking.
// relay passes the program's output on through pipes of the launcher's (relayOutput).
func newLaunchScript(spec execSpec, uid int, relay bool) (launchScript, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return launchScript{}, infra("exit token", err)
	}
	token := "codeexec-exit-" + hex.EncodeToString(nonce) + ":"
	var b strings.Builder
	b.WriteString(cgroupReader)
	b.WriteString("cg; c0=$c o0=$o\n")
	if spec.unpack != nil {
		// The launcher unpacks the files itself (as the uid that owns them: tar restores
		// the archive's owner), sparing the exec of a shell under the program's uid. A
		// failure skips the program: status unpackFailed, the job's marker on stderr.
		fmt.Fprintf(&b, "if %s; then\n", spec.unpack.extract())
	}
	if spec.ready != nil {
		// The program waits for the runner's go-ahead; without it, nothing of it runs.
		b.WriteString("read -r go; [ \"$go\" = " + goAhead + " ] || exec sleep infinity\n")
	}
	// The program is the OOM killer's first choice (it may lower that to the launcher's,
	// no further), without any capability, under the container's uid.
	var prog strings.Builder
	prog.WriteString("( echo 1000 >/proc/self/oom_score_adj; exec " + dropTo(uid))
	for _, w := range spec.cmd {
		prog.WriteString(" ")
		prog.WriteString(shellQuote(w))
	}
	prog.WriteString(" )")
	if relay {
		b.WriteString(relayOutput(prog.String(), uid))
	} else {
		b.WriteString(prog.String() + "\ns=$?\n")
	}
	if spec.unpack != nil {
		fmt.Fprintf(&b, "else\necho %s >&2\ns=%d\nfi\n", spec.unpack.marker, unpackFailed)
	}
	// Its status and the evidence go to both streams once nothing of the program is left,
	// then the launcher sleeps: the container stays up until the runner removes it.
	fmt.Fprintf(&b, "kill -9 -1 2>/dev/null\ncg\n"+
		"printf '%%s%%d %%s %%s %%s %%s %%s\\n' %[1]s \"$s\" \"$o0\" \"$o\" \"$c0\" \"$c\" \"$p\"\n"+
		"printf '%%s%%d %%s %%s %%s %%s %%s\\n' %[1]s \"$s\" \"$o0\" \"$o\" \"$c0\" \"$c\" \"$p\" >&2\n"+
		"exec sleep infinity\n", token)
	return launchScript{text: b.String(), token: []byte(token)}, nil
}

// relayOutput runs prog (a subshell that execs the program as uid) with its stdout and
// stderr on pipes, each passed on to the launcher's own by a cat of the launcher's, and
// sets s to the program's status. gVisor (runsc 20221219) loses what one large write to
// the container's stdout holds beyond the host pipe's free room (a 1 MiB write arrives as
// 64 KiB) while a cat's writes arrive whole. Once the program ended, whatever of it is
// left is killed from its own uid (so that the cats, the launcher's, see the end of their
// pipes), then the launcher waits for the cats, so the exit lines still come last. fds:
// 3 and 4 keep the launcher's stdout and stderr, 7 carries the status, 8 is the stderr
// pipe; the program and its killer get none of them.
func relayOutput(prog string, uid int) string {
	closeAll := "3>&- 4>&- 7>&- 8>&-"
	kill := dropTo(uid) + " sh -c 'kill -9 -1; kill -9 -1' >/dev/null 2>&1 " + closeAll
	return "exec 3>&1 4>&2\n" +
		"s=$({ { { " + prog + " 2>&8 " + closeAll + "; echo $? >&7; " + kill + "; } | cat >&3; } 8>&1 | cat >&4; } 7>&1)\n" +
		"exec 3>&- 4>&-\n" +
		"[ -n \"$s\" ] || s=255\n"
}

// goAhead is the line that lets a gated program start (execSpec.ready).
const goAhead = "go"

// exitReport is the launcher's exit line: how the program ended, and the cgroup's
// counters before and after it. A counter the launcher could not read is -1.
type exitReport struct {
	code                int
	oomBefore, oomAfter int64
	cpuBefore, cpuAfter int64 // ns
	peakMemory          int64
}

// oomKills is how many processes the kernel's OOM killer took while the program ran, or -1.
func (r exitReport) oomKills() int64 {
	if r.oomBefore < 0 || r.oomAfter < 0 {
		return -1
	}
	return r.oomAfter - r.oomBefore
}

// cpu is the CPU time of the container while the program ran, or -1.
func (r exitReport) cpu() time.Duration {
	if r.cpuBefore < 0 || r.cpuAfter < 0 {
		return -1
	}
	return time.Duration(max(r.cpuAfter-r.cpuBefore, 0))
}

// parseExitReport parses what follows the token on an exit line.
func parseExitReport(line []byte) (exitReport, error) {
	f := strings.Fields(string(line))
	if len(f) != 6 {
		return exitReport{}, errBadExitLine
	}
	var n [6]int64
	for i, s := range f {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < -1 {
			return exitReport{}, errBadExitLine
		}
		n[i] = v
	}
	if n[0] > 255 {
		return exitReport{}, errBadExitLine
	}
	return exitReport{code: int(n[0]), oomBefore: n[1], oomAfter: n[2], cpuBefore: n[3], cpuAfter: n[4], peakMemory: n[5]}, nil
}

// launch sends spec to c's launcher and waits for the program's exit lines, for the
// deadline or for too much output. c is finished afterwards.
func (s *Sandbox) launch(ctx context.Context, c *Container, spec execSpec) (execResult, error) {
	res := execResult{out: newCapture(spec.outputCap, spec.encodedCap)}
	script, err := newLaunchScript(spec, c.UID, s.relaysOutput())
	if err != nil {
		return res, err
	}
	exited := make(chan exitReport, 2)
	stdout := &exitLineWriter{w: res.out.Stdout(), token: script.token, exited: exited}
	stderr := &exitLineWriter{w: res.out.Stderr(), token: script.token, exited: exited}
	st := c.streams
	if !st.launch(stdout, stderr) {
		return res, infraf(spec.op, "container %s was launched already", short(c.ID))
	}
	if !st.alive() {
		return res, infraf(spec.op, "container %s died before its job: %s", short(c.ID), endReason(st))
	}
	var job io.Reader = strings.NewReader(strconv.Itoa(len(script.text)) + "\n" + script.text)
	if spec.unpack != nil {
		job = io.MultiReader(job, bytes.NewReader(spec.unpack.archive))
	}

	var wg sync.WaitGroup
	// The stream ends once the connection is closed: no write to res.out after the return.
	defer func() { <-st.ended }()
	defer wg.Wait()
	defer st.close()
	gate := make(chan error, 1)
	wg.Go(func() {
		// A program that does not read its stdin, or dies, makes a copy fail: fine.
		_, _ = io.Copy(st.stdin, job)
		if spec.ready != nil {
			err := spec.ready(ctx)
			gate <- err
			if err != nil {
				return // the launcher never gets the go-ahead; the container is killed
			}
			_, _ = io.WriteString(st.stdin, goAhead+"\n")
		}
		if spec.stdin != nil {
			_, _ = io.Copy(st.stdin, spec.stdin)
		}
		_ = st.closeStdin()
	})
	if spec.ready != nil {
		select {
		case err := <-gate:
			if err != nil {
				s.kill(context.WithoutCancel(ctx), c.ID)
				return res, err
			}
		case <-st.ended: // seen below
		case <-ctx.Done():
			s.kill(context.WithoutCancel(ctx), c.ID)
			return res, infra(spec.op, ctx.Err())
		}
	}
	// The program's time starts with the go-ahead.
	start := time.Now()
	timer := time.NewTimer(spec.timeout)
	defer timer.Stop()
	lines := 0
	streamEnded := false
	oom := s.oomStop(c)
wait:
	for lines < 2 {
		select {
		case <-oom:
			if s.oomSeen(ctx, c.ID, 0) {
				res.end = endOOM
				break wait
			}
			oom = nil // forgotten: the container is being removed, which ends the stream
		case res.report = <-exited:
			res.exitCode = res.report.code
			lines++
		case <-st.ended:
			streamEnded = true
			break wait
		case <-timer.C:
			res.end = endTimeout
			break wait
		case <-ctx.Done():
			s.kill(context.WithoutCancel(ctx), c.ID)
			return res, infra(spec.op, ctx.Err())
		}
	}
	res.wall = time.Since(start)
	var copyErr error
	if streamEnded {
		copyErr = st.err
		if errors.Is(copyErr, errOutputLimit) {
			res.end = endOutput
		}
	}

	switch {
	case res.end == endExited && !streamEnded:
		// The program ended, and so did what it left behind; the launcher measured it.
		res.hasReport = true
		if res.report.cpu() >= 0 && res.report.peakMemory >= 0 {
			res.usage, res.hasUsage = usage{cpu: res.report.cpu(), peakMemory: res.report.peakMemory}, true
		} else {
			res.usage, res.hasUsage = s.usage(ctx, c.ID)
		}
		return res, nil
	case res.end == endOOM:
		res.usage, res.hasUsage = s.endStopped(ctx, c)
		return res, nil
	case res.end == endOutput:
		res.usage, res.hasUsage = s.usage(ctx, c.ID)
		// Nobody reads the stream any more: close it first, or dockerd, blocked writing
		// the flood to us, holds the kill up.
		st.close()
		s.kill(ctx, c.ID)
		return res, nil
	case res.end == endTimeout:
		res.usage, res.hasUsage = s.usage(ctx, c.ID)
		s.kill(ctx, c.ID)
		// The reader drains what the program wrote until its death (bounded, should the
		// kill have failed: the connection is closed then).
		select {
		case <-st.ended:
		case <-time.After(5 * time.Second):
		}
		return res, nil
	case copyErr != nil:
		return res, infra("read output of "+spec.op, copyErr)
	}

	// The launcher's streams ended without its exit lines: it is gone (killed from outside,
	// or by the OOM killer).
	code, err := s.waitExit(ctx, c.ID)
	if err != nil {
		return res, infra("wait for "+spec.op, err)
	}
	res.exitCode = code
	if s.oomSeen(ctx, c.ID, oomGrace) {
		return res, nil
	}
	if code < 0 {
		return res, infraf(spec.op, "the container stopped before the program ended")
	}
	return res, infraf(spec.op, "the container stopped before the program ended (exit code %d)", code)
}

// endReason says why an attachment's stream ended, with what the launcher wrote before.
func endReason(st *attachment) string {
	why := "end of stream"
	if st.err != nil {
		why = st.err.Error()
	}
	if early := strings.TrimSpace(st.earlyOutput()); early != "" {
		why += "; it wrote: " + early
	}
	return why
}

// waitExit waits for the container to stop and returns its exit code; -1 under the direct
// engine, where the launcher is not the runner's child (its stream's end is its stop).
func (s *Sandbox) waitExit(ctx context.Context, id string) (int, error) {
	if s.oci != nil {
		return -1, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	waited, errs := s.docker.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case w := <-waited:
		if w.Error != nil && w.Error.Message != "" {
			return 0, errors.New(w.Error.Message)
		}
		return int(w.StatusCode), nil
	case err := <-errs:
		return 0, err
	}
}

// exitLineWriter passes one of the launcher's streams on to w up to the exit line
// "<token><status> <evidence…>\n", which it takes off the stream and sends the report of
// on exited. Nothing follows the exit line but, at most, a write of the program's that
// raced with its kill; it is dropped.
type exitLineWriter struct {
	w      io.Writer
	token  []byte
	exited chan<- exitReport
	// held are bytes not passed on yet because they may begin the token.
	held []byte
	// status collects the exit line after the token; found says the token was seen.
	status []byte
	found  bool
	done   bool
}

var errBadExitLine = errors.New("malformed exit line")

func (e *exitLineWriter) Write(p []byte) (int, error) {
	if e.done {
		return len(p), nil
	}
	if e.found {
		return len(p), e.collect(p)
	}
	buf := append(e.held, p...)
	if i := bytes.Index(buf, e.token); i >= 0 {
		if _, err := e.w.Write(buf[:i]); err != nil {
			return 0, err
		}
		e.held, e.found = nil, true
		return len(p), e.collect(buf[i+len(e.token):])
	}
	keep := tokenPrefixAtEnd(buf, e.token)
	if _, err := e.w.Write(buf[:len(buf)-keep]); err != nil {
		return 0, err
	}
	e.held = append([]byte(nil), buf[len(buf)-keep:]...)
	return len(p), nil
}

// maxExitLine bounds what follows the token on an exit line: six decimal numbers.
const maxExitLine = 6 * 21

// collect gathers the report after the token up to the end of the line.
func (e *exitLineWriter) collect(p []byte) error {
	line, _, complete := bytes.Cut(p, []byte("\n"))
	e.status = append(e.status, line...)
	if len(e.status) > maxExitLine {
		return errBadExitLine
	}
	if !complete {
		return nil
	}
	r, err := parseExitReport(e.status)
	if err != nil {
		return err
	}
	e.done = true
	e.exited <- r
	return nil
}

// tokenPrefixAtEnd returns the length of the longest end of buf that begins token (shorter
// than token itself).
func tokenPrefixAtEnd(buf, token []byte) int {
	for k := min(len(buf), len(token)-1); k > 0; k-- {
		if bytes.HasSuffix(buf, token[:k]) {
			return k
		}
	}
	return 0
}

// shellQuote quotes one word for sh: inside single quotes nothing is special but the quote.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
