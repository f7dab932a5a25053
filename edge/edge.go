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
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/edge/internal/api"
	"github.com/codeexec/codeexec/edge/internal/authcache"
	"github.com/codeexec/codeexec/edge/internal/dispatch"
	"github.com/codeexec/codeexec/edge/internal/limits"
	"github.com/codeexec/codeexec/edge/internal/presence"
	"github.com/codeexec/codeexec/edge/internal/queuestats"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/natsconn"
)

// Config is the edge's configuration.
type Config struct {
	Region      string
	WaitTimeout time.Duration
	AdminToken  string
	// RegionNeighbors are where a "regionPolicy": "prefer" job goes when its region has no
	// live runner for its language, nearest first (CODEEXEC_REGION_NEIGHBORS).
	RegionNeighbors []string
	// Catalog is the language table; nil loads the built-in one.
	Catalog *languages.Catalog

	// KeyCacheTTL is how long a valid key or session check is trusted (0: 30 s; negative:
	// no caching). Revocations reach every edge's cache through NATS events.
	KeyCacheTTL time.Duration
	// RatePerSec and RateBurst are every credential's token bucket (0: 10/s and 20);
	// MaxConcurrent bounds an account's executions at once (0: 8). All edges share them.
	RatePerSec    float64
	RateBurst     int
	MaxConcurrent int
	// AnonRatePerSec and AnonRateBurst limit register, login and shared views per client
	// address (0: 2/s and 30).
	AnonRatePerSec float64
	AnonRateBurst  int
}

// ConfigFrom takes the edge's settings from the process configuration (the catalog is
// left for the caller). CODEEXEC_KEY_CACHE_TTL=0 turns the credential cache off.
func ConfigFrom(c config.Config) Config {
	ttl := c.KeyCacheTTL
	if ttl == 0 {
		ttl = -1
	}
	return Config{Region: c.Region, RegionNeighbors: c.RegionNeighbors, WaitTimeout: c.WaitTimeout, AdminToken: c.AdminToken, KeyCacheTTL: ttl,
		RatePerSec: c.RatePerSec, RateBurst: c.RateBurst, MaxConcurrent: c.MaxConcurrent,
		AnonRatePerSec: c.AnonRatePerSec, AnonRateBurst: c.AnonRateBurst}
}

// Edge is one edge instance. Several may run against the same NATS.
type Edge struct {
	id       string
	app      *fiber.App
	dispatch *dispatch.Dispatcher
	presence *presence.Tracker
	queues   *queuestats.Collector
	creds    *authcache.Cache
	limiter  *limits.Limiter
	js       jetstream.JetStream
	nc       *nats.Conn
	log      *slog.Logger
	// bound is set once the streams and buckets are bound: the API serves from then on.
	bound atomic.Bool
	// boundCh is closed at the same moment.
	boundCh chan struct{}
}

// New builds an edge on nc. reg receives its metrics; the caller serves them on a metrics
// listener (see shared/metrics), never on the API's port.
func New(cfg Config, nc *nats.Conn, reg prometheus.Registerer, log *slog.Logger) (*Edge, error) {
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
	if cfg.RatePerSec <= 0 {
		cfg.RatePerSec = 10
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = 20
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 8
	}
	if cfg.AnonRatePerSec <= 0 {
		cfg.AnonRatePerSec = 2
	}
	if cfg.AnonRateBurst <= 0 {
		cfg.AnonRateBurst = 30
	}
	e := &Edge{
		boundCh:  make(chan struct{}),
		id:       id,
		dispatch: dispatch.New(id, nc, js, log),
		presence: presence.NewTracker(log, nil),
		creds:    authcache.New(cfg.KeyCacheTTL, func() uint64 { return nc.Stats().Reconnects }, nil, log),
		limiter: limits.New(limits.Config{RatePerSec: cfg.RatePerSec, Burst: cfg.RateBurst, MaxConcurrent: cfg.MaxConcurrent,
			AnonRatePerSec: cfg.AnonRatePerSec, AnonBurst: cfg.AnonRateBurst,
			LeaseTTL: cfg.WaitTimeout + limits.DefaultLeaseTTL}, nil),
		queues: queuestats.New(js, 0, log),
		js:     js,
		nc:     nc,
		log:    log,
	}
	for _, c := range []prometheus.Collector{e.presence, e.queues} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	e.app, err = api.New(api.Config{Region: cfg.Region, RegionNeighbors: cfg.RegionNeighbors, WaitTimeout: cfg.WaitTimeout, AdminToken: cfg.AdminToken,
		Credentials: e.creds, Limiter: e.limiter, Bound: e.bound.Load}, nc, cfg.Catalog, e.dispatch, e.presence, reg, log)
	if err != nil {
		return nil, fmt.Errorf("build api: %w", err)
	}
	return e, nil
}

// bind waits for the streams and buckets the edge uses, then lets the API serve.
func (e *Edge) bind(ctx context.Context) error {
	const what = " (made by `codeexec provision`)"
	if _, err := natsconn.Await(ctx, e.log, "the job index, results and jobs streams"+what, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, e.dispatch.Start(ctx)
	}); err != nil {
		return err
	}
	if _, err := natsconn.Await(ctx, e.log, "the rate-limit and concurrency buckets"+what, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, e.limiter.Start(ctx, e.js)
	}); err != nil {
		return err
	}
	e.bound.Store(true)
	close(e.boundCh)
	e.log.Info("edge bound its streams and buckets: serving")
	return nil
}

// Bound is closed once the edge has bound its streams and buckets and serves its API.
func (e *Edge) Bound() <-chan struct{} { return e.boundCh }

// Run listens on addr until ctx ends.
func (e *Edge) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return e.Serve(ctx, ln)
}

// Serve answers HTTP on ln until ctx ends, then lets running requests finish. It listens at
// once; until its streams and buckets are there (provisioning may come later), /readyz and
// every /api route answer 503 not_ready while it waits for them with backoff.
func (e *Edge) Serve(ctx context.Context, ln net.Listener) error {
	if err := e.presence.Subscribe(ctx, e.nc); err != nil {
		return err
	}
	if err := e.creds.Start(ctx, e.nc); err != nil {
		return err
	}
	defer e.creds.Stop()
	defer e.dispatch.Stop()
	queuesCtx, stopQueues := context.WithCancel(ctx)
	queuesDone := make(chan struct{})
	go func() {
		defer close(queuesDone)
		e.queues.Run(queuesCtx)
	}()
	defer func() { stopQueues(); <-queuesDone }()
	errc := make(chan error, 2)
	go func() { errc <- e.app.Listener(ln) }()
	e.log.Info("edge listening", "addr", ln.Addr().String())
	go func() {
		if err := e.bind(ctx); err != nil && ctx.Err() == nil {
			errc <- err
		}
	}()
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
