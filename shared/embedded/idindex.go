package embedded

// FerretDB v1 (SQLite) stores each collection as a table with one JSON column,
// _ferretdb_sjson, and builds its unique _id index on the expression
//
//	CREATE UNIQUE INDEX "<table>__id_" ON "<table>" (_ferretdb_sjson->"_id")
//
// but it looks documents up by _id (find, update, delete with a filter {_id: <string or
// ObjectID>}) with another expression:
//
//	SELECT _ferretdb_sjson FROM "<table>" WHERE _ferretdb_sjson->'$._id' = ?
//
// SQLite matches an index only on the same expression, so every such lookup scans the
// whole table and parses each row's JSON (EXPLAIN QUERY PLAN: "SCAN <table>"; 6.7 ms
// against 0.03 ms at 3.4k rows). The unique index still does its job for inserts.
//
// We own the SQLite files of the embedded FerretDB, so the idIndexer adds the index the
// lookups can use, on exactly their expression, to every collection table:
//
//	CREATE INDEX IF NOT EXISTS "<table>_codeexec_id" ON "<table>" (_ferretdb_sjson->'$._id')
//
// After it the plan says "SEARCH <table> USING INDEX <table>_codeexec_id (<expr>=?)".
// FerretDB does not know of this index (listIndexes does not show it) and needs not:
// SQLite keeps it up to date, and dropping the collection drops the table with it. Only
// equality on _id alone is pushed down to SQL; any other filter is still a scan, so the
// services look documents up by _id. A real MongoDB indexes _id itself and is untouched.
//
// Existing tables are indexed before FerretDB opens the files. A connection that loaded
// the schema before an index appeared plans with the old schema until its next statement
// that runs (SQLite then sees the schema changed and prepares again): EXPLAIN alone does
// not run, so it may still say SCAN on such a connection while lookups use the index.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

// idIndexSuffix names our index: "<table>" + idIndexSuffix.
const idIndexSuffix = "_codeexec_id"

// idIndexPeriod is how often the indexer looks for new collection tables. A table that
// has just appeared holds few rows, so the moments before its index cost little.
const idIndexPeriod = 500 * time.Millisecond

// idIndexer keeps the _id lookup index on every collection table of the FerretDB store
// under dir (one SQLite file per database).
type idIndexer struct {
	dir string
	log *slog.Logger

	mu  sync.Mutex
	dbs map[string]*indexedDB // by file name
}

// indexedDB is one database file we hold open.
type indexedDB struct {
	db    *sql.DB
	inode uint64 // a dropped and re-made database is another file: reopen it
}

func newIDIndexer(dir string, log *slog.Logger) *idIndexer {
	return &idIndexer{dir: dir, log: log, dbs: make(map[string]*indexedDB)}
}

// run indexes new tables every idIndexPeriod until ctx ends, then closes its files.
func (x *idIndexer) run(ctx context.Context) {
	defer x.close()
	t := time.NewTicker(idIndexPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := x.pass(ctx); err != nil && ctx.Err() == nil {
				x.log.Warn("index collections by _id", "err", err)
			}
		}
	}
}

// pass makes sure every collection table of every database has the _id lookup index.
func (x *idIndexer) pass(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	if err != nil {
		return fmt.Errorf("list databases: %w", err)
	}
	present := make(map[string]bool, len(files))
	var errs []error
	for _, path := range files {
		name := filepath.Base(path)
		present[name] = true
		if err := x.indexDatabase(ctx, name, path); err != nil {
			errs = append(errs, fmt.Errorf("database %s: %w", strings.TrimSuffix(name, ".sqlite"), err))
		}
	}
	for name, d := range x.dbs {
		if !present[name] {
			_ = d.db.Close()
			delete(x.dbs, name)
		}
	}
	return errors.Join(errs...)
}

func (x *idIndexer) indexDatabase(ctx context.Context, name, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // dropped meanwhile
	}
	if err != nil {
		return err
	}
	var inode uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		inode = sys.Ino
	}
	d := x.dbs[name]
	if d != nil && d.inode != inode {
		_ = d.db.Close()
		d = nil
	}
	if d == nil {
		// The same pragmas as FerretDB's own connections: wait for its writers, WAL.
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		db.SetMaxOpenConns(1)
		d = &indexedDB{db: db, inode: inode}
		x.dbs[name] = d
	}
	tables, err := unindexedTables(ctx, d.db)
	if err != nil {
		return err
	}
	var errs []error
	for _, table := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, table+idIndexSuffix, table)
		if _, err := d.db.ExecContext(ctx, q); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // dropped meanwhile
			}
			errs = append(errs, fmt.Errorf("index table %s: %w", table, err))
		}
	}
	return errors.Join(errs...)
}

// unindexedTables lists the tables of a database's collections (from FerretDB's own
// metadata table, absent until the first collection) that lack our index. A collection
// dropped and made again gets the same table name, without the index.
func unindexedTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM _ferretdb_collections c
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_master m
			WHERE m.type = 'index' AND m.name = c.table_name || '`+idIndexSuffix+`')`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil
		}
		return nil, fmt.Errorf("list collections: %w", err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("list collections: %w", err)
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	return tables, nil
}

func (x *idIndexer) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, d := range x.dbs {
		_ = d.db.Close()
		delete(x.dbs, name)
	}
}
