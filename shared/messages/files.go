package messages

import (
	"errors"
	"fmt"
	"strings"

	"github.com/codeexec/codeexec/shared/excerpt"
)

// Input limits of the HTTP API and of every job on NATS.
const (
	MaxCodeBytes  = 256 << 10 // all files together
	MaxStdinBytes = 1 << 20
	MaxFiles      = 64
	MaxArgs       = 64
	MaxArgBytes   = 4 << 10
	MaxNameBytes  = 255
)

// ValidateArgs checks a job's program arguments: at most MaxArgs, each shorter than
// MaxArgBytes and without a NUL byte (no program argument can hold one).
func ValidateArgs(args []string) error {
	if len(args) > MaxArgs {
		return fmt.Errorf("%d args: at most %d", len(args), MaxArgs)
	}
	for i, a := range args {
		if len(a) >= MaxArgBytes || strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("arg %d: each arg must be under %d bytes with no NUL", i, MaxArgBytes)
		}
	}
	return nil
}

// ErrCodeTooLarge is returned when the code of a job exceeds MaxCodeBytes.
var ErrCodeTooLarge = errors.New("code too large")

// ValidateFiles checks the file list of a job: count, total size, names and exactly one
// entry point. A name is a relative path of [A-Za-z0-9._-] segments with no "." or "..",
// no leading "/" and no empty segment, so each file has one spelling; the names must be
// distinct, and none may be the directory of another ("a" and "a/b.py").
func ValidateFiles(files []File) error {
	if len(files) == 0 {
		return errors.New("no files")
	}
	if len(files) > MaxFiles {
		return fmt.Errorf("%d files: at most %d", len(files), MaxFiles)
	}
	total, entries := 0, 0
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := ValidateFilename(f.Filename); err != nil {
			return err
		}
		if seen[f.Filename] {
			return fmt.Errorf("filename %s given twice", excerpt.Quote(f.Filename))
		}
		seen[f.Filename] = true
		total += len(f.Code)
		if f.IsEntryPoint {
			entries++
		}
	}
	// A name that is also another file's directory cannot be written (a and a/b.py).
	for _, f := range files {
		for dir := f.Filename; ; {
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			dir = dir[:i]
			if seen[dir] {
				return fmt.Errorf("filename %s is also the directory of %s", excerpt.Quote(dir), excerpt.Quote(f.Filename))
			}
		}
	}
	if total > MaxCodeBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrCodeTooLarge, total, MaxCodeBytes)
	}
	if entries != 1 {
		return fmt.Errorf("%d entry points: want exactly one", entries)
	}
	return nil
}

// ValidateFilename checks one file name against the design's rules.
func ValidateFilename(name string) error {
	if name == "" {
		return errors.New("empty filename")
	}
	if len(name) > MaxNameBytes {
		return fmt.Errorf("filename longer than %d bytes", MaxNameBytes)
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("filename %s: must be relative", excerpt.Quote(name))
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("filename %s: empty path segment", excerpt.Quote(name))
		case ".", "..":
			return fmt.Errorf("filename %s: %q segment not allowed", excerpt.Quote(name), seg)
		}
		for _, r := range seg {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
			if !ok {
				return fmt.Errorf("filename %s: character %q not allowed", excerpt.Quote(name), r)
			}
		}
	}
	return nil
}
