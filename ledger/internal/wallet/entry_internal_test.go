package wallet

import (
	"errors"
	"math"
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
