package embedded

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWALSyncerSyncsWhatChanged(t *testing.T) {
	dir := t.TempDir()
	var synced []string
	w := newWALSyncer(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.sync = func(path string) error {
		synced = append(synced, filepath.Base(path))
		return syncFile(path)
	}
	pass := func() []string {
		t.Helper()
		synced = nil
		if err := w.pass(); err != nil {
			t.Fatalf("pass: %v", err)
		}
		return synced
	}
	write := func(name, data string, mtime time.Time) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	write("a.sqlite-wal", "frames", old)
	write("b.sqlite-wal", "frames", old)
	write("a.sqlite", "not a log", old)

	if got := pass(); len(got) != 2 {
		t.Fatalf("first pass synced %v, want both logs", got)
	}
	if got := pass(); len(got) != 0 {
		t.Fatalf("pass over unchanged quiet logs synced %v, want none", got)
	}
	write("a.sqlite-wal", "frames+1", old)
	if got := pass(); len(got) != 1 || got[0] != "a.sqlite-wal" {
		t.Fatalf("after a.sqlite-wal grew: synced %v, want it alone", got)
	}
	// Same size, same time stamp, but written lately: it is synced each pass for a while.
	write("b.sqlite-wal", "FRAMES", time.Now())
	for range 2 {
		if got := pass(); len(got) != 1 || got[0] != "b.sqlite-wal" {
			t.Fatalf("a log written lately: synced %v, want it", got)
		}
	}
	if err := os.Remove(filepath.Join(dir, "a.sqlite-wal")); err != nil {
		t.Fatal(err)
	}
	pass()
	if _, ok := w.synced[filepath.Join(dir, "a.sqlite-wal")]; ok {
		t.Fatal("a removed log is still tracked")
	}
}
