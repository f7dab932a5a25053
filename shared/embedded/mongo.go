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
	URI    string
	cancel context.CancelFunc
	done   chan struct{}
}

// StartMongo starts FerretDB with the SQLite handler storing under dir/ferretdb, listening
// on a free loopback port. log receives FerretDB's own logs; nil keeps them quiet.
func StartMongo(ctx context.Context, dir string, log *slog.Logger) (*Mongo, error) {
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
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("create ferretdb: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Mongo{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		_ = f.Run(runCtx)
	}()
	m.URI = f.MongoDBURI()
	if err := m.ping(ctx); err != nil {
		m.Shutdown()
		return nil, err
	}
	return m, nil
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
