// Command runner is a standalone CodeExec runner: it connects to the NATS cluster named by
// CODEEXEC_NATS_URL and to the local Docker Engine, and runs jobs until SIGINT or SIGTERM,
// on which it drains (finishes the jobs it holds) and exits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/docker/docker/client"

	"github.com/codeexec/codeexec/runner"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/natsconn"
)

const defaultMetricsAddr = "127.0.0.1:9101"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "runner:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr).With("service", "runner")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	nc, err := natsconn.Connect(cfg.NATSURL, cfg.NATS, "codeexec-runner", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()

	reg := metrics.NewRegistry()
	r, err := runner.New(cfg, nc, docker, reg, log)
	if err != nil {
		return err
	}
	addr := cfg.MetricsAddr
	if addr == "" {
		addr = defaultMetricsAddr
	}
	metricsErr := make(chan error, 1)
	go func() { metricsErr <- metrics.Serve(ctx, addr, reg, metrics.WithProfiling(cfg.Profiling)) }()
	log.Info("runner starting", "runner_id", r.ID(), "metrics", addr)

	if err := r.Run(ctx); err != nil {
		return err
	}
	stop()
	if err := <-metricsErr; err != nil {
		return err
	}
	return nil
}
