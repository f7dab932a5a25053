package messages

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateFiles(t *testing.T) {
	main := File{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}
	tests := []struct {
		name    string
		files   []File
		wantErr string
	}{
		{"one entry point", []File{main}, ""},
		{"nested path", []File{main, {Filename: "pkg/util.py"}}, ""},
		{"no files", nil, "no files"},
		{"no entry point", []File{{Filename: "a.py"}}, "0 entry points"},
		{"two entry points", []File{main, {Filename: "b.py", IsEntryPoint: true}}, "2 entry points"},
		{"dot dot", []File{main, {Filename: "../x.py"}}, `".." segment`},
		{"absolute", []File{main, {Filename: "/etc/passwd"}}, "must be relative"},
		{"empty segment", []File{main, {Filename: "a//b.py"}}, "empty path segment"},
		{"bad char", []File{main, {Filename: "a b.py"}}, "not allowed"},
		{"duplicate", []File{main, {Filename: "main.py"}}, "given twice"},
		{"empty name", []File{main, {Filename: ""}}, "empty filename"},
		{"dot segment", []File{main, {Filename: "./main.py"}}, `"." segment`},
		{"file and directory", []File{main, {Filename: "a"}, {Filename: "a/b.py"}}, `"a" is also the directory of "a/b.py"`},
		{"directory then file", []File{main, {Filename: "a/b/c.py"}, {Filename: "a/b"}}, `"a/b" is also the directory of "a/b/c.py"`},
		{"entry point as directory", []File{{Filename: "main.py/x.py"}, main}, `"main.py" is also the directory`},
		{"same directory twice is fine", []File{main, {Filename: "a/b.py"}, {Filename: "a/c.py"}}, ""},
		{"prefix that is no directory is fine", []File{main, {Filename: "ab"}, {Filename: "a/b.py"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFiles(tt.files)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateFilesTooLarge(t *testing.T) {
	big := File{Filename: "main.py", Code: strings.Repeat("x", MaxCodeBytes+1), IsEntryPoint: true}
	if err := ValidateFiles([]File{big}); !errors.Is(err, ErrCodeTooLarge) {
		t.Fatalf("got %v, want ErrCodeTooLarge", err)
	}
	tooMany := make([]File, MaxFiles+1)
	for i := range tooMany {
		tooMany[i] = File{Filename: strings.Repeat("a", i+1) + ".py", IsEntryPoint: i == 0}
	}
	if err := ValidateFiles(tooMany); err == nil {
		t.Fatalf("got no error for %d files", len(tooMany))
	}
}

func TestValidateArgs(t *testing.T) {
	long := strings.Repeat("a", MaxArgBytes)
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-v", "a b", "it's", "$HOME", "\n"}, true},
		{[]string{long[1:]}, true},
		{[]string{long}, false},
		{[]string{"a\x00b"}, false},
		{make([]string, MaxArgs), true},
		{make([]string, MaxArgs+1), false},
	} {
		if err := ValidateArgs(c.args); (err == nil) != c.ok {
			t.Errorf("ValidateArgs(%d args, first %.10q): got %v, want ok=%v", len(c.args), first(c.args), err, c.ok)
		}
	}
}

func first(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}
