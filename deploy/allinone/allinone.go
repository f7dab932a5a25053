// Package allinone runs the whole CodeExec mesh in one process for development and tests:
// embedded NATS and FerretDB (unless CODEEXEC_NATS_URL / CODEEXEC_MONGO_URI point at real
// ones), then accounts, ledger, runner and edge, each on its own NATS connection exactly
// as separate processes would be.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codeexec/codeexec/accounts"
	"github.com/codeexec/codeexec/deploy/natsmetrics"
	"github.com/codeexec/codeexec/edge"
	"github.com/codeexec/codeexec/ledger"
	"github.com/codeexec/codeexec/runner"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/mongoconn"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Instance is a running all-in-one.
type Instance struct {
	// URL is the edge's base URL, e.g. http://127.0.0.1:8080 (empty without an edge).
	URL string
	// NATSURL is where other processes (extra runners) can reach this instance's NATS;
	// empty when the embedded server does not listen on TCP.
	NATSURL string
	// MetricsURL is the base URL of the one metrics listener (GET MetricsURL+"/metrics")
	// that serves every part's metrics, from cfg.MetricsAddr; empty when that is unset.
	MetricsURL string

	cancel  context.CancelFunc
	done    <-chan struct{}
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
	cleanup []func()
}

// Start brings the mesh up and returns once every part is serving. ln, when not nil, is
// the edge's listener (tests pass 127.0.0.1:0); otherwise cfg.HTTPAddr is used. With
// cfg.MetricsAddr set, one listener there serves the metrics of every part.
func Start(ctx context.Context, cfg config.Config, ln net.Listener, log *slog.Logger) (inst *Instance, err error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inst = &Instance{cancel: cancel, done: runCtx.Done()}
	defer func() {
		if err != nil {
			_ = inst.Stop()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return inst, fmt.Errorf("create data dir: %w", err)
	}

	connect, natsURL, ns, err := inst.startNATS(cfg, log)
	if err != nil {
		return inst, err
	}
	inst.NATSURL = natsURL
	provisioner, err := connect("codeexec-provisioner")
	if err != nil {
		return inst, err
	}
	catalog, err := languages.Load(cfg.LanguagesFile)
	if err != nil {
		return inst, err
	}
	if err := provision(ctx, cfg, catalog, provisioner, log); err != nil {
		return inst, err
	}

	var db *mongo.Database
	if cfg.Runs("accounts") || cfg.Runs("ledger") {
		if db, err = inst.startMongo(ctx, cfg, log); err != nil {
			return inst, err
		}
	}
	reg := metrics.NewRegistry()
	if ns != nil { // the embedded server's own metrics (gnatsd_*, jetstream_*), read in process
		nm := natsmetrics.New(0, log.With("component", "natsmetrics"), natsmetrics.InProcess(ns.Server))
		if err := reg.Register(nm); err != nil {
			return inst, fmt.Errorf("register nats metrics: %w", err)
		}
		inst.run(runCtx, "nats metrics", func(ctx context.Context) error { nm.Run(ctx); return nil })
	}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return inst, fmt.Errorf("listen metrics on %s: %w", cfg.MetricsAddr, err)
		}
		inst.MetricsURL = "http://" + mln.Addr().String()
		inst.run(runCtx, "metrics", func(ctx context.Context) error {
			return metrics.ServeListener(ctx, mln, reg, metrics.WithProfiling(cfg.Profiling))
		})
	}

	if cfg.Runs("accounts") {
		nc, err := connect("codeexec-accounts")
		if err != nil {
			return inst, err
		}
		svc, err := accounts.New(nc, db, reg, log.With("service", "accounts"))
		if err != nil {
			return inst, err
		}
		inst.run(runCtx, "accounts", svc.Run)
	}
	if cfg.Runs("ledger") {
		nc, err := connect("codeexec-ledger")
		if err != nil {
			return inst, err
		}
		lcfg, err := ledger.LoadConfig(cfg, os.LookupEnv) // the ledger's own CODEEXEC_LEDGER_* too
		if err != nil {
			return inst, err
		}
		svc, err := ledger.New(lcfg, nc, db, reg, log.With("service", "ledger"))
		if err != nil {
			return inst, err
		}
		inst.run(runCtx, "ledger", svc.Run)
	}
	if cfg.Runs("runner") {
		nc, err := connect("codeexec-runner")
		if err != nil {
			return inst, err
		}
		docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return inst, fmt.Errorf("docker client: %w", err)
		}
		inst.cleanup = append(inst.cleanup, func() { _ = docker.Close() })
		r, err := runner.New(cfg, nc, docker, reg, log.With("service", "runner"))
		if err != nil {
			return inst, err
		}
		inst.run(runCtx, "runner", r.Run)
	}
	if cfg.Runs("edge") {
		nc, err := connect("codeexec-edge")
		if err != nil {
			return inst, err
		}
		ecfg := edge.ConfigFrom(cfg)
		ecfg.Catalog = catalog
		e, err := edge.New(ecfg, nc, reg, log.With("service", "edge"))
		if err != nil {
			return inst, err
		}
		if ln == nil {
			if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
				return inst, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
			}
		}
		inst.URL = "http://" + ln.Addr().String()
		inst.run(runCtx, "edge", func(ctx context.Context) error { return e.Serve(ctx, ln) })
		select { // the edge binds what provisioning made at once
		case <-e.Bound():
		case <-inst.done:
			return inst, fmt.Errorf("edge not ready: %w", inst.Wait())
		case <-ctx.Done():
			return inst, ctx.Err()
		}
	}
	// Answer nothing before the services that answer requests do.
	for service, subject := range map[string]string{"accounts": subjects.KeyVerify, "ledger": subjects.Wallet} {
		if cfg.Runs(service) {
			if err := waitResponder(ctx, inst.done, provisioner, subject); err != nil {
				if errors.Is(err, errStopped) {
					err = inst.Wait() // a service failed: say which and why
				}
				return inst, fmt.Errorf("%s not ready: %w", service, err)
			}
		}
	}
	return inst, nil
}

var errStopped = errors.New("stopped while starting")

// provision makes the streams, buckets and job consumers (of every language of the catalog)
// for the all-in-one's own settings. On the embedded NATS it owns them; joining a NATS it
// did not make (CODEEXEC_NATS_URL), it only adds what is missing, never changing what an
// operator provisioned, and a refusal (no provisioning rights) leaves the services to wait.
func provision(ctx context.Context, cfg config.Config, catalog *languages.Catalog, nc *nats.Conn, log *slog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	plan := cfg.Plan(catalog.Names())
	plan.MissingOnly = cfg.NATSURL != ""
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = streams.Provision(ctx, js, plan, nil)
	switch {
	case err == nil:
		return nil
	case plan.MissingOnly:
		log.Warn("could not provision on the external NATS; the services wait for `codeexec provision`", "err", err)
		return nil
	default:
		return fmt.Errorf("provision: %w", err)
	}
}

// waitResponder asks subject until something answers, or the instance stops.
func waitResponder(ctx context.Context, stopped <-chan struct{}, nc *nats.Conn, subject string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		reqCtx, reqCancel := context.WithTimeout(ctx, time.Second)
		_, err := nc.RequestWithContext(reqCtx, subject, []byte(`{"v":1}`))
		reqCancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errStopped
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startNATS connects to cfg.NATSURL, or starts the embedded server (returned, nil with
// cfg.NATSURL). It returns a way to open one connection per service.
func (inst *Instance) startNATS(cfg config.Config, log *slog.Logger) (func(string) (*nats.Conn, error), string, *embedded.NATS, error) {
	if cfg.NATSURL != "" {
		return func(name string) (*nats.Conn, error) {
			nc, err := natsconn.Connect(cfg.NATSURL, cfg.NATS, name, log)
			if err == nil {
				inst.cleanup = append(inst.cleanup, nc.Close)
			}
			return nc, err
		}, cfg.NATSURL, nil, nil
	}
	opts := embedded.NATSOptions{Port: -1}
	if cfg.NATSListen != "" {
		host, port, err := net.SplitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, "", nil, fmt.Errorf("CODEEXEC_NATS_LISTEN %q: %w", cfg.NATSListen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, "", nil, fmt.Errorf("CODEEXEC_NATS_LISTEN port %q: %w", port, err)
		}
		opts = embedded.NATSOptions{Host: host, Port: p}
	}
	ns, err := embedded.StartNATS(cfg.DataDir, opts)
	if err != nil {
		return nil, "", nil, err
	}
	inst.cleanup = append(inst.cleanup, ns.Shutdown)
	return func(name string) (*nats.Conn, error) {
		nc, err := ns.Connect(name)
		if err == nil {
			inst.cleanup = append(inst.cleanup, nc.Close)
		}
		return nc, err
	}, ns.ClientURL(), ns, nil
}

func (inst *Instance) startMongo(ctx context.Context, cfg config.Config, log *slog.Logger) (*mongo.Database, error) {
	uri := cfg.MongoURI
	if uri == "" {
		var ferretLog *slog.Logger
		if cfg.DebugFerretDB {
			ferretLog = log.With("component", "ferretdb")
		}
		m, err := embedded.StartMongoWith(ctx, cfg.DataDir,
			embedded.MongoOptions{Log: ferretLog, SyncEachCommit: cfg.FerretDBSyncEachCommit})
		if err != nil {
			return nil, err
		}
		inst.cleanup = append(inst.cleanup, m.Shutdown)
		uri = m.URI
	}
	db, closeDB, err := mongoconn.Open(uri, cfg.MongoDB)
	if err != nil {
		return nil, err
	}
	inst.cleanup = append(inst.cleanup, closeDB)
	return db, nil
}

// run starts one service; its failure stops the whole instance.
func (inst *Instance) run(ctx context.Context, name string, fn func(context.Context) error) {
	inst.wg.Add(1)
	go func() {
		defer inst.wg.Done()
		if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
			inst.errMu.Lock()
			inst.err = errors.Join(inst.err, fmt.Errorf("%s: %w", name, err))
			inst.errMu.Unlock()
			inst.cancel()
		}
	}()
}

// Done is closed when the instance stops, by Stop or because a service failed.
func (inst *Instance) Done() <-chan struct{} { return inst.done }

// Wait blocks until every service has stopped and returns what made them stop.
func (inst *Instance) Wait() error {
	inst.wg.Wait()
	inst.errMu.Lock()
	defer inst.errMu.Unlock()
	return inst.err
}

// Stop stops every service (the runner drains its jobs), then the infrastructure.
func (inst *Instance) Stop() error {
	inst.cancel()
	err := inst.Wait()
	for i := len(inst.cleanup) - 1; i >= 0; i-- {
		inst.cleanup[i]()
	}
	inst.cleanup = nil
	return err
}
