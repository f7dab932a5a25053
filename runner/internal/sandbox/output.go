package sandbox

import (
	"bytes"
	"errors"
	"sync"
)

// errOutputLimit stops stdcopy when the program has written more than it may.
var errOutputLimit = errors.New("output limit exceeded")

// capture keeps a program's stdout and stderr up to a shared cap. The write that crosses
// the cap keeps what fits and fails with errOutputLimit, so the reader stops reading.
type capture struct {
	mu       sync.Mutex
	max      int64
	n        int64
	exceeded bool
	stdout   bytes.Buffer
	stderr   bytes.Buffer
}

func newCapture(max int64) *capture { return &capture{max: max} }

func (c *capture) write(dst *bytes.Buffer, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exceeded {
		return 0, errOutputLimit
	}
	room := c.max - c.n
	if int64(len(p)) > room {
		dst.Write(p[:room])
		c.n = c.max
		c.exceeded = true
		return int(room), errOutputLimit
	}
	dst.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *capture) Stdout() *captureWriter { return &captureWriter{c: c, dst: &c.stdout} }
func (c *capture) Stderr() *captureWriter { return &captureWriter{c: c, dst: &c.stderr} }

func (c *capture) Exceeded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exceeded
}

func (c *capture) Strings() (stdout, stderr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stdout.String(), c.stderr.String()
}

type captureWriter struct {
	c   *capture
	dst *bytes.Buffer
}

func (w *captureWriter) Write(p []byte) (int, error) { return w.c.write(w.dst, p) }
