package sandbox

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/pkg/stdcopy"
)

// attachment is a container's attached stdin, stdout and stderr, read from its creation on:
// so the end of the stream — the container died, or the daemon went away — is seen while
// the container is still warm, and a dead container is never given a job.
type attachment struct {
	// stdin is the main process's stdin; closeStdin ends it, closeAll ends every stream.
	stdin      io.Writer
	closeStdin func() error
	closeAll   func()

	mu sync.Mutex
	// stdout and stderr receive the streams once a job is launched; before, what the
	// launcher writes (nothing, unless it fails to start) is kept in early, for errors.
	stdout, stderr io.Writer
	early          bytes.Buffer
	launched       bool

	ended   chan struct{} // closed when the stream has ended
	err     error         // why it ended (nil: end of stream); read after ended
	closing sync.Once
}

// earlyCap bounds what is kept of the output before a job.
const earlyCap = 4 << 10

// newDockerAttachment reads Docker's attach stream, stdout and stderr multiplexed on one
// connection.
// stdout and stderr, when set, receive the output from the start (as launch does).
func newDockerAttachment(hj types.HijackedResponse, stdout, stderr io.Writer) *attachment {
	a := &attachment{stdin: hj.Conn, closeStdin: hj.CloseWrite, closeAll: hj.Close, ended: make(chan struct{})}
	a.setWriters(stdout, stderr)
	go func() {
		defer close(a.ended)
		_, a.err = stdcopy.StdCopy(streamWriter{a, false}, streamWriter{a, true}, hj.Reader)
	}()
	return a
}

// newPipeAttachment reads a process's stdout and stderr from the read ends of their pipes
// and writes its stdin to the write end of another (nil: the process has no stdin). The stream ends when both pipes are
// at their end (every process holding their write ends is gone), or at the first error
// (a full output cap), which closes them all.
func newPipeAttachment(stdin, stdout, stderr *os.File, outW, errW io.Writer) *attachment {
	var closing sync.Once
	closeAll := func() {
		closing.Do(func() {
			if stdin != nil {
				stdin.Close()
			}
			stdout.Close()
			stderr.Close()
		})
	}
	a := &attachment{stdin: io.Discard, closeStdin: func() error { return nil }, closeAll: closeAll, ended: make(chan struct{})}
	if stdin != nil { // a process without stdin reads /dev/null
		a.stdin, a.closeStdin = stdin, stdin.Close
	}
	a.setWriters(outW, errW)
	errs := make(chan error, 2)
	pass := func(w io.Writer, r io.Reader) {
		_, err := io.Copy(w, r)
		if errors.Is(err, os.ErrClosed) {
			err = nil // closed by closeAll: the end of the stream
		}
		if err != nil {
			closeAll()
		}
		errs <- err
	}
	go pass(streamWriter{a, false}, stdout)
	go pass(streamWriter{a, true}, stderr)
	go func() {
		defer close(a.ended)
		a.err = errors.Join(<-errs, <-errs)
	}()
	return a
}

// setWriters hands the streams to stdout and stderr from the start, when they are set.
func (a *attachment) setWriters(stdout, stderr io.Writer) {
	if stdout != nil {
		a.launched = true
		a.stdout, a.stderr = stdout, stderr
	}
}

// launch hands the streams to stdout and stderr; it reports false when a job was launched
// on the container before.
func (a *attachment) launch(stdout, stderr io.Writer) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.launched {
		return false
	}
	a.launched = true
	a.stdout, a.stderr = stdout, stderr
	return true
}

// alive reports whether the stream is still open.
func (a *attachment) alive() bool {
	select {
	case <-a.ended:
		return false
	default:
		return true
	}
}

// earlyOutput returns what the launcher wrote before its job.
func (a *attachment) earlyOutput() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.early.String()
}

// close closes the connection, which ends the stream; it may be called more than once.
func (a *attachment) close() {
	a.closing.Do(a.closeAll)
}

// streamWriter is stdout or stderr of an attachment.
type streamWriter struct {
	a      *attachment
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.a.mu.Lock()
	dst := w.a.stdout
	if w.stderr {
		dst = w.a.stderr
	}
	if dst == nil {
		if room := earlyCap - w.a.early.Len(); room > 0 {
			w.a.early.Write(p[:min(len(p), room)])
		}
		w.a.mu.Unlock()
		return len(p), nil
	}
	w.a.mu.Unlock()
	// Written outside the lock: only the reading goroutine writes, and the destination
	// does not change once set.
	return dst.Write(p)
}
