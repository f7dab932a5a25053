package sandbox

import (
	"bytes"
	"errors"
	"sync"

	"github.com/codeexec/codeexec/shared/messages"
)

// errOutputLimit stops stdcopy when the program has written more than it may.
var errOutputLimit = errors.New("output limit exceeded")

// capture keeps a program's stdout and stderr up to two shared caps: max raw bytes (the
// job's outputBytes limit) and maxEncoded bytes once JSON-encoded (so that the result
// always fits its message, whatever bytes the program writes). The write that crosses a
// cap keeps what fits and fails with errOutputLimit, so the reader stops reading.
type capture struct {
	mu         sync.Mutex
	max        int64
	maxEncoded int64
	n          int64
	encoded    int64
	exceeded   bool
	stdout     bytes.Buffer
	stderr     bytes.Buffer
}

func newCapture(max, maxEncoded int64) *capture { return &capture{max: max, maxEncoded: maxEncoded} }

func (c *capture) write(dst *bytes.Buffer, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exceeded {
		return 0, errOutputLimit
	}
	fit := min(int64(len(p)), c.max-c.n)
	enc := int64(0)
	for i := range fit {
		cost := messages.EncodedCost(p[i])
		if c.encoded+enc+cost > c.maxEncoded {
			fit = i
			break
		}
		enc += cost
	}
	dst.Write(p[:fit])
	c.n += fit
	c.encoded += enc
	if fit < int64(len(p)) {
		c.exceeded = true
		return int(fit), errOutputLimit
	}
	return len(p), nil
}

func (c *capture) Stdout() *captureWriter { return &captureWriter{c: c, dst: &c.stdout} }
func (c *capture) Stderr() *captureWriter { return &captureWriter{c: c, dst: &c.stderr} }

// Exceeded reports whether the output was cut.
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
