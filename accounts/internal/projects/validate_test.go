package projects

import (
	"errors"
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/messages"
)

func TestContentValidate(t *testing.T) {
	files := []messages.File{{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}}
	ok := Content{Name: "  hello  ", Language: "python", Files: files}
	if err := ok.Validate(); err != nil || ok.Name != "hello" {
		t.Fatalf("valid content: got %v name %q", err, ok.Name)
	}
	if c := (Content{Name: strings.Repeat("é", 100), Language: "python", Files: files}); c.Validate() != nil {
		t.Fatal("100 two-byte characters refused: the limit is in characters")
	}
	for name, c := range map[string]Content{
		"empty name":      {Name: " ", Language: "python", Files: files},
		"long name":       {Name: strings.Repeat("n", 101), Language: "python", Files: files},
		"control in name": {Name: "a\x00b", Language: "python", Files: files},
		"bad utf-8":       {Name: "a\xffb", Language: "python", Files: files},
		"no language":     {Name: "x", Files: files},
		"odd language":    {Name: "x", Language: "py.thon", Files: files},
		"no files":        {Name: "x", Language: "python"},
		"bad filename":    {Name: "x", Language: "python", Files: []messages.File{{Filename: "/etc/passwd", IsEntryPoint: true}}},
	} {
		var invalid *InvalidError
		if err := c.Validate(); !errors.As(err, &invalid) {
			t.Errorf("%s: got %v, want an InvalidError", name, err)
		}
	}
	big := Content{Name: "x", Language: "python", Files: []messages.File{{Filename: "a.py", Code: strings.Repeat("#", messages.MaxCodeBytes+1), IsEntryPoint: true}}}
	if err := big.Validate(); !errors.Is(err, messages.ErrCodeTooLarge) {
		t.Fatalf("too large: got %v, want ErrCodeTooLarge", err)
	}
}
