// Command edge runs one CodeExec HTTP edge against an external NATS.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/codeexec/codeexec/edge"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/natsconn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr).With("service", "edge")
	catalog, err := languages.Load(cfg.LanguagesFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	nc, err := natsconn.Connect(cfg.NATSURL, "codeexec-edge", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := metrics.NewRegistry()
	ecfg := edge.ConfigFrom(cfg)
	ecfg.Catalog = catalog
	e, err := edge.New(ecfg, nc, reg, reg, log)
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		go func() {
			if err := metrics.Serve(ctx, cfg.MetricsAddr, reg); err != nil {
				log.Error("metrics listener", "err", err)
			}
		}()
	}
	return e.Run(ctx, cfg.HTTPAddr)
}
