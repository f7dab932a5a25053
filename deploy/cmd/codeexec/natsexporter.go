package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/deploy/natsmetrics"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/metrics"
)

// defaultExporterAddr is where `codeexec nats-exporter` serves /metrics without
// CODEEXEC_METRICS_ADDR: prometheus-nats-exporter's port.
const defaultExporterAddr = "127.0.0.1:7777"

// natsExporter is `codeexec nats-exporter`: the monitoring data of every server of
// CODEEXEC_NATS_MONITOR_URLS (comma-separated http://host:port of their monitoring ports)
// served on /metrics at CODEEXEC_METRICS_ADDR, read every 5 s in the background.
func natsExporter() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr)
	var sources []natsmetrics.Source
	client := &http.Client{Timeout: 5 * time.Second}
	for _, u := range strings.Split(os.Getenv("CODEEXEC_NATS_MONITOR_URLS"), ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		src, err := natsmetrics.Monitor(u, client)
		if err != nil {
			return fmt.Errorf("CODEEXEC_NATS_MONITOR_URLS: %w", err)
		}
		sources = append(sources, src)
	}
	if len(sources) == 0 {
		return errors.New("nats-exporter: CODEEXEC_NATS_MONITOR_URLS is required (e.g. http://127.0.0.1:8222)")
	}
	addr := cfg.MetricsAddr
	if addr == "" {
		addr = defaultExporterAddr
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := natsmetrics.New(0, log, sources...)
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("register nats metrics: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	log.Info("exporting nats-server metrics", "servers", len(sources), "url", "http://"+addr+"/metrics")
	err = metrics.Serve(ctx, addr, reg)
	stop()
	<-done
	return err
}
