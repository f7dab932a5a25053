// Command edge runs one CodeExec HTTP edge against an external NATS.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/codeexec/codeexec/edge"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/natsconn"
)

// defaultMetricsAddr is where /metrics is served without CODEEXEC_METRICS_ADDR: off the
// public API port.
const defaultMetricsAddr = "127.0.0.1:9100"

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
	nc, err := natsconn.Connect(cfg.NATSURL, cfg.NATS, "codeexec-edge", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := metrics.NewRegistry()
	ecfg := edge.ConfigFrom(cfg)
	ecfg.Catalog = catalog
	e, err := edge.New(ecfg, nc, reg, log)
	if err != nil {
		return err
	}
	addr := cfg.MetricsAddr
	if addr == "" {
		addr = defaultMetricsAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen metrics on %s: %w", addr, err)
	}
	go func() {
		if err := metrics.ServeListener(ctx, ln, reg, metrics.WithProfiling(cfg.Profiling)); err != nil {
			log.Error("metrics listener", "err", err)
		}
	}()
	return e.Run(ctx, cfg.HTTPAddr)
}
