package secret

import (
	"strings"
	"testing"
)

func TestNewIsPrefixedRandomBase32(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := New("ce_", 20)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, "ce_") || len(s) != len("ce_")+32 {
			t.Fatalf("got %q, want ce_ and 32 base32 characters (160 bits)", s)
		}
		if strings.Trim(s[3:], "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Fatalf("got %q: not lowercase base32", s)
		}
		if seen[s] {
			t.Fatalf("got %q twice", s)
		}
		seen[s] = true
	}
}

func TestHashIsSHA256Hex(t *testing.T) {
	// SHA-256 of "abc".
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := Hash("abc"); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
