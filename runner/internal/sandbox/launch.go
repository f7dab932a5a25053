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
// The exit lines start with a random token, so they are told from the program's output;
// each is the last thing the launcher writes on its stream, after everything the program
// wrote there. With both seen, the program has ended: its status is known and the
// container, still alive, has its cgroup to read. The launcher is the container's PID 1,
// which the program cannot kill (the kernel delivers to a namespace's init no signal it has
// no handler for, from inside the namespace), so the exit lines always come — unless the
// kernel's OOM killer takes the launcher itself, which is reported as the memory limit it
// is, from Docker's oom event.

// launcher is the main process of every container: read the script's length, then run the
// script, which reads the rest of stdin itself.
var launcher = []string{"sh", "-c", `read -r n && eval "$(head -c "$n")"`}

// launchScript is what the launcher runs for a job, and the token of its exit lines.
type launchScript struct {
	text  string
	token []byte // starts both exit lines: "<token><status>\n"
}

// newLaunchScript writes the script that runs spec's command behind its unpacking.
func newLaunchScript(spec execSpec) (launchScript, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return launchScript{}, infra("exit token", err)
	}
	token := "codeexec-exit-" + hex.EncodeToString(nonce) + ":"
	var b strings.Builder
	if spec.unpack != nil {
		b.WriteString(spec.unpack.script())
		b.WriteString("\n")
	}
	for i, w := range spec.cmd {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(shellQuote(w))
	}
	// The program's status goes to both streams, then the launcher sleeps: the container
	// stays up until the runner has read its cgroup and removes it.
	fmt.Fprintf(&b, "\ns=$?\nprintf '%%s%%d\\n' %s \"$s\"\nprintf '%%s%%d\\n' %s \"$s\" >&2\nexec sleep infinity\n", token, token)
	return launchScript{text: b.String(), token: []byte(token)}, nil
}

// launch sends spec to c's launcher and waits for the program's exit lines, for the
// deadline or for too much output. c is finished afterwards.
func (s *Sandbox) launch(ctx context.Context, c *Container, spec execSpec) (execResult, error) {
	res := execResult{out: newCapture(spec.outputCap)}
	script, err := newLaunchScript(spec)
	if err != nil {
		return res, err
	}
	exited := make(chan int, 2)
	stdout := &exitLineWriter{w: res.out.Stdout(), token: script.token, exited: exited}
	stderr := &exitLineWriter{w: res.out.Stderr(), token: script.token, exited: exited}
	st := c.streams
	if !st.launch(stdout, stderr) {
		return res, infraf(spec.op, "container %s was launched already", short(c.ID))
	}
	if !st.alive() {
		return res, infraf(spec.op, "container %s died before its job: %s", short(c.ID), endReason(st))
	}
	var stdin io.Reader = strings.NewReader(strconv.Itoa(len(script.text)) + "\n" + script.text)
	if rest := spec.input(); rest != nil {
		stdin = io.MultiReader(stdin, rest)
	}

	var wg sync.WaitGroup
	// The stream ends once the connection is closed: no write to res.out after the return.
	defer func() { <-st.ended }()
	defer wg.Wait()
	defer st.close()
	start := time.Now()
	feedStdin(&wg, st.hj, stdin)

	timer := time.NewTimer(spec.timeout)
	defer timer.Stop()
	lines := 0
	streamEnded := false
wait:
	for lines < 2 {
		select {
		case res.exitCode = <-exited:
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
		// The program ended; its children, if any, die with the container.
		res.usage, res.hasUsage = s.usage(ctx, c.ID)
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

	// The launcher's streams ended without its exit lines: it failed to unpack the files
	// (exit code and marker, checked by the caller), or it is gone.
	code, err := s.waitExit(ctx, c.ID)
	if err != nil {
		return res, infra("wait for "+spec.op, err)
	}
	res.exitCode = code
	if code == unpackFailed || s.oom.wait(ctx, c.ID, oomGrace) {
		return res, nil
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

// waitExit waits for the container to stop and returns its exit code.
func (s *Sandbox) waitExit(ctx context.Context, id string) (int, error) {
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
// "<token><status>\n", which it takes off the stream and sends the status of on exited.
// What follows the exit line (from children that outlive the program) is dropped.
type exitLineWriter struct {
	w      io.Writer
	token  []byte
	exited chan<- int
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

// collect gathers the status after the token up to the end of the line.
func (e *exitLineWriter) collect(p []byte) error {
	line, _, complete := bytes.Cut(p, []byte("\n"))
	e.status = append(e.status, line...)
	if len(e.status) > 3 {
		return errBadExitLine
	}
	if !complete {
		return nil
	}
	code, err := strconv.Atoi(string(e.status))
	if err != nil {
		return errBadExitLine
	}
	e.done = true
	e.exited <- code
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
