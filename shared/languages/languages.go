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
	// Limits and MaxLimits override the table's defaults field by field.
	Limits    messages.Limits `json:"limits,omitempty"`
	MaxLimits messages.Limits `json:"maxLimits,omitempty"`
}

// Catalog is the whole table, indexed by name and alias.
type Catalog struct {
	DefaultLimits messages.Limits `json:"defaultLimits"`
	MaxLimits     messages.Limits `json:"maxLimits"`
	Languages     []Language      `json:"languages"`

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

// Effective returns the limits a job of l runs under: each requested field lowers the
// default, zero keeps it; nothing exceeds the maximum.
func (c *Catalog) Effective(l *Language, req messages.Limits) messages.Limits {
	def, max := c.Defaults(l), c.Maximums(l)
	pick := func(d, m, r int64) int64 {
		v := d
		if r > 0 {
			v = r
		}
		if m > 0 && v > m {
			v = m
		}
		return v
	}
	return messages.Limits{
		RunTimeMs:     pick(def.RunTimeMs, max.RunTimeMs, req.RunTimeMs),
		CompileTimeMs: pick(def.CompileTimeMs, max.CompileTimeMs, req.CompileTimeMs),
		MemoryBytes:   pick(def.MemoryBytes, max.MemoryBytes, req.MemoryBytes),
		CPUMillis:     pick(def.CPUMillis, max.CPUMillis, req.CPUMillis),
		Pids:          pick(def.Pids, max.Pids, req.Pids),
		OutputBytes:   pick(def.OutputBytes, max.OutputBytes, req.OutputBytes),
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
