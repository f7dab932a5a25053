// Package pricing says what one execution costs.
package pricing

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Table is the price of one execution in micro-dollars: per language, else Default.
type Table struct {
	Default    int64
	ByLanguage map[string]int64
}

// For returns the price of one execution of language.
func (t Table) For(language string) int64 {
	if p, ok := t.ByLanguage[language]; ok {
		return p
	}
	return t.Default
}

// Validate refuses negative prices.
func (t Table) Validate() error {
	if t.Default < 0 {
		return fmt.Errorf("default price %d is negative", t.Default)
	}
	for _, l := range slices.Sorted(maps.Keys(t.ByLanguage)) {
		if t.ByLanguage[l] < 0 {
			return fmt.Errorf("price of %s %d is negative", l, t.ByLanguage[l])
		}
	}
	return nil
}

// Parse reads "python=10000,java=20000" into per-language prices.
func Parse(s string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lang, price, ok := strings.Cut(part, "=")
		lang = strings.TrimSpace(lang)
		if !ok || lang == "" {
			return nil, fmt.Errorf("price %q: want language=micros", part)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(price), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("price of %s: %w", lang, err)
		}
		out[lang] = n
	}
	return out, nil
}
