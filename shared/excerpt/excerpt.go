// Package excerpt shortens client input before an error message quotes it, so that a
// 7 MB field never comes back in a 7 MB error.
package excerpt

import (
	"strconv"
	"unicode/utf8"
)

// MaxBytes is how much of an input a message quotes.
const MaxBytes = 64

// Ellipsis marks a cut.
const Ellipsis = "…"

// Of returns s cut to at most MaxBytes bytes on a UTF-8 boundary, with Ellipsis after a cut.
func Of(s string) string { return Cut(s, MaxBytes) }

// Cut returns s cut to at most max bytes (Ellipsis not counted) without splitting a UTF-8
// sequence, with Ellipsis after a cut.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max < 0 {
		max = 0
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + Ellipsis
}

// Quote is strconv.Quote of Of(s): the excerpt as a Go string literal, control bytes
// escaped, ready for a message.
func Quote(s string) string { return strconv.Quote(Of(s)) }
