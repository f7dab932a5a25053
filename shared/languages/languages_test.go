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

func TestMinimums(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lang string
		want messages.Limits
	}{
		{"python", Floor()},
		{"java", func() messages.Limits { l := Floor(); l.MemoryBytes, l.Pids = 64<<20, 32; return l }()},
		{"go", func() messages.Limits { l := Floor(); l.MemoryBytes = 64 << 20; return l }()},
	} {
		l, _ := c.Resolve(tc.lang)
		if got := c.Minimums(l); got != tc.want {
			t.Errorf("Minimums(%s) = %+v, want %+v", tc.lang, got, tc.want)
		}
	}
}

func TestCheckRequestRefusesLimitsBelowTheMinimum(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	py, _ := c.Resolve("python")
	java, _ := c.Resolve("java")
	cases := []struct {
		name    string
		lang    *Language
		req     messages.Limits
		wantErr string // "" for none
	}{
		{"none set", py, messages.Limits{}, ""},
		{"at the minimums", py, Floor(), ""},
		{"memory 1", py, messages.Limits{MemoryBytes: 1}, "limits.memoryBytes is 1: the minimum for python is 33554432"},
		{"cpu 1", py, messages.Limits{CPUMillis: 1}, "limits.cpuMillis is 1: the minimum for python is 100"},
		{"pids 1", py, messages.Limits{Pids: 1}, "limits.pids is 1: the minimum for python is 16"},
		{"run time 1", py, messages.Limits{RunTimeMs: 1}, "limits.runTimeMs is 1"},
		{"compile time 1", py, messages.Limits{CompileTimeMs: 1}, "limits.compileTimeMs is 1"},
		{"output 1", py, messages.Limits{OutputBytes: 1}, "limits.outputBytes is 1"},
		{"negative", py, messages.Limits{Pids: -1}, "must not be negative"},
		{"java's own floor", java, messages.Limits{MemoryBytes: 32 << 20}, "the minimum for java is 67108864"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.CheckRequest(tc.lang, tc.req)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if !errors.Is(err, ErrBelowMinimum) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want ErrBelowMinimum containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestEffectiveRaisesTooLowFieldsToTheMinimum(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	py, _ := c.Resolve("python")
	got := c.Effective(py, messages.Limits{RunTimeMs: 1, CompileTimeMs: 1, MemoryBytes: 1, CPUMillis: 1, Pids: 1, OutputBytes: 1})
	if want := c.Minimums(py); got != want {
		t.Fatalf("got %+v, want the minimums %+v", got, want)
	}
}

func TestParseRefusesLimitsUnderTheMinimum(t *testing.T) {
	for name, table := range map[string]string{
		"default under the floor":            `{"defaultLimits":{"pids":2},"languages":[{"name":"x","image":"i","sourceFile":"a.x","run":["x"]}]}`,
		"maximum under the floor":            `{"maxLimits":{"memoryBytes":1024},"languages":[{"name":"x","image":"i","sourceFile":"a.x","run":["x"]}]}`,
		"maximum under the language's floor": `{"maxLimits":{"memoryBytes":50000000},"languages":[{"name":"x","image":"i","sourceFile":"a.x","run":["x"],"minLimits":{"memoryBytes":60000000}}]}`,
	} {
		if _, err := Parse([]byte(table)); err == nil || !strings.Contains(err.Error(), "below the minimum") {
			t.Errorf("%s: got %v, want a below-the-minimum error", name, err)
		}
	}
}
