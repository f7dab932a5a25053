// Command ledger runs the ledger service against an external NATS and MongoDB.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/codeexec/codeexec/ledger"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/mongoconn"
	"github.com/codeexec/codeexec/shared/natsconn"
)

const defaultMetricsAddr = "127.0.0.1:9102"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	lcfg, err := ledger.LoadConfig(cfg, os.LookupEnv)
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.MongoURI == "" {
		return fmt.Errorf("CODEEXEC_MONGO_URI is required for a standalone ledger")
	}
	nc, err := natsconn.Connect(cfg.NATSURL, cfg.NATS, "codeexec-ledger", log)
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
	addr := cfg.MetricsAddr
	if addr == "" {
		addr = defaultMetricsAddr
	}
	go func() {
		if err := metrics.Serve(ctx, addr, reg, metrics.WithProfiling(cfg.Profiling)); err != nil {
			log.Error("metrics listener", "addr", addr, "err", err)
		}
	}()

	svc, err := ledger.New(lcfg, nc, db, reg, log)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
