package excerpt

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	cases := []struct {
		name, in string
		max      int
		want     string
	}{
		{"short stays", "python", 64, "python"},
		{"exact stays", strings.Repeat("a", 64), 64, strings.Repeat("a", 64)},
		{"long is cut", strings.Repeat("a", 65), 64, strings.Repeat("a", 64) + Ellipsis},
		{"never splits a rune", "ab" + "é", 3, "ab" + Ellipsis},
		{"three-byte rune kept whole", "€€", 4, "€" + Ellipsis},
		{"zero", "abc", 0, Ellipsis},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Cut(tc.in, tc.max); got != tc.want {
				t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func TestOfBoundsAHugeInput(t *testing.T) {
	huge := strings.Repeat("语", 7<<20/3)
	got := Of(huge)
	if len(got) > MaxBytes+len(Ellipsis) || !utf8.ValidString(got) {
		t.Errorf("Of(7 MB) = %d bytes, valid UTF-8 %v; want at most %d valid bytes", len(got), utf8.ValidString(got), MaxBytes+len(Ellipsis))
	}
	if q := Quote("\x01" + huge); len(q) > 4*MaxBytes {
		t.Errorf("Quote of a huge input is %d bytes, want at most %d", len(q), 4*MaxBytes)
	}
}
