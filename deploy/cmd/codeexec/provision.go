package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/streams"
)

// provisionTimeout bounds the whole provisioning, NATS connection included.
const provisionTimeout = 2 * time.Minute

// provision is `codeexec provision`: every stream, bucket and consumer of the settings'
// plan, created or updated on an external NATS.
func provision() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return errors.New("provision: CODEEXEC_NATS_URL is required (the all-in-one provisions its embedded NATS itself)")
	}
	catalog, err := languages.Load(cfg.LanguagesFile)
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, provisionTimeout)
	defer cancel()

	nc, err := natsconn.Connect(cfg.NATSURL, cfg.NATS, "codeexec-provision", log, nats.RetryOnFailedConnect(false))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	plan := cfg.Plan(catalog.Names())
	fmt.Printf("provisioning %s: %d replica(s), regions %v, %d languages\n", cfg.NATSURL, max(plan.Replicas, 1), plan.Regions, len(plan.Languages))
	err = streams.Provision(ctx, js, plan, func(kind, name string) { fmt.Printf("  %-8s %s\n", kind, name) })
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	fmt.Printf("done; with every stream full, each node stores up to %.2f GiB (keep max_file_store above it)\n",
		float64(plan.StoreBytes())/(1<<30))
	return nil
}
