// Command accounts runs CodeExec's accounts service against external NATS and MongoDB.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/accounts"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/metrics"
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

	nc, err := natsconn.Connect(cfg.NATSURL, "codeexec-accounts", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	client, err := mongo.Connect(options.Client().ApplyURI(cfg.MongoURI))
	if err != nil {
		return fmt.Errorf("connect to mongodb: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(dctx)
	}()

	reg := metrics.NewRegistry()
	svc, err := accounts.New(nc, client.Database(cfg.MongoDB), reg, log)
	if err != nil {
		return err
	}
	go func() {
		if err := metrics.Serve(ctx, cfg.MetricsAddr, reg); err != nil {
			log.Error("metrics listener", "err", err)
		}
	}()
	return svc.Run(ctx)
}
