package trace_test

import (
	"errors"
	"testing"

	"github.com/codeexec/codeexec/shared/trace"
)

func TestParse(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		in, wantID string
		ok         bool
	}{
		{valid, "4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"", "", false},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01", "", false},
		{valid + "-extra", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := trace.Parse(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("Parse(%q): got err %v, want ok %v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, trace.ErrInvalid) {
				t.Errorf("Parse(%q): got %v, want ErrInvalid", tc.in, err)
			}
			if got := trace.IDOf(tc.in); got != tc.wantID {
				t.Errorf("IDOf(%q): got %q, want %q", tc.in, got, tc.wantID)
			}
			if tc.ok && p.String() != tc.in {
				t.Errorf("String: got %q, want %q", p.String(), tc.in)
			}
		})
	}
}

func TestFromRequestKeepsTheTraceAndMakesASpan(t *testing.T) {
	const in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	p := trace.FromRequest(in)
	if p.ID() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id: got %s, want the request's", p.ID())
	}
	if p.String() == in {
		t.Error("span id: got the caller's, want a new one")
	}
	next := trace.Continue(p.String())
	if trace.IDOf(next) != p.ID() || next == p.String() {
		t.Errorf("Continue(%s) = %s: want the same trace id with a new span", p, next)
	}
	if trace.Continue("garbage") != "" {
		t.Error("Continue of an invalid traceparent: want empty")
	}
	a, b := trace.FromRequest(""), trace.FromRequest("not a traceparent")
	if a.ID() == b.ID() {
		t.Errorf("two new traces share the id %s", a.ID())
	}
	if _, err := trace.Parse(a.String()); err != nil {
		t.Errorf("a new trace does not parse: %v", err)
	}
}
