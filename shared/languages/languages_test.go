package languages

import (
	"errors"
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/messages"
)

func TestDefaultTableResolvesAliases(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for alias, want := range map[string]string{
		"py": "python", "JS": "javascript", "c++": "cpp", "golang": "go", "rb": "ruby", "java": "java",
	} {
		l, ok := c.Resolve(alias)
		if !ok || l.Name != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", alias, l, ok, want)
		}
	}
	if _, ok := c.Resolve("cobol"); ok {
		t.Error("Resolve(cobol) found a language")
	}
}

func TestEffectiveLimitsLowerButNeverExceedMaximum(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	py, _ := c.Resolve("python")
	def := c.Defaults(py)
	got := c.Effective(py, messages.Limits{})
	if got != def {
		t.Fatalf("no request: got %+v, want defaults %+v", got, def)
	}
	got = c.Effective(py, messages.Limits{RunTimeMs: 500, MemoryBytes: 1 << 40})
	if got.RunTimeMs != 500 {
		t.Errorf("run time: got %d, want 500", got.RunTimeMs)
	}
	if max := c.Maximums(py).MemoryBytes; got.MemoryBytes != max {
		t.Errorf("memory: got %d, want the maximum %d", got.MemoryBytes, max)
	}
}

func TestParseRefusesBadTables(t *testing.T) {
	for name, table := range map[string]string{
		"unknown field":   `{"languages":[{"name":"x","image":"i","sourceFile":"a.x","run":["x"],"colour":1}]}`,
		"duplicate alias": `{"languages":[{"name":"x","image":"i","sourceFile":"a.x","run":["x"]},{"name":"y","aliases":["x"],"image":"i","sourceFile":"a.y","run":["y"]}]}`,
		"no run":          `{"languages":[{"name":"x","image":"i","sourceFile":"a.x"}]}`,
		"empty":           `{"languages":[]}`,
	} {
		if _, err := Parse([]byte(table)); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}

func TestFindQuotesAnExcerptOfAnUnknownName(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if l, err := c.Find(" PY "); err != nil || l.Name != "python" {
		t.Fatalf("Find(py): got %v, %v; want python", l, err)
	}
	_, err = c.Find(strings.Repeat("x", 7<<20))
	if !errors.Is(err, ErrUnknown) {
		t.Fatalf("Find(7 MB name): got %v, want ErrUnknown", err)
	}
	if n := len(err.Error()); n > 256 {
		t.Errorf("Find(7 MB name): the error is %d bytes, want at most 256", n)
	}
}
