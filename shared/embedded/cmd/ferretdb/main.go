// Command ferretdb serves CodeExec's embedded MongoDB-wire database (FerretDB over SQLite,
// with the _id lookup indexes and the WAL syncer of package embedded) as a process of its
// own, for a mesh of separate services on one machine (deploy/local-cluster) when no
// MongoDB is at hand. It prints the MongoDB URI once it serves, and stops on SIGINT or
// SIGTERM.
//
//	ferretdb -addr 127.0.0.1:27017 -dir ./data/ferretdb
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/codeexec/codeexec/shared/embedded"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "./data", "directory of the SQLite files (under DIR/ferretdb)")
	syncEach := flag.Bool("sync-each-commit", false, "sync every commit to disk instead of every 100 ms")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m, err := embedded.StartMongoWith(ctx, *dir, embedded.MongoOptions{Log: log, Addr: *addr, SyncEachCommit: *syncEach})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	fmt.Println(m.URI)
	<-ctx.Done()
	m.Shutdown()
}
