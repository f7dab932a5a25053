// Package agent is the runner's NATS side: it binds the durable job consumer of every
// served language, pulls one job per free slot, runs it in the sandbox, stores the result
// in the results stream (then notifies the waiting edge) and acks; it also announces the
// runner with heartbeats.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Config tunes an Agent.
type Config struct {
	RunnerID string
	Region   string
	// Slots is how many jobs run at once.
	Slots int
	// FetchExpiry bounds one pull request; default 1 s. It is also the longest a drain
	// waits for the pulls in flight.
	FetchExpiry time.Duration
	// NakDelay is how long a job that hit an infrastructure failure waits before redelivery.
	NakDelay time.Duration
	// ProgressEvery is the interval of InProgress pings while a job runs; default a third
	// of the shortest AckWait of the provisioned job consumers, at most 10 s.
	ProgressEvery time.Duration
	// HeartbeatEvery is the interval of heartbeats; default messages.HeartbeatInterval.
	HeartbeatEvery time.Duration
}

func (c *Config) defaults(langs int) {
	if c.Slots < 1 {
		c.Slots = 1
	}
	if c.FetchExpiry == 0 {
		c.FetchExpiry = time.Second
	}
	if c.NakDelay == 0 {
		c.NakDelay = 3 * time.Second
	}
	if c.HeartbeatEvery == 0 {
		c.HeartbeatEvery = messages.HeartbeatInterval
	}
}

// Sandbox is what the agent needs of the sandbox.
type Sandbox interface {
	Run(ctx context.Context, c *sandbox.Container, job sandbox.Job) (sandbox.Outcome, error)
	Remove(ctx context.Context, c *sandbox.Container)
}

// Pool hands out fresh containers.
type Pool interface {
	// Take returns a fresh container for a job of lang with the limits lim.
	Take(ctx context.Context, lang, jobID string, lim messages.Limits) (*sandbox.Container, bool, error)
	// Refill says that a job taken from lang is over, so its container can be replaced.
	Refill(lang string)
}

// Agent pulls and runs jobs.
type Agent struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	sb      Sandbox
	pool    Pool
	catalog *languages.Catalog
	langs   []*languages.Language
	metrics *Metrics
	log     *slog.Logger

	slots chan struct{}
	// freed is closed, and replaced, whenever a slot is given back.
	freedMu sync.Mutex
	freed   chan struct{}
	// maxDeliver is each consumer's MaxDeliver (by language), read-only once Run pulls.
	maxDeliver map[string]uint64
	draining   atomic.Bool
	removals   sync.WaitGroup
	// index is the job index bucket, where a started job is marked running (nil: none).
	index jetstream.KeyValue
}

// New returns an Agent serving langs (entries of catalog).
func New(cfg Config, nc *nats.Conn, sb Sandbox, pool Pool, catalog *languages.Catalog,
	langs []*languages.Language, m *Metrics, log *slog.Logger) (*Agent, error) {
	if len(langs) == 0 {
		return nil, errors.New("no languages to serve")
	}
	cfg.defaults(len(langs))
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Agent{
		cfg: cfg, nc: nc, js: js, sb: sb, pool: pool, catalog: catalog, langs: langs,
		metrics: m, log: log, slots: make(chan struct{}, cfg.Slots), freed: make(chan struct{}),
		maxDeliver: map[string]uint64{},
	}, nil
}

// Run pulls jobs until ctx ends, then drains: it stops pulling, finishes the jobs it holds
// and publishes their results, and returns once their containers are removed.
func (a *Agent) Run(ctx context.Context) error {
	results, err := natsconn.Await(ctx, a.log, "the results stream "+subjects.ResultsStream+" (made by `codeexec provision`)",
		func(ctx context.Context) (jetstream.Stream, error) { return a.js.Stream(ctx, subjects.ResultsStream) })
	if err != nil {
		return err
	}
	if a.index, err = a.js.KeyValue(ctx, subjects.JobIndexBucket); err != nil {
		a.log.Warn("no job index: jobs will not show as running", "bucket", subjects.JobIndexBucket, "err", err)
		a.index = nil
	}
	consumers := make([]jetstream.Consumer, len(a.langs))
	for i, l := range a.langs {
		consumers[i], err = natsconn.Await(ctx, a.log, "the job consumer "+subjects.JobConsumer(a.cfg.Region, l.Name)+" (made by `codeexec provision`)",
			func(ctx context.Context) (jetstream.Consumer, error) { return a.bind(ctx, l.Name) })
		if err != nil {
			return err
		}
		a.maxDeliver[l.Name] = streams.JobMaxDeliver
		ackWait := streams.JobAckWait
		if info := consumers[i].CachedInfo(); info != nil {
			if info.Config.MaxDeliver > 0 {
				a.maxDeliver[l.Name] = uint64(info.Config.MaxDeliver)
			}
			if info.Config.AckWait > 0 {
				ackWait = info.Config.AckWait
			}
		}
		if progress := min(10*time.Second, ackWait/3); a.cfg.ProgressEvery == 0 || progress < a.cfg.ProgressEvery {
			a.cfg.ProgressEvery = progress
		}
	}
	a.metrics.SlotsFree.Set(float64(a.cfg.Slots))
	a.metrics.Slots.Set(float64(a.cfg.Slots))
	for _, l := range a.langs {
		a.metrics.SlotsBusy.WithLabelValues(l.Name).Set(0)
	}

	hbCtx, stopHeartbeats := context.WithCancel(context.WithoutCancel(ctx))
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		a.heartbeats(hbCtx)
	}()

	var jobs, pullers sync.WaitGroup
	jobCtx := context.WithoutCancel(ctx) // jobs outlive the pull loop: drained, not cut
	pullers.Add(1)
	go func() {
		defer pullers.Done()
		a.deadLetters(ctx)
	}()
	for i, l := range a.langs {
		pullers.Add(1)
		go func() {
			defer pullers.Done()
			a.pull(ctx, jobCtx, l, consumers[i], results, &jobs)
		}()
	}
	a.log.Info("runner agent started", "runner_id", a.cfg.RunnerID, "region", a.cfg.Region,
		"languages", a.names(), "slots", a.cfg.Slots)

	<-ctx.Done()
	a.draining.Store(true)
	a.heartbeat(jobCtx)
	a.log.Info("draining: no more pulls, finishing held jobs")
	pullers.Wait()
	jobs.Wait()
	a.removals.Wait()
	stopHeartbeats()
	hb.Wait()
	a.log.Info("drained")
	return nil
}

// bind binds the provisioned durable consumer of lang in the runner's region. A runner
// never creates or changes it: its in-flight limit is the fleet's, and its ack wait the
// operator's (`codeexec provision`).
func (a *Agent) bind(ctx context.Context, lang string) (jetstream.Consumer, error) {
	name := subjects.JobConsumer(a.cfg.Region, lang)
	c, err := a.js.Consumer(ctx, subjects.JobsStream, name)
	if err != nil {
		return nil, fmt.Errorf("job consumer %s: %w", name, err)
	}
	return c, nil
}

// pull takes jobs of lang until ctx ends. It asks for one job only while a slot is free,
// but does not hold the slot while it waits, so that every language is listened to at once
// and a job is picked up as soon as it is published. A job that arrives just after another
// language took the last free slot waits here for one, with in-progress pings: at most one
// such job per language.
func (a *Agent) pull(ctx, jobCtx context.Context, lang *languages.Language, cons jetstream.Consumer,
	results jetstream.Stream, jobs *sync.WaitGroup) {
	backoff := 100 * time.Millisecond
	for {
		if !a.waitFree(ctx) {
			return
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(a.cfg.FetchExpiry))
		if err != nil {
			a.log.Warn("pull job", "language", lang.Name, "err", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		var msg jetstream.Msg
		for m := range batch.Messages() {
			msg = m
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && msg == nil {
			a.log.Debug("pull job ended", "language", lang.Name, "err", err)
		}
		backoff = 100 * time.Millisecond
		if msg == nil {
			continue
		}
		if !a.acquire(ctx, msg) {
			// Draining before the job started: give it back at once for another runner.
			if err := msg.Nak(); err != nil {
				a.log.Warn("give back a job not started", "language", lang.Name, "err", err)
			}
			return
		}
		jobs.Add(1)
		busy := a.metrics.SlotsBusy.WithLabelValues(lang.Name)
		busy.Inc()
		go func() {
			defer jobs.Done()
			defer a.release()
			defer busy.Dec()
			a.handle(jobCtx, lang, msg, results)
		}()
	}
}

// waitFree returns true once a slot is free (without taking it), false when ctx ends.
func (a *Agent) waitFree(ctx context.Context) bool {
	for {
		a.freedMu.Lock()
		freed := a.freed
		a.freedMu.Unlock()
		if a.free() > 0 {
			return ctx.Err() == nil
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		}
	}
}

// acquire takes a slot for msg, pinging in-progress while it waits; false when ctx ends first.
func (a *Agent) acquire(ctx context.Context, msg jetstream.Msg) bool {
	if ctx.Err() != nil {
		return false
	}
	ping := time.NewTicker(a.cfg.ProgressEvery)
	defer ping.Stop()
	for {
		select {
		case a.slots <- struct{}{}:
			a.metrics.SlotsFree.Set(float64(a.free()))
			return true
		case <-ping.C:
			_ = msg.InProgress()
		case <-ctx.Done():
			return false
		}
	}
}

func (a *Agent) release() {
	<-a.slots
	a.metrics.SlotsFree.Set(float64(a.free()))
	a.freedMu.Lock()
	close(a.freed)
	a.freed = make(chan struct{})
	a.freedMu.Unlock()
}

func (a *Agent) free() int { return a.cfg.Slots - len(a.slots) }

func (a *Agent) names() []string {
	n := make([]string, len(a.langs))
	for i, l := range a.langs {
		n[i] = l.Name
	}
	return n
}
