// Command codeexec is the all-in-one CodeExec: embedded NATS and FerretDB, edge, runner,
// ledger and accounts in one process, for development and small single-host setups.
//
// `codeexec provision` is the provisioning step of a mesh: it creates or updates every
// stream, key-value bucket and job consumer on the NATS of CODEEXEC_NATS_URL, as the
// provisioning user, from CODEEXEC_STREAM_REPLICAS, the CODEEXEC_*_STREAM_BYTES sizes,
// CODEEXEC_REGIONS and the language table. The services only bind what it made.
//
// `codeexec nats-exporter` serves the monitoring data of a NATS cluster's servers
// (CODEEXEC_NATS_MONITOR_URLS) to Prometheus, under prometheus-nats-exporter's names.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/codeexec/codeexec/deploy/allinone"
	"github.com/codeexec/codeexec/shared/config"
)

// defaultMetricsAddr serves the metrics of every part without CODEEXEC_METRICS_ADDR, off
// the public API port (the standalone edge's default too).
const defaultMetricsAddr = "127.0.0.1:9100"

func main() {
	run := run
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "provision":
			run = provision
		case "nats-exporter":
			run = natsExporter
		default:
			fmt.Fprintf(os.Stderr, "codeexec: unknown command %q (want no argument, provision or nats-exporter)\n", os.Args[1])
			os.Exit(2)
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "codeexec:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = defaultMetricsAddr
	}
	inst, err := allinone.Start(ctx, cfg, nil, log)
	if err != nil {
		return err
	}
	if inst.URL != "" {
		fmt.Printf(`CodeExec is running at %[1]s (data in %[2]s)
Get an API key:
  curl -s -X POST %[1]s/api/register -H 'Content-Type: application/json' \
    -d '{"email":"you@example.com","username":"you","password":"a long password"}'
Stop with Ctrl-C.
`, inst.URL, cfg.DataDir)
	}
	log.Info("metrics of every part", "url", inst.MetricsURL+"/metrics")
	if inst.NATSURL != "" {
		log.Info("embedded NATS accepts clients", "url", inst.NATSURL)
	}
	select {
	case <-ctx.Done():
		log.Info("stopping: the runner finishes the jobs it holds")
	case <-inst.Done():
	}
	return inst.Stop()
}
