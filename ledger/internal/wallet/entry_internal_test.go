package wallet

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestAddMicros(t *testing.T) {
	tests := []struct {
		a, b    int64
		want    int64
		wantErr bool
	}{
		{a: 1, b: 2, want: 3},
		{a: -1, b: -2, want: -3},
		{a: math.MaxInt64, b: 0, want: math.MaxInt64},
		{a: math.MaxInt64 - 1, b: 1, want: math.MaxInt64},
		{a: math.MaxInt64, b: 1, wantErr: true},
		{a: 1, b: math.MaxInt64, wantErr: true},
		{a: math.MinInt64, b: -1, wantErr: true},
		{a: math.MinInt64 + 1, b: -1, want: math.MinInt64},
		{a: math.MaxInt64, b: math.MinInt64, want: -1},
	}
	for _, tt := range tests {
		got, err := addMicros(tt.a, tt.b)
		if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrInvalid)) || got != tt.want {
			t.Errorf("addMicros(%d, %d): got %d, %v; want %d, error %v", tt.a, tt.b, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"job-1", `"job-1"`},
		{"", `""`},
		{strings.Repeat("é", 33), `"` + strings.Repeat("é", 32) + `…"`},
		{"a" + strings.Repeat("é", 33), `"a` + strings.Repeat("é", 31) + `…"`},
		{"line\n" + strings.Repeat("x", 100), `"line\n` + strings.Repeat("x", 59) + `…"`},
	}
	for _, tt := range tests {
		if got := quote(tt.in); got != tt.want {
			t.Errorf("quote(%q): got %s, want %s", tt.in, got, tt.want)
		}
	}
}
