package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mongo is a running embedded FerretDB with its SQLite files under a data directory.
type Mongo struct {
	URI     string
	cancel  context.CancelFunc
	done    chan struct{}
	indexer *idIndexer
}

// MongoOptions tune an embedded FerretDB.
type MongoOptions struct {
	// Log receives FerretDB's own logs and the store's warnings; nil keeps them quiet.
	Log *slog.Logger
	// SyncEachCommit syncs SQLite's write-ahead log at every commit (synchronous=FULL),
	// so that even a power loss loses no acknowledged write, at about 1 ms per commit.
	// By default the logs are synced every WALSyncInterval instead (see walsync.go).
	SyncEachCommit bool
	// Addr is the TCP address to listen on; empty: a free loopback port.
	Addr string
}

// StartMongo starts FerretDB over dir with the default options and log.
func StartMongo(ctx context.Context, dir string, log *slog.Logger) (*Mongo, error) {
	return StartMongoWith(ctx, dir, MongoOptions{Log: log})
}

// StartMongoWith starts FerretDB with the SQLite handler storing under dir/ferretdb,
// listening on o.Addr (default a free loopback port). Every collection table gets an index FerretDB's _id
// lookups can use (see idindex.go): those of existing collections before it returns, new
// ones within idIndexPeriod of their appearing.
func StartMongoWith(ctx context.Context, dir string, o MongoOptions) (*Mongo, error) {
	log := o.Log
	store := filepath.Join(dir, "ferretdb")
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, fmt.Errorf("create ferretdb store: %w", err)
	}
	abs, err := filepath.Abs(store)
	if err != nil {
		return nil, fmt.Errorf("ferretdb store path: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Existing collections get their index before FerretDB opens the files, so that
	// its connections load a schema that has it.
	indexer := newIDIndexer(abs, log)
	if err := indexer.pass(ctx); err != nil {
		indexer.close()
		return nil, fmt.Errorf("index existing collections by _id: %w", err)
	}
	url := "file:" + abs + "/"
	if !o.SyncEachCommit {
		url += "?_pragma=synchronous(normal)"
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: url,
		Logger:    log,
	})
	if err != nil {
		indexer.close()
		return nil, fmt.Errorf("create ferretdb: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Mongo{cancel: cancel, done: make(chan struct{}), indexer: indexer}
	ferretDone := make(chan struct{})
	go func() {
		defer close(ferretDone)
		_ = f.Run(runCtx)
	}()
	var syncer *walSyncer
	if !o.SyncEachCommit {
		syncer = newWALSyncer(abs, log)
	}
	go func() {
		m.indexer.run(runCtx)
		<-ferretDone
		if syncer != nil {
			_ = syncer.pass() // what FerretDB wrote last, before Shutdown returns
		}
		close(m.done)
	}()
	if syncer != nil {
		go syncer.run(runCtx)
	}
	m.URI = f.MongoDBURI()
	if err := m.ping(ctx); err != nil {
		m.Shutdown()
		return nil, err
	}
	return m, nil
}

// IndexCollections gives every collection table that lacks it the _id lookup index now,
// instead of at the indexer's next pass (tests that check query plans call it).
func (m *Mongo) IndexCollections(ctx context.Context) error {
	return m.indexer.pass(ctx)
}

func (m *Mongo) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI))
	if err != nil {
		return fmt.Errorf("connect to ferretdb: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	for {
		err := client.Ping(ctx, nil)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ferretdb not answering: %w", errors.Join(err, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Shutdown stops FerretDB and waits for it to close its files.
func (m *Mongo) Shutdown() {
	m.cancel()
	<-m.done
}
