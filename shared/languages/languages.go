// Package languages is CodeExec's language table: data, not code. Runners read it to know
// how to compile and run each language; the edge reads it to resolve aliases and show
// versions and limits. The default table is languages.json beside this file;
// CODEEXEC_LANGUAGES_FILE replaces it.
package languages

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

//go:embed languages.json
var defaultTable []byte

// Language is one entry of the table.
type Language struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
	Version string   `json:"version"`
	Image   string   `json:"image"`
	// SourceFile is the name given to the code of a single-file (v1) request.
	SourceFile string `json:"sourceFile"`
	// Compile runs in the work dir before Run, when present. Its placeholders are those of Run.
	Compile []string `json:"compile,omitempty"`
	// Run is the program's argv; "{entry}" is the entry point's file name and "{main}" the
	// entry point's name without extension (a Java main class). Job args are appended.
	Run []string `json:"run"`
	// Limits, MaxLimits and MinLimits override the table's defaults field by field.
	Limits    messages.Limits `json:"limits,omitempty"`
	MaxLimits messages.Limits `json:"maxLimits,omitempty"`
	MinLimits messages.Limits `json:"minLimits,omitempty"`
}

// Catalog is the whole table, indexed by name and alias.
type Catalog struct {
	DefaultLimits messages.Limits `json:"defaultLimits"`
	MaxLimits     messages.Limits `json:"maxLimits"`
	// MinLimits raises the working minimums (Floor) for every language; it never lowers them.
	MinLimits messages.Limits `json:"minLimits,omitempty"`
	Languages []Language      `json:"languages"`

	byName map[string]*Language
}

// Default returns the built-in table.
func Default() (*Catalog, error) { return Parse(defaultTable) }

// Load reads the table from path, or the built-in one when path is empty.
func Load(path string) (*Catalog, error) {
	if path == "" {
		return Default()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read language table: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("language table %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and checks a table.
func Parse(data []byte) (*Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode language table: %w", err)
	}
	c.byName = make(map[string]*Language)
	var errs []error
	for i := range c.Languages {
		l := &c.Languages[i]
		if !subjects.Token(l.Name) {
			errs = append(errs, fmt.Errorf("language name %q: letters, digits, - and _ only", l.Name))
		}
		if l.Image == "" || l.SourceFile == "" || len(l.Run) == 0 {
			errs = append(errs, fmt.Errorf("language %s: image, sourceFile and run are required", l.Name))
		}
		if err := messages.ValidateFilename(l.SourceFile); err != nil {
			errs = append(errs, fmt.Errorf("language %s: %w", l.Name, err))
		}
		if err := c.checkLimits(l); err != nil {
			errs = append(errs, fmt.Errorf("language %s: %w", l.Name, err))
		}
		for _, key := range append([]string{l.Name}, l.Aliases...) {
			key = strings.ToLower(key)
			if _, dup := c.byName[key]; dup {
				errs = append(errs, fmt.Errorf("language name or alias %q given twice", key))
			}
			c.byName[key] = l
		}
	}
	if len(c.Languages) == 0 {
		errs = append(errs, errors.New("no languages"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

// Resolve finds a language by name or alias, ignoring case.
func (c *Catalog) Resolve(nameOrAlias string) (*Language, bool) {
	l, ok := c.byName[strings.ToLower(strings.TrimSpace(nameOrAlias))]
	return l, ok
}

// ErrUnknown is returned by Find for a name that is neither a language nor an alias.
var ErrUnknown = errors.New("unknown language")

// Find is Resolve with an error for callers that answer a client: it quotes at most an
// excerpt of the name (see package excerpt) and wraps ErrUnknown.
func (c *Catalog) Find(nameOrAlias string) (*Language, error) {
	l, ok := c.Resolve(nameOrAlias)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not supported", ErrUnknown, excerpt.Quote(nameOrAlias))
	}
	return l, nil
}

// Names returns the language names, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, 0, len(c.Languages))
	for _, l := range c.Languages {
		names = append(names, l.Name)
	}
	sort.Strings(names)
	return names
}

// Defaults returns the default limits of l.
func (c *Catalog) Defaults(l *Language) messages.Limits { return overlay(c.DefaultLimits, l.Limits) }

// Maximums returns the operator's maximum limits of l.
func (c *Catalog) Maximums(l *Language) messages.Limits { return overlay(c.MaxLimits, l.MaxLimits) }

// The working minimums of a job's resources, below which no program starts: Docker
// refuses a memory limit of a few bytes, the sandbox's launcher and the program share the
// pids limit, and a run must have time to start. A table may raise them (minLimits, at
// the top or per language), never lower them.
const (
	MinRunTimeMs     = 100
	MinCompileTimeMs = 1000
	MinMemoryBytes   = 32 << 20
	MinCPUMillis     = 100 // a tenth of a CPU
	MinPids          = 16
	MinOutputBytes   = 1024
)

// Floor returns the built-in working minimums as limits.
func Floor() messages.Limits {
	return messages.Limits{RunTimeMs: MinRunTimeMs, CompileTimeMs: MinCompileTimeMs, MemoryBytes: MinMemoryBytes,
		CPUMillis: MinCPUMillis, Pids: MinPids, OutputBytes: MinOutputBytes}
}

// Minimums returns the least limits a job of l runs under: the table's and the
// language's minLimits, never below Floor.
func (c *Catalog) Minimums(l *Language) messages.Limits {
	min := overlay(c.MinLimits, l.MinLimits)
	floor := Floor()
	for i, f := range fields(&min) {
		if fl := *fields(&floor)[i].v; *f.v < fl {
			*f.v = fl
		}
	}
	return min
}

// ErrBelowMinimum is returned by CheckRequest for a requested limit under its minimum.
var ErrBelowMinimum = errors.New("limit below the working minimum")

// CheckRequest refuses requested limits that are set (above zero) but below l's minimums,
// naming each field and its minimum. Negative fields are refused too. Callers that answer
// a client (the edge) call it before Effective, which would silently raise them.
func (c *Catalog) CheckRequest(l *Language, req messages.Limits) error {
	min := c.Minimums(l)
	var problems []string
	for i, f := range fields(&req) {
		m := *fields(&min)[i].v
		switch {
		case *f.v < 0:
			problems = append(problems, fmt.Sprintf("limits.%s is %d: it must not be negative", f.name, *f.v))
		case *f.v > 0 && *f.v < m:
			problems = append(problems, fmt.Sprintf("limits.%s is %d: the minimum for %s is %d", f.name, *f.v, l.Name, m))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrBelowMinimum, strings.Join(problems, "; "))
	}
	return nil
}

// Effective returns the limits a job of l runs under: each requested field lowers the
// default, zero keeps it; nothing exceeds the maximum, and nothing is below the minimum
// (Minimums): a too-low field, which the edge refuses but an internal publisher may send,
// is raised to the minimum rather than passed to Docker.
func (c *Catalog) Effective(l *Language, req messages.Limits) messages.Limits {
	def, max, min := c.Defaults(l), c.Maximums(l), c.Minimums(l)
	pick := func(d, m, lo, r int64) int64 {
		v := d
		if r > 0 {
			v = r
		}
		if m > 0 && v > m {
			v = m
		}
		if v < lo {
			v = lo
		}
		return v
	}
	return messages.Limits{
		RunTimeMs:     pick(def.RunTimeMs, max.RunTimeMs, min.RunTimeMs, req.RunTimeMs),
		CompileTimeMs: pick(def.CompileTimeMs, max.CompileTimeMs, min.CompileTimeMs, req.CompileTimeMs),
		MemoryBytes:   pick(def.MemoryBytes, max.MemoryBytes, min.MemoryBytes, req.MemoryBytes),
		CPUMillis:     pick(def.CPUMillis, max.CPUMillis, min.CPUMillis, req.CPUMillis),
		Pids:          pick(def.Pids, max.Pids, min.Pids, req.Pids),
		OutputBytes:   pick(def.OutputBytes, max.OutputBytes, min.OutputBytes, req.OutputBytes),
	}
}

// checkLimits refuses a table whose defaults or maximums for l are under its minimums.
func (c *Catalog) checkLimits(l *Language) error {
	def, max, min := c.Defaults(l), c.Maximums(l), c.Minimums(l)
	var errs []error
	for i, f := range fields(&min) {
		if d := *fields(&def)[i].v; d > 0 && d < *f.v {
			errs = append(errs, fmt.Errorf("default %s %d is below the minimum %d", f.name, d, *f.v))
		}
		if m := *fields(&max)[i].v; m > 0 && m < *f.v {
			errs = append(errs, fmt.Errorf("maximum %s %d is below the minimum %d", f.name, m, *f.v))
		}
	}
	return errors.Join(errs...)
}

type field struct {
	name string // as in JSON
	v    *int64
}

// fields lists the fields of l in one fixed order.
func fields(l *messages.Limits) []field {
	return []field{
		{"runTimeMs", &l.RunTimeMs}, {"compileTimeMs", &l.CompileTimeMs}, {"memoryBytes", &l.MemoryBytes},
		{"cpuMillis", &l.CPUMillis}, {"pids", &l.Pids}, {"outputBytes", &l.OutputBytes},
	}
}

func overlay(base, over messages.Limits) messages.Limits {
	set := func(dst *int64, v int64) {
		if v > 0 {
			*dst = v
		}
	}
	set(&base.RunTimeMs, over.RunTimeMs)
	set(&base.CompileTimeMs, over.CompileTimeMs)
	set(&base.MemoryBytes, over.MemoryBytes)
	set(&base.CPUMillis, over.CPUMillis)
	set(&base.Pids, over.Pids)
	set(&base.OutputBytes, over.OutputBytes)
	return base
}
