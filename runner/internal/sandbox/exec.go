package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
)

// execSpec is one process to run in a container.
type execSpec struct {
	op  string // for errors: "compile", "run"
	cmd []string
	// unpack, when set, makes the process unpack the job's files from its stdin first.
	unpack    *unpacker
	stdin     io.Reader // what the process reads after the files; nil: nothing
	timeout   time.Duration
	outputCap int64 // raw bytes of stdout and stderr together
	// encodedCap bounds stdout and stderr together by their JSON-encoded size.
	encodedCap int64
	// ready, when set (launched runs only), must return nil before the program starts;
	// it is asked while the files are unpacked. Its error ends the run, returned as is.
	ready func(context.Context) error
}

// argv is the command an exec runs: cmd, behind the unpacking when there is one.
func (spec execSpec) argv() []string {
	if spec.unpack == nil {
		return spec.cmd
	}
	return spec.unpack.wrap(spec.cmd)
}

// input is what the process reads on its stdin: the files' archive, then spec.stdin.
func (spec execSpec) input() io.Reader {
	if spec.unpack == nil {
		return spec.stdin
	}
	rest := spec.stdin
	if rest == nil {
		rest = strings.NewReader("")
	}
	return io.MultiReader(bytes.NewReader(spec.unpack.archive), rest)
}

// execEnd says how an exec ended.
type execEnd int

const (
	endExited  execEnd = iota // the process exited by itself (exitCode is valid)
	endTimeout                // the wall-time deadline passed; the container was killed
	endOutput                 // the output cap was reached; the container was killed
	// endOOM: the container stopped at its memory limit (Sandbox.stopsAtOOM); its usage
	// was read, then it was killed.
	endOOM
)

type execResult struct {
	end      execEnd
	exitCode int
	out      *capture
	wall     time.Duration
	// usage is the container's usage when the program ended or right before the kill
	// (launched runs only): the step's CPU time when the launcher reported it, else the
	// container's since its start.
	usage    usage
	hasUsage bool
	// report is the launcher's exit line (launched runs that ended by themselves).
	report    exitReport
	hasReport bool
}

// process is a process started in a running container (a compile step): its streams, and
// how to learn its exit code once they ended.
type process struct {
	*attachment
	exitCode func(context.Context) (int, error)
}

// exec runs spec (a compile step; the run is launched, launch.go) in c and waits for it to
// end, to time out or to write too much. On a timeout or an output overflow it kills the
// container: such a container is finished.
func (s *Sandbox) exec(ctx context.Context, c *Container, spec execSpec) (execResult, error) {
	res := execResult{out: newCapture(spec.outputCap, spec.encodedCap)}
	stdin := spec.input()
	var proc *process
	var err error
	if s.oci != nil {
		proc, err = s.ociExec(ctx, c, spec.argv(), stdin != nil, res.out.Stdout(), res.out.Stderr())
	} else {
		proc, err = s.dockerExec(ctx, c, spec.argv(), stdin != nil, res.out.Stdout(), res.out.Stderr())
	}
	if err != nil {
		return res, infra("start "+spec.op, err)
	}
	start := time.Now()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer proc.close()
	if stdin != nil {
		wg.Go(func() {
			// A program that does not read its stdin, or dies, makes this fail: fine.
			_, _ = io.Copy(proc.stdin, stdin)
			_ = proc.closeStdin()
		})
	}

	timer := time.NewTimer(spec.timeout)
	defer timer.Stop()
	oom := s.oomStop(c)
	var copyErr error
wait:
	for {
		select {
		case <-proc.ended:
			copyErr = proc.err
			res.wall = time.Since(start)
			if errors.Is(copyErr, errOutputLimit) {
				res.end = endOutput
			}
		case <-timer.C:
			res.wall = time.Since(start)
			res.end = endTimeout
		case <-oom:
			if !s.oomSeen(ctx, c.ID, 0) {
				oom = nil
				continue wait
			}
			res.wall = time.Since(start)
			res.end = endOOM
		case <-ctx.Done():
			s.kill(context.WithoutCancel(ctx), c.ID)
			return res, infra(spec.op, ctx.Err())
		}
		break
	}

	if res.end == endOOM {
		res.usage, res.hasUsage = s.endStopped(ctx, c)
		proc.close()
		<-proc.ended
		return res, nil
	}
	if res.end != endExited {
		if res.end == endOutput {
			// Nobody reads the stream any more: close it first, or dockerd, blocked
			// writing the flood to us, holds the kill up for seconds.
			proc.close()
			s.kill(ctx, c.ID)
			return res, nil
		}
		s.kill(ctx, c.ID) // the reader drains what the program wrote until its death
		proc.close()
		<-proc.ended
		return res, nil
	}
	if copyErr != nil {
		return res, infra("read output of "+spec.op, copyErr)
	}
	code, err := proc.exitCode(ctx)
	if err != nil {
		return res, infra("exit code of "+spec.op, err)
	}
	res.exitCode = code
	return res, nil
}

// dockerExec starts argv in c through Docker's exec API, as the container's uid.
func (s *Sandbox) dockerExec(ctx context.Context, c *Container, argv []string, stdin bool, stdout, stderr io.Writer) (*process, error) {
	created, err := s.docker.ContainerExecCreate(ctx, c.ID, container.ExecOptions{
		User:         fmt.Sprintf("%d:%d", c.UID, c.UID),
		WorkingDir:   WorkDir,
		Cmd:          argv,
		AttachStdin:  stdin,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create exec: %w", err)
	}
	hj, err := s.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach exec: %w", err)
	}
	exitCode := func(ctx context.Context) (int, error) { return s.exitCode(ctx, created.ID) }
	return &process{attachment: newDockerAttachment(hj, stdout, stderr), exitCode: exitCode}, nil
}

// exitCode waits for the exec to be reported as finished (its output stream can end a
// moment before) and returns its exit code.
func (s *Sandbox) exitCode(ctx context.Context, execID string) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		ins, err := s.docker.ContainerExecInspect(ctx, execID)
		if err != nil {
			return 0, err
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("exec still running after its output ended")
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
