package sandbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// feed writes input to an exitLineWriter in chunks of every size from 1 up, so that the
// token and the status are split at every place.
func feed(t *testing.T, token, input string, capBytes int64) (out string, code int, got bool, err error) {
	t.Helper()
	best := ""
	for size := 1; size <= len(input); size++ {
		c := newCapture(capBytes, 1<<30)
		exited := make(chan exitReport, 1)
		w := &exitLineWriter{w: c.Stdout(), token: []byte(token), exited: exited}
		var werr error
		for i := 0; i < len(input) && werr == nil; i += size {
			_, werr = w.Write([]byte(input[i:min(i+size, len(input))]))
		}
		stdout, _ := c.Strings()
		select {
		case r := <-exited:
			code, got = r.code, true
		default:
			got = false
		}
		if size == 1 {
			best, err = stdout, werr
			continue
		}
		if stdout != best || !errors.Is(werr, err) {
			t.Fatalf("chunk size %d: output %q err %v; with size 1: %q err %v", size, stdout, werr, best, err)
		}
	}
	return best, code, got, err
}

func TestExitLineWriter(t *testing.T) {
	const tok = "codeexec-exit-0123:"
	cases := []struct {
		name, input, out string
		code             int
		exited           bool
	}{
		{"output then exit line", "hello\n" + tok + "0 0 0 5 9 100\n", "hello\n", 0, true},
		{"no trailing newline", "abc" + tok + "3 -1 -1 -1 -1 -1\n", "abc", 3, true},
		{"a token prefix in the output", "x codeexec-exit-01" + tok + "137 1 2 3 4 5\n", "x codeexec-exit-01", 137, true},
		{"what follows the exit line is dropped", "a" + tok + "1 0 0 0 0 0\nlate output\n", "a", 1, true},
		{"no exit line yet", "partial codeexec-ex", "partial ", 0, false},
		{"empty output", tok + "42 0 0 0 0 0\n", "", 42, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code, exited, err := feed(t, tok, c.input, 1<<20)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if out != c.out || exited != c.exited || code != c.code {
				t.Errorf("got %q exited=%v code=%d, want %q exited=%v code=%d", out, exited, code, c.out, c.exited, c.code)
			}
		})
	}
}

func TestExitLineWriterRejectsAMalformedLine(t *testing.T) {
	const tok = "codeexec-exit-0123:"
	for _, in := range []string{tok + "x\n", tok + "12345\n", tok + "0\n", tok + "-7 0 0 0 0 0\n",
		tok + "256 0 0 0 0 0\n", tok + "0 0 0 0 0 0 0\n", tok + "0 " + strings.Repeat("9", 200) + "\n"} {
		if _, _, _, err := feed(t, tok, in, 1<<20); !errors.Is(err, errBadExitLine) {
			t.Errorf("%q: got %v, want errBadExitLine", in, err)
		}
	}
}

func TestExitLineWriterStopsAtTheOutputCap(t *testing.T) {
	const tok = "codeexec-exit-0123:"
	out, _, exited, err := feed(t, tok, "0123456789"+tok+"0 0 0 0 0 0\n", 4)
	if !errors.Is(err, errOutputLimit) || out != "0123" || exited {
		t.Errorf("got %q exited=%v err %v, want \"0123\", no exit, errOutputLimit", out, exited, err)
	}
}

func TestLaunchScriptQuotesEveryWord(t *testing.T) {
	s, err := newLaunchScript(execSpec{cmd: []string{"python3", "main.py", "it's", "$HOME", "a b", "`x`", "\n"}}, 2000123, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := `exec setpriv --reuid=2000123 --regid=2000123 --clear-groups -- 'python3' 'main.py' 'it'\''s' '$HOME' 'a b' '` + "`x`' '\n' )\n"; !strings.Contains(s.text, want) {
		t.Errorf("script:\n%s\nwant it to contain:\n%s", s.text, want)
	}
	other, _ := newLaunchScript(execSpec{cmd: []string{"true"}}, 2000123, false)
	if bytes.Equal(s.token, other.token) {
		t.Error("two scripts share an exit token")
	}
}

func TestParseUIDRange(t *testing.T) {
	for in, want := range map[string]UIDRange{"2000000-2999999": {2000000, 1000000}, "5000-5000": {5000, 1}} {
		if got, err := ParseUIDRange(in); err != nil || got != want {
			t.Errorf("%q: got %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10", "5000-4999", "0-100", "999-2000", "1000-4294967295", "a-b"} {
		if _, err := ParseUIDRange(in); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}
