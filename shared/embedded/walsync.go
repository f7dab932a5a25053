package embedded

// Durability of the embedded store. FerretDB's SQLite files are in WAL mode, where
// synchronous=FULL (SQLite's default) syncs the WAL to disk at every commit: about 1 ms
// each on this kind of disk, with SQLite's one writer waiting for it. A job's money path
// makes 7 commits, so that alone capped the ledger near 100 jobs/s.
//
// By default the store runs with synchronous=NORMAL instead, and the walSyncer syncs
// every WAL that changed, every WALSyncInterval (100 ms, MongoDB's default journal commit
// interval). So it keeps the promise of a MongoDB with its default write concern: a crash
// of the process loses nothing that was acknowledged (the data is in the file, the
// kernel has it), a power loss or kernel crash loses at most the writes of the last
// 100 ms. SQLite stays consistent either way: it syncs the WAL before each checkpoint and
// the database after. MongoOptions.SyncEachCommit restores a sync at every commit.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// WALSyncInterval is how often the store's changed write-ahead logs are synced to disk.
const WALSyncInterval = 100 * time.Millisecond

// walSyncer syncs the write-ahead logs of the store under dir that changed since it
// last looked.
type walSyncer struct {
	dir  string
	log  *slog.Logger
	sync func(path string) error // syncFile; tests count the calls

	mu     sync.Mutex          // one pass at a time: the ticker's, the last one at shutdown
	synced map[string]walState // by path
}

// walState is what a WAL looked like when it was last synced.
type walState struct {
	size  int64
	mtime time.Time
}

func newWALSyncer(dir string, log *slog.Logger) *walSyncer {
	return &walSyncer{dir: dir, log: log, sync: syncFile, synced: make(map[string]walState)}
}

// run syncs every WALSyncInterval until ctx ends, and once more after.
func (w *walSyncer) run(ctx context.Context) {
	t := time.NewTicker(WALSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := w.pass(); err != nil {
				w.log.Warn("sync the store's write-ahead logs", "err", err)
			}
			return
		case <-t.C:
			if err := w.pass(); err != nil {
				w.log.Warn("sync the store's write-ahead logs", "err", err)
			}
		}
	}
}

// pass syncs each WAL that changed or was written lately.
func (w *walSyncer) pass() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(w.dir, "*.sqlite-wal"))
	if err != nil {
		return fmt.Errorf("list write-ahead logs: %w", err)
	}
	seen := make(map[string]bool, len(files))
	var errs []error
	for _, path := range files {
		seen[path] = true
		st, err := os.Stat(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		now := walState{size: st.Size(), mtime: st.ModTime()}
		// Unchanged and quiet for a while: nothing new to sync. A file written lately is
		// synced again even when it looks the same, since a write landing in the same tick
		// of the kernel's coarse clock, without growing the file, leaves no trace here.
		if w.synced[path] == now && time.Since(now.mtime) > time.Second {
			continue
		}
		if err := w.sync(path); err != nil {
			errs = append(errs, err)
			continue
		}
		w.synced[path] = now
	}
	for path := range w.synced {
		if !seen[path] {
			delete(w.synced, path)
		}
	}
	return errors.Join(errs...)
}

// syncFile flushes path's data to disk. fsync works on the file, whichever descriptor
// wrote it, so this makes SQLite's own writes durable.
func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the last connection closed and SQLite removed it after a checkpoint
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	return nil
}
