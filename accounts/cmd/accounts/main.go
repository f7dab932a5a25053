// Command accounts runs CodeExec's accounts service against external NATS and MongoDB.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/codeexec/codeexec/accounts"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/mongoconn"
	"github.com/codeexec/codeexec/shared/natsconn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "accounts:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:9103"
	}
	if cfg.MongoURI == "" {
		return fmt.Errorf("CODEEXEC_MONGO_URI is required for the standalone accounts service")
	}
	log := cfg.Logger(os.Stderr).With("service", "accounts")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	nc, err := natsconn.Connect(cfg.NATSURL, cfg.NATS, "codeexec-accounts", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	db, closeDB, err := mongoconn.Open(cfg.MongoURI, cfg.MongoDB)
	if err != nil {
		return err
	}
	defer closeDB()

	reg := metrics.NewRegistry()
	svc, err := accounts.New(nc, db, reg, log)
	if err != nil {
		return err
	}
	go func() {
		if err := metrics.Serve(ctx, cfg.MetricsAddr, reg, metrics.WithProfiling(cfg.Profiling)); err != nil {
			log.Error("metrics listener", "err", err)
		}
	}()
	return svc.Run(ctx)
}
