// Package runner is the CodeExec runner: the agent on each Docker host that pulls jobs of
// the languages it serves from NATS, runs each in a fresh locked-down container through the
// Docker Engine SDK, and publishes results and heartbeats.
//
//	r, err := runner.New(cfg, nc, docker, registry, log)
//	err = r.Run(ctx) // blocks; when ctx ends it drains and returns
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/runner/internal/agent"
	"github.com/codeexec/codeexec/runner/internal/pool"
	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Config is the part of the shared configuration the runner reads: RunnerID (empty: the
// host name with a random suffix), Region, RunnerSlots, PoolSize, LanguagesFile (the
// language table; empty: the built-in one) and Languages (the
// languages to serve; empty: every language of the table whose image is present).
type Config = config.Config

// Runner is one runner process.
type Runner struct {
	cfg     Config
	id      string
	nc      *nats.Conn
	docker  *client.Client
	log     *slog.Logger
	catalog *languages.Catalog
	metrics *agent.Metrics
	sb      *sandbox.Sandbox
}

// New prepares a runner; Run starts it. reg receives the codeexec_runner_* metrics.
func New(cfg Config, nc *nats.Conn, docker *client.Client, reg prometheus.Registerer, log *slog.Logger) (*Runner, error) {
	if nc == nil || docker == nil {
		return nil, errors.New("runner needs a NATS connection and a Docker client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	catalog, err := languages.Load(cfg.LanguagesFile)
	if err != nil {
		return nil, err
	}
	for _, name := range cfg.Languages {
		if _, ok := catalog.Resolve(name); !ok {
			return nil, fmt.Errorf("CODEEXEC_LANGUAGES: %q is not in the language table", name)
		}
	}
	// Every runner series carries the runner's region, so that saturation adds up per region.
	m, err := agent.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"region": cfg.Region}, reg))
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	id := cfg.RunnerID
	if id == "" {
		id = newID()
	} else if !subjects.Token(id) {
		return nil, fmt.Errorf("runner id %q: use letters, digits, - and _", id)
	}
	log = log.With("runner_id", id)
	uids := sandbox.DefaultUIDs
	if cfg.SandboxUIDs != "" {
		if uids, err = sandbox.ParseUIDRange(cfg.SandboxUIDs); err != nil {
			return nil, fmt.Errorf("CODEEXEC_SANDBOX_UIDS: %w", err)
		}
	}
	infoCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	runtime, err := sandbox.ChooseRuntime(infoCtx, docker, cfg.Runtime, log)
	cancel()
	if err != nil {
		return nil, err
	}
	engine, err := sandbox.ChooseEngine(cfg.Engine, runtime, log)
	if err != nil {
		return nil, err
	}
	log.Info("containers run with the OCI runtime", "runtime", runtime, "engine", engine)
	cgCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	parent, err := sandbox.PrepareJobsCgroup(cgCtx, docker, sandbox.DefaultCgroupRoot, cfg.JobsCPUWeight, log)
	cancel()
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.New(docker, sandbox.Options{
		Engine:            engine,
		Runtime:           runtime,
		CgroupParent:      parent,
		UIDs:              uids,
		RunnerID:          id,
		Log:               log,
		OnContainerStart:  func(d time.Duration) { m.ContainerStart.Observe(d.Seconds()) },
		OnContainerRemove: func(d time.Duration) { m.ContainerRemove.Observe(d.Seconds()) },
	})
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, id: id, nc: nc, docker: docker, log: log, catalog: catalog, metrics: m, sb: sb}, nil
}

// ID is the runner's id, as in its heartbeats, results and container labels.
func (r *Runner) ID() string { return r.id }

// Engine is how the runner makes its containers: sandbox.EngineDirect or EngineDocker.
func (r *Runner) Engine() string { return r.sb.Engine() }

// Containers lists the ids of the runner's containers, whichever engine made them.
func (r *Runner) Containers(ctx context.Context) ([]string, error) { return r.sb.List(ctx) }

// Run serves jobs until ctx ends, then drains: it stops pulling, finishes the jobs it holds,
// publishes their results, removes its warm containers and returns.
func (r *Runner) Run(ctx context.Context) error {
	if n, err := r.sb.RemoveLeftovers(ctx); err != nil {
		return fmt.Errorf("remove leftover containers: %w", err)
	} else if n > 0 {
		r.metrics.LeftoversRemoved.Add(float64(n))
		r.log.Info("removed leftover containers", "count", n)
	}
	langs, err := r.served(ctx)
	if err != nil {
		return err
	}

	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	poolCtx, stopPool := context.WithCancel(bg)
	defer func() {
		// Drained (or failed to start): the pool's containers go, then the OOM watcher,
		// then anything left behind, by this life or a killed earlier one.
		stopPool()
		stopBackground()
		wg.Wait()
		r.sweep(context.WithoutCancel(ctx), true)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.sb.Watch(bg)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for t := time.NewTicker(sweepEvery); ; {
			select {
			case <-bg.Done():
				t.Stop()
				return
			case <-t.C:
				r.sweep(bg, false)
			}
		}
	}()

	warm := make([]pool.Language, len(langs))
	for i, l := range langs {
		warm[i] = pool.Language{Lang: l, Limits: r.catalog.Defaults(l)}
	}
	p := pool.New(r.sb, pool.Options{Max: r.cfg.PoolSize, Min: r.cfg.PoolMin, Log: r.log,
		OnChange: func(lang string, warm, target int) {
			r.metrics.PoolWarm.WithLabelValues(lang).Set(float64(warm))
			r.metrics.PoolTarget.WithLabelValues(lang).Set(float64(target))
		}}, warm)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.Run(poolCtx)
	}()

	a, err := agent.New(agent.Config{RunnerID: r.id, Region: r.cfg.Region, Slots: r.cfg.RunnerSlots},
		r.nc, r.sb, p, r.catalog, langs, r.metrics, r.log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// sweepEvery is how often a running runner removes leftovers that appeared after its start:
// a container whose create the daemon finished for a runner killed meanwhile.
const sweepEvery = time.Minute

// sweep removes leftover containers, and with own (on exit) any of this life's that are
// still there, which would be a leak and is logged as one.
func (r *Runner) sweep(ctx context.Context, own bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if n, err := r.sb.RemoveLeftovers(ctx); err != nil {
		r.log.Warn("remove leftover containers", "err", err)
	} else if n > 0 {
		r.metrics.LeftoversRemoved.Add(float64(n))
		r.log.Info("removed leftover containers", "count", n)
	}
	if !own {
		if ids, err := r.sb.List(ctx); err != nil {
			r.log.Warn("count the runner's containers", "err", err)
		} else {
			r.metrics.Containers.Set(float64(len(ids)))
		}
		return
	}
	if n, err := r.sb.RemoveOwn(ctx); err != nil {
		r.log.Warn("remove own containers", "err", err)
	} else if n > 0 {
		r.log.Warn("removed containers the runner had lost track of", "count", n)
	}
}

// served returns the languages to serve: those configured (or all), minus those whose image
// is not on the Docker host, which are logged and left out, so that heartbeats never
// announce a language this runner cannot run.
func (r *Runner) served(ctx context.Context) ([]*languages.Language, error) {
	names := r.cfg.Languages
	if len(names) == 0 {
		names = r.catalog.Names()
	}
	var langs []*languages.Language
	for _, n := range names {
		l, _ := r.catalog.Resolve(n)
		if _, err := r.docker.ImageInspect(ctx, l.Image); err != nil {
			r.log.Error("language image missing: not serving it (run `make images`)", "language", l.Name, "image", l.Image, "err", err)
			continue
		}
		langs = append(langs, l)
	}
	if len(langs) == 0 {
		return nil, fmt.Errorf("no language image is present on the Docker host (run `make images`): %s", strings.Join(names, ", "))
	}
	return langs, nil
}

// newID is the id of a runner whose configuration names none (config.Load always does: the
// host name): the host name with a random suffix, so that runners embedded in one test
// process never take each other for their own.
func newID() string {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return config.HostRunnerID() + "-" + hex.EncodeToString(suffix)
}
