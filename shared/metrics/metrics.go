// Package metrics holds CodeExec's Prometheus helpers: one registry per service and a
// /metrics listener, which every service (the edge included) serves off its API port.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves the gatherer in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// LatencyBuckets suit calls from a millisecond to a minute.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Option changes what the metrics listener serves.
type Option func(*http.ServeMux)

// WithProfiling adds Go's profiles under /debug/pprof/ when on (CODEEXEC_PPROF=1). Off by
// default: a profile costs CPU, and the listener may face more than the host.
func WithProfiling(on bool) Option {
	return func(mux *http.ServeMux) {
		if !on {
			return
		}
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}

// Serve answers /metrics on addr until ctx ends.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, opts ...Option) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen metrics on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, g, opts...)
}

// ServeListener answers /metrics on ln until ctx ends.
func ServeListener(ctx context.Context, ln net.Listener, g prometheus.Gatherer, opts ...Option) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(g))
	for _, o := range opts {
		o(mux)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}

// Poll calls read at once, then every period until ctx ends: the background loop of a
// collector that keeps what it read, so that a scrape never waits on what it reads.
func Poll(ctx context.Context, every time.Duration, read func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		read(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
