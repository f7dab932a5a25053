// Package trace carries a W3C Trace Context `traceparent` across CodeExec's hops: the edge
// takes it from the HTTP request (or starts one), puts it on the job, the runner puts it on
// the result, and every service logs its trace id beside the job id, so that one execution
// can be followed through all of the logs.
package trace

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// Header is the HTTP header (and the message field) that carries a Parent.
const Header = "traceparent"

// Parent is one traceparent: version 00, a trace id shared by every hop of one execution,
// the id of the span (hop) that sent it, and the trace flags.
type Parent struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// ErrInvalid: the text is not a traceparent this package accepts.
var ErrInvalid = errors.New("invalid traceparent")

// Parse reads a traceparent of version 00 ("00-<32 hex>-<16 hex>-<2 hex>", lowercase), as
// the W3C recommendation defines it; an all-zero trace or span id is invalid.
func Parse(s string) (Parent, error) {
	var p Parent
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return p, fmt.Errorf("%w: want 00-<trace id>-<span id>-<flags>", ErrInvalid)
	}
	if s[:2] != "00" {
		return p, fmt.Errorf("%w: version %q, want 00", ErrInvalid, s[:2])
	}
	var flags [1]byte
	for _, f := range []struct {
		text string
		dst  []byte
	}{{s[3:35], p.TraceID[:]}, {s[36:52], p.SpanID[:]}, {s[53:55], flags[:]}} {
		if !lowerHex(f.text) {
			return Parent{}, fmt.Errorf("%w: not lowercase hex", ErrInvalid)
		}
		if _, err := hex.Decode(f.dst, []byte(f.text)); err != nil {
			return Parent{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	p.Flags = flags[0]
	if p.TraceID == [16]byte{} || p.SpanID == [8]byte{} {
		return Parent{}, fmt.Errorf("%w: all-zero id", ErrInvalid)
	}
	return p, nil
}

func lowerHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// New starts a trace: a random trace id and span id, sampled flag set.
func New() Parent {
	var p Parent
	_, _ = rand.Read(p.TraceID[:]) // crypto/rand.Read never fails (Go 1.24+)
	_, _ = rand.Read(p.SpanID[:])
	p.Flags = 0x01
	return p
}

// FromRequest continues the trace of an incoming traceparent with a span of its own, or
// starts a new trace when the header is absent or invalid.
func FromRequest(header string) Parent {
	if p, err := Parse(header); err == nil {
		return p.Child()
	}
	return New()
}

// Child is the next hop of the same trace: the trace id and flags kept, a new span id.
func (p Parent) Child() Parent {
	c := p
	_, _ = rand.Read(c.SpanID[:])
	return c
}

// String is the traceparent's text form.
func (p Parent) String() string {
	return "00-" + hex.EncodeToString(p.TraceID[:]) + "-" + hex.EncodeToString(p.SpanID[:]) +
		"-" + hex.EncodeToString([]byte{p.Flags})
}

// ID is the trace id as 32 lowercase hex digits: what the logs carry as trace_id.
func (p Parent) ID() string { return hex.EncodeToString(p.TraceID[:]) }

// IDOf is the trace id of a traceparent read from a message, or "" when it carries none
// (or an invalid one, which is not trusted into the logs).
func IDOf(traceparent string) string {
	p, err := Parse(traceparent)
	if err != nil {
		return ""
	}
	return p.ID()
}

// Continue is the traceparent a hop passes on after receiving traceparent: a child span
// of it, or "" when it carries none.
func Continue(traceparent string) string {
	p, err := Parse(traceparent)
	if err != nil {
		return ""
	}
	return p.Child().String()
}
