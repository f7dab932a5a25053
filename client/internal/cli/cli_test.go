package cli

import (
	"flag"
	"io"
	"slices"
	"testing"

	"github.com/codeexec/codeexec/client"
)

func TestExitCode(t *testing.T) {
	code := func(n int) *int { return &n }
	for _, tc := range []struct {
		r    client.Result
		want int
	}{
		{client.Result{RunTimeStatus: client.StatusSucceeded, ExitCode: code(0)}, 0},
		{client.Result{RunTimeStatus: client.StatusRuntimeError, ExitCode: code(3)}, 3},
		{client.Result{RunTimeStatus: client.StatusRuntimeError, Signal: "SIGSEGV"}, 139},
		{client.Result{RunTimeStatus: client.StatusRuntimeError, Signal: "SIGWHAT"}, 1},
		{client.Result{RunTimeStatus: client.StatusTimeLimit}, 124},
		{client.Result{RunTimeStatus: client.StatusMemoryLimit}, 137},
		{client.Result{RunTimeStatus: client.StatusCompileError}, 1},
		{client.Result{RunTimeStatus: client.StatusOutputLimit, ExitCode: code(0)}, 1},
		{client.Result{RunTimeStatus: client.StatusInternalError}, 70},
	} {
		if got := exitCode(tc.r); got != tc.want {
			t.Errorf("exitCode(%s, exit %v, %q): got %d, want %d", tc.r.RunTimeStatus, tc.r.ExitCode, tc.r.Signal, got, tc.want)
		}
	}
}

func TestFlagsMixWithOperands(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		files, rest    []string
		lang, stdinArg string
	}{
		{[]string{"-l", "py", "a.py", "b.py", "--", "-x", "--", "y"}, []string{"a.py", "b.py"}, []string{"-x", "--", "y"}, "py", ""},
		{[]string{"a.py", "--stdin", "-", "b.py"}, []string{"a.py", "b.py"}, nil, "", "-"},
		{[]string{"--", "-l"}, nil, []string{"-l"}, "", ""},
	} {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		lang := fs.String("l", "", "")
		stdin := fs.String("stdin", "", "")
		files, rest, ok := command{Env: Env{Stderr: io.Discard}}.flags(fs, tc.args)
		if !ok || !slices.Equal(files, tc.files) || !slices.Equal(rest, tc.rest) || *lang != tc.lang || *stdin != tc.stdinArg {
			t.Errorf("flags(%q): got files %q, rest %q, -l %q, --stdin %q; want %q, %q, %q, %q",
				tc.args, files, rest, *lang, *stdin, tc.files, tc.rest, tc.lang, tc.stdinArg)
		}
	}
}

func TestLanguageOf(t *testing.T) {
	for file, want := range map[string]string{"main.py": "python", "a/b.JS": "javascript", "Main.java": "java",
		"x.go": "go", "p.cc": "cpp", "r.rb": "ruby", "notes.txt": ""} {
		if got := languageOf(file); got != want {
			t.Errorf("languageOf(%s): got %q, want %q", file, got, want)
		}
	}
}
