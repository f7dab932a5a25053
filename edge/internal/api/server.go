// Package api is the edge's HTTP API: validation, authentication through accounts, money
// through the ledger, jobs through dispatch. It never touches MongoDB or Docker.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/edge/internal/apidoc"
	"github.com/codeexec/codeexec/edge/internal/authcache"
	"github.com/codeexec/codeexec/edge/internal/limits"
	"github.com/codeexec/codeexec/edge/internal/playground"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/metrics"
)

// Dispatcher publishes jobs and waits for results (see package dispatch).
type Dispatcher interface {
	Fits(job *messages.Job) error
	Submit(ctx context.Context, job *messages.Job, wait bool) error
	Abandon(ctx context.Context, job *messages.Job, reason string) error
	Forget(jobID string)
	Wait(ctx context.Context, jobID string, timeout time.Duration) (messages.Result, error)
	Result(ctx context.Context, jobID string) (messages.Result, error)
	OwnerOf(ctx context.Context, jobID string) (string, error)
	Running(ctx context.Context, jobID string) (bool, error)
}

// Presence tells whether a live runner serves a language (see package presence).
type Presence interface {
	Available(region, language string) bool
	// Unserved is how long region has had no live runner of language (0: it has one).
	Unserved(region, language string) time.Duration
}

// Config is what the API needs to know.
type Config struct {
	Region      string
	WaitTimeout time.Duration
	AdminToken  string // empty: admin endpoints answer 403
	// RegionNeighbors are the regions a "regionPolicy": "prefer" job may go to when its
	// own has no live runner, nearest first (CODEEXEC_REGION_NEIGHBORS).
	RegionNeighbors []string

	// Credentials caches valid key and session checks (see package authcache); Limiter
	// holds the per-credential rate and per-account concurrency limits shared by every
	// edge (see package limits). Both are started by the edge.
	Credentials *authcache.Cache
	Limiter     *limits.Limiter
	// Bound reports whether the edge has bound its streams and buckets; until then every
	// /api route answers 503 not_ready. Nil: bound from the start.
	Bound func() bool
}

// Server holds the API's dependencies.
type Server struct {
	cfg      Config
	nc       *nats.Conn
	catalog  *languages.Catalog
	dispatch Dispatcher
	presence Presence
	log      *slog.Logger
	m        *apiMetrics
	am       *authMetrics
	creds    *authcache.Cache
	limiter  *limits.Limiter
}

type apiMetrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	executions *prometheus.CounterVec
	execTime   *prometheus.HistogramVec
}

// New builds the Fiber app. reg receives the API's metrics, which are served on a metrics
// listener of their own (CODEEXEC_METRICS_ADDR), never on the API's port.
func New(cfg Config, nc *nats.Conn, catalog *languages.Catalog, d Dispatcher, p Presence,
	reg prometheus.Registerer, log *slog.Logger) (*fiber.App, error) {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_edge_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "codeexec_edge_http_request_seconds", Help: "HTTP request latency by route.", Buckets: metrics.LatencyBuckets,
		}, []string{"route", "method"}),
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_edge_executions_total", Help: "Executions answered, by language and runTimeStatus.",
		}, []string{"language", "status"}),
		execTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "codeexec_edge_execution_seconds", Help: "Time from accepting an execution to its result, by language.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"language"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.executions, m.execTime} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	am, err := newAuthMetrics(reg)
	if err != nil {
		return nil, err
	}
	if cfg.Credentials == nil { // no revocation events reach an unstarted cache: do not cache
		cfg.Credentials = authcache.New(-1, nil, nil, log)
	}
	s := &Server{cfg: cfg, nc: nc, catalog: catalog, dispatch: d, presence: p, log: log, m: m, am: am,
		creds: cfg.Credentials, limiter: cfg.Limiter}

	app := fiber.New(fiber.Config{
		AppName:               "codeexec-edge",
		DisableStartupMessage: true,
		Immutable:             true,
		BodyLimit:             maxBodyBytes,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          cfg.WaitTimeout + 30*time.Second,
		IdleTimeout:           2 * time.Minute,
		ErrorHandler:          errorHandler(log),
	})
	app.Use(s.traceRequest, s.observe)
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	apidoc.Register(app) // before the /api middleware: the description is there while the edge starts

	app.Use("/api", s.requireBound)
	pub := app.Group("/api")
	pub.Post("/register", s.limitAddress, s.register)
	pub.Post("/login", s.limitAddress, s.login)
	pub.Post("/logout", s.logout)
	pub.Get("/shared/:shareId", s.limitAddress, s.getShared)
	pub.Get("/v1/languages", s.languages)
	pub.Post("/admin/credit", s.adminCredit)

	auth := app.Group("/api", s.authenticate)
	auth.Post("/v1/execute", s.executeV1)
	auth.Post("/v2/execute", s.executeV2)
	auth.Get("/v1/jobs/:jobId", s.job)
	auth.Get("/wallet", s.wallet)
	auth.Get("/usage", s.usage)
	auth.Get("/me", s.me)
	auth.Post("/keys", s.createKey)
	auth.Get("/keys", s.listKeys)
	auth.Delete("/keys/:id", s.revokeKey)
	auth.Post("/projects", s.createProject)
	auth.Get("/projects", s.listProjects)
	auth.Get("/projects/:id", s.getProject)
	auth.Put("/projects/:id", s.updateProject)
	auth.Delete("/projects/:id", s.deleteProject)
	auth.Post("/projects/:id/execute", s.executeProject)
	auth.Post("/projects/:id/share", s.shareProject)
	auth.Delete("/projects/:id/share", s.unshareProject)
	auth.Post("/shared/:shareId/fork", s.forkShared)

	site, err := playground.New()
	if err != nil {
		return nil, fmt.Errorf("playground: %w", err)
	}
	site.Register(app)
	return app, nil
}

// Route is one method and path pattern the API answers, as Fiber writes it (/api/keys/:id).
type Route struct {
	Method string
	Path   string
}

// Routes lists the routes app answers, sorted, without middleware and without the HEAD
// routes Fiber adds to every GET.
func Routes(app *fiber.App) []Route {
	var out []Route
	for _, r := range app.GetRoutes(true) {
		if r.Method == fiber.MethodHead {
			continue
		}
		out = append(out, Route{Method: r.Method, Path: r.Path})
	}
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Method, b.Method))
	})
	return slices.Compact(out)
}

// observe counts and times every request by its route pattern.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet: take the status it will write.
		status = statusOf(err)
	}
	route := c.Route().Path
	var fe *fiber.Error
	if route == "" || route == "/" && errors.As(err, &fe) && fe.Code == http.StatusNotFound { // no route matched
		route = "unmatched"
	}
	s.m.requests.WithLabelValues(route, c.Method(), strconv.Itoa(status)).Inc()
	s.m.latency.WithLabelValues(route, c.Method()).Observe(time.Since(start).Seconds())
	return err
}
