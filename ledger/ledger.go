// Package ledger is CodeExec's money service: wallets as append-only entry chains,
// reservations before a job is queued, exactly-once charges from the results stream,
// release of holds that expire or whose job was never queued, and one execution record
// per job.
//
// It answers, in queue group "ledger":
//
//	ledger.reserve      messages.ReserveRequest    → messages.ReserveReply (the job's open hold; or insufficient_funds, not_found, hold_closed, conflict)
//	ledger.wallet       messages.WalletRequest     → messages.WalletReply (opens the wallet on first sight)
//	ledger.wallet.open  messages.OpenWalletRequest → messages.WalletReply
//	ledger.credit       messages.CreditRequest     → messages.CreditReply (admin credit, once per reference; bounded, wallet required)
//	ledger.usage        messages.UsageRequest      → messages.UsageReply (execution records, newest first, at most MaxUsageReplyBytes)
//
// and pulls exec.results.> through the durable consumer "ledger-charges" of the RESULTS
// stream, which provisioning (`codeexec provision`, shared/streams.Provision) makes. It
// reads the job index (JOB_INDEX) and creates abandoned claims in it for the jobs it gives
// up (see internal/orphans).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codeexec/codeexec/ledger/internal/api"
	"github.com/codeexec/codeexec/ledger/internal/billing"
	"github.com/codeexec/codeexec/ledger/internal/expiry"
	"github.com/codeexec/codeexec/ledger/internal/orphans"
	"github.com/codeexec/codeexec/ledger/internal/pricing"
	"github.com/codeexec/codeexec/ledger/internal/records"
	"github.com/codeexec/codeexec/ledger/internal/telemetry"
	"github.com/codeexec/codeexec/ledger/internal/wallet"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Defaults of the ledger's own settings.
const (
	DefaultHoldTTL       = 15 * time.Minute
	DefaultSweepInterval = 30 * time.Second
	// DefaultOrphanGrace is well past the longest a live edge takes from its reserve to its
	// job's owner record (two steps retried for up to 10 s each), and
	// DefaultOrphanInterval makes an orphaned hold's release come within about a minute.
	DefaultOrphanGrace    = 45 * time.Second
	DefaultOrphanInterval = 10 * time.Second
)

// Config is the ledger's configuration.
type Config struct {
	Region           string // recorded on execution records whose result names no region
	FreeCreditMicros int64  // signup credit of a new wallet
	PriceMicros      int64  // price of one execution
	// LanguagePrices overrides PriceMicros per (canonical) language. Optional.
	LanguagePrices map[string]int64
	// HoldTTL: a hold with no result after this long is released. It must exceed the
	// longest job including its redeliveries. Default 15 min.
	HoldTTL time.Duration
	// SweepInterval is the time between two sweeps of expired holds. Default 30 s.
	SweepInterval time.Duration
	// OrphanGrace: a hold whose reserver promised the job's owner record
	// (ReserveRequest.RecordsOwner) and whose job has none after this long was never
	// queued; its job is given up and the hold released (internal/orphans). It must
	// exceed the longest a live edge takes from its reserve to that record (a grace past
	// HoldTTL leaves such holds to expiry). Default 45 s.
	OrphanGrace time.Duration
	// OrphanInterval is the time between two sweeps of such holds. Default 10 s.
	OrphanInterval time.Duration
	// Workers is how many results are settled at once; default 32.
	Workers int
	// NakDelay is the redelivery delay of a result after a database error; default 2 s.
	NakDelay time.Duration
	// Now is the clock of entries, records and hold expiry; default time.Now. For tests.
	Now func() time.Time
}

// ConfigFrom takes the shared settings the ledger uses, with the ledger's defaults.
func ConfigFrom(c config.Config) Config {
	return Config{
		Region:           c.Region,
		FreeCreditMicros: c.FreeCreditMicros,
		PriceMicros:      c.PriceMicros,
		HoldTTL:          DefaultHoldTTL,
		SweepInterval:    DefaultSweepInterval,
		OrphanGrace:      DefaultOrphanGrace,
		OrphanInterval:   DefaultOrphanInterval,
	}
}

// LoadConfig is ConfigFrom plus the ledger's own variables:
// CODEEXEC_LEDGER_HOLD_TTL, CODEEXEC_LEDGER_SWEEP_INTERVAL, CODEEXEC_LEDGER_ORPHAN_GRACE and
// CODEEXEC_LEDGER_ORPHAN_INTERVAL (durations, e.g. "15m"),
// CODEEXEC_LEDGER_PRICES ("java=20000,cpp=15000": micro-dollars per execution).
func LoadConfig(c config.Config, lookup func(string) (string, bool)) (Config, error) {
	cfg := ConfigFrom(c)
	var errs []error
	dur := func(key string, dst *time.Duration) {
		if v, ok := lookup(key); ok && strings.TrimSpace(v) != "" {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				return
			}
			*dst = d
		}
	}
	dur("CODEEXEC_LEDGER_HOLD_TTL", &cfg.HoldTTL)
	dur("CODEEXEC_LEDGER_SWEEP_INTERVAL", &cfg.SweepInterval)
	dur("CODEEXEC_LEDGER_ORPHAN_GRACE", &cfg.OrphanGrace)
	dur("CODEEXEC_LEDGER_ORPHAN_INTERVAL", &cfg.OrphanInterval)
	if v, ok := lookup("CODEEXEC_LEDGER_PRICES"); ok {
		prices, err := pricing.Parse(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CODEEXEC_LEDGER_PRICES: %w", err))
		}
		cfg.LanguagePrices = prices
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.FreeCreditMicros < 0 {
		errs = append(errs, errors.New("free credit must not be negative"))
	}
	if err := c.prices().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.HoldTTL < 0 || c.SweepInterval < 0 || c.NakDelay < 0 || c.OrphanGrace < 0 || c.OrphanInterval < 0 {
		errs = append(errs, errors.New("hold TTL, sweep interval, orphan grace, orphan interval and nak delay must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) prices() pricing.Table {
	return pricing.Table{Default: c.PriceMicros, ByLanguage: maps.Clone(c.LanguagePrices)}
}

func (c Config) withDefaults() Config {
	if c.HoldTTL == 0 {
		c.HoldTTL = DefaultHoldTTL
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.OrphanGrace == 0 {
		c.OrphanGrace = DefaultOrphanGrace
	}
	if c.OrphanInterval == 0 {
		c.OrphanInterval = DefaultOrphanInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Service is a running ledger.
type Service struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	m       *telemetry.Metrics
	wallet  *wallet.Store
	records *records.Store
}

// New builds a ledger on an open NATS connection and database. Metrics are registered on
// reg (nil: none). Nothing is served before Run.
func New(cfg Config, nc *nats.Conn, db *mongo.Database, reg prometheus.Registerer, log *slog.Logger) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ledger config: %w", err)
	}
	if nc == nil || db == nil {
		return nil, errors.New("ledger needs a NATS connection and a database")
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "ledger")
	m, err := telemetry.New(reg)
	if err != nil {
		return nil, fmt.Errorf("register ledger metrics: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	w := wallet.NewStore(db, wallet.Options{
		FreeCreditMicros: cfg.FreeCreditMicros,
		Now:              cfg.Now,
		Log:              log,
		OnConflict:       m.AppendConflicts.Inc,
	})
	return &Service{cfg: cfg, nc: nc, js: js, log: log, m: m, wallet: w, records: records.NewStore(db)}, nil
}

// Run serves until ctx ends, then stops taking work, finishes what it holds and returns.
// It returns early with an error if it cannot start (indexes, subscriptions, the results
// consumer).
func (s *Service) Run(ctx context.Context) error {
	// A database that does not answer yet is waited for, as NATS and the streams are.
	if _, err := natsconn.Await(ctx, s.log, "the database (indexes of wallets and records)", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, errors.Join(s.wallet.EnsureIndexes(ctx), s.records.EnsureIndexes(ctx))
	}); err != nil {
		return err
	}
	// Handlers outlive ctx a little: requests already delivered get an answer.
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	srv := api.NewServer(s.nc, api.New(s.wallet, s.records, s.cfg.prices(), s.cfg.HoldTTL, s.cfg.Now, s.m), s.m, s.log)
	if err := srv.Start(handlerCtx); err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	consumer := billing.New(s.js, s.wallet, s.records, billing.Config{
		Region:   s.cfg.Region,
		Prices:   s.cfg.prices(),
		Workers:  s.cfg.Workers,
		NakDelay: s.cfg.NakDelay,
		Now:      s.cfg.Now,
	}, s.m, s.log)
	wg.Go(func() {
		if err := consumer.Run(runCtx); err != nil {
			errc <- err
			cancel()
		}
	})
	sweeper := &expiry.Sweeper{Wallet: s.wallet, TTL: s.cfg.HoldTTL, Now: s.cfg.Now, Metrics: s.m, Log: s.log}
	wg.Go(func() { s.sweepEvery(runCtx, s.cfg.SweepInterval, "expired holds", sweeper.Sweep) })
	wg.Go(func() { s.sweepOrphans(runCtx) })
	s.log.Info("ledger running", "hold_ttl", s.cfg.HoldTTL, "orphan_grace", s.cfg.OrphanGrace, "price_micros", s.cfg.PriceMicros)

	<-runCtx.Done()
	stopCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer stop()
	srv.Stop(stopCtx)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// sweepOrphans binds the job index (waiting for provisioning to make it) and releases the
// holds of jobs that were never queued until ctx ends.
func (s *Service) sweepOrphans(ctx context.Context) {
	index, err := natsconn.Await(ctx, s.log, "the job index "+subjects.JobIndexBucket+" (made by `codeexec provision`)",
		func(ctx context.Context) (jetstream.KeyValue, error) {
			return s.js.KeyValue(ctx, subjects.JobIndexBucket)
		})
	if err != nil {
		return // stopped while waiting
	}
	sw := &orphans.Sweeper{Wallet: s.wallet, Index: index, Grace: s.cfg.OrphanGrace, Now: s.cfg.Now, Metrics: s.m, Log: s.log}
	s.sweepEvery(ctx, s.cfg.OrphanInterval, "orphaned holds", sw.Sweep)
}

// sweepEvery runs sweep at once, then every interval until ctx ends.
func (s *Service) sweepEvery(ctx context.Context, interval time.Duration, what string, sweep func(context.Context) (int, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep "+what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep releases expired holds once, now. For tests and operators' tools.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	sw := &expiry.Sweeper{Wallet: s.wallet, TTL: s.cfg.HoldTTL, Now: s.cfg.Now, Metrics: s.m, Log: s.log}
	return sw.Sweep(ctx)
}
