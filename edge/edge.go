// Package edge is CodeExec's HTTP edge: the Fiber API that authenticates through accounts,
// reserves through the ledger, publishes jobs on JetStream and answers with their results.
// It talks to the other services over NATS only.
package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/edge/internal/api"
	"github.com/codeexec/codeexec/edge/internal/dispatch"
	"github.com/codeexec/codeexec/edge/internal/presence"
	"github.com/codeexec/codeexec/shared/languages"
)

// Config is the edge's configuration.
type Config struct {
	Region      string
	WaitTimeout time.Duration
	AdminToken  string
	// Catalog is the language table; nil loads the built-in one.
	Catalog *languages.Catalog
}

// Edge is one edge instance. Several may run against the same NATS.
type Edge struct {
	id       string
	app      *fiber.App
	dispatch *dispatch.Dispatcher
	presence *presence.Tracker
	nc       *nats.Conn
	log      *slog.Logger
}

// New builds an edge on nc. reg receives its metrics; gatherer is what /metrics serves.
func New(cfg Config, nc *nats.Conn, reg prometheus.Registerer, gatherer prometheus.Gatherer, log *slog.Logger) (*Edge, error) {
	if cfg.Catalog == nil {
		c, err := languages.Default()
		if err != nil {
			return nil, err
		}
		cfg.Catalog = c
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	idBytes := make([]byte, 6)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, fmt.Errorf("read random edge id: %w", err)
	}
	id := "edge-" + hex.EncodeToString(idBytes)
	log = log.With("edge_id", id)
	e := &Edge{
		id:       id,
		dispatch: dispatch.New(id, nc, js, log),
		presence: presence.NewTracker(log, nil),
		nc:       nc,
		log:      log,
	}
	e.app, err = api.New(api.Config{Region: cfg.Region, WaitTimeout: cfg.WaitTimeout, AdminToken: cfg.AdminToken}, nc, cfg.Catalog,
		e.dispatch, e.presence, reg, gatherer, log)
	if err != nil {
		return nil, fmt.Errorf("build api: %w", err)
	}
	return e, nil
}

// Run listens on addr until ctx ends.
func (e *Edge) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return e.Serve(ctx, ln)
}

// Serve answers HTTP on ln until ctx ends, then lets running requests finish.
func (e *Edge) Serve(ctx context.Context, ln net.Listener) error {
	if err := e.presence.Subscribe(ctx, e.nc); err != nil {
		return err
	}
	if err := e.dispatch.Start(ctx); err != nil {
		return err
	}
	defer e.dispatch.Stop()
	errc := make(chan error, 1)
	go func() { errc <- e.app.Listener(ln) }()
	e.log.Info("edge listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.app.ShutdownWithContext(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}
