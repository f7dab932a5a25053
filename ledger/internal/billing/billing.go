// Package billing charges finished jobs from the results stream, exactly once per job,
// and writes their execution records.
package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/ledger/internal/pricing"
	"github.com/codeexec/codeexec/ledger/internal/records"
	"github.com/codeexec/codeexec/ledger/internal/telemetry"
	"github.com/codeexec/codeexec/ledger/internal/wallet"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/trace"
)

// Consumer settings.
const (
	// AckWait is how long the server waits for the ack of one result before redelivering
	// (set by provisioning: streams.ChargesConsumerConfig).
	AckWait = streams.ChargesAckWait
	// workTimeout bounds the handling of one result, below AckWait.
	workTimeout = 20 * time.Second
	// versionNakDelay is the retry delay of a result of a newer message version: a ledger
	// that understands it (after an upgrade) will take it.
	versionNakDelay = time.Minute
)

// Config tunes a Consumer.
type Config struct {
	Region   string        // recorded for results that name no region
	Prices   pricing.Table // prices of jobs that were never reserved
	Workers  int           // results settled at once; default 48
	NakDelay time.Duration // redelivery delay after a database error; default 2 s
	// ProgressEvery is how often a result still being settled tells the server it is
	// in progress, so that a slow database does not make it redeliver; default AckWait/3.
	ProgressEvery time.Duration
	Now           func() time.Time
}

// Consumer pulls results and settles them.
type Consumer struct {
	js      jetstream.JetStream
	wallet  *wallet.Store
	records *records.Store
	cfg     Config
	m       *telemetry.Metrics
	log     *slog.Logger
}

// New returns a Consumer.
func New(js jetstream.JetStream, w *wallet.Store, r *records.Store, cfg Config, m *telemetry.Metrics, log *slog.Logger) *Consumer {
	if cfg.Workers <= 0 {
		cfg.Workers = 48
	}
	if cfg.NakDelay <= 0 {
		cfg.NakDelay = 2 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = AckWait / 3
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Consumer{js: js, wallet: w, records: r, cfg: cfg, m: m, log: log}
}

// Run settles results until ctx ends. It is a pipeline: Workers settle results side by
// side, each taking the next result as soon as it finished one, from a client buffer the
// library keeps filled with about as many results as there are workers (a result waits
// there for a worker only briefly, so its ack wait is the server's guard against a dead
// ledger, not against a busy one). On stop, results already delivered to this process are
// settled (with a context that outlives ctx), so a stop never leaves them to AckWait.
func (c *Consumer) Run(ctx context.Context) error {
	for {
		// Bound, never made or changed here: its settings are provisioning's. A consumer
		// not there yet (or deleted while the ledger runs) is waited for.
		cons, err := natsconn.Await(ctx, c.log, "the charges consumer "+subjects.ChargesConsumer+" on "+subjects.ResultsStream+" (made by `codeexec provision`)",
			func(ctx context.Context) (jetstream.Consumer, error) {
				return c.js.Consumer(ctx, subjects.ResultsStream, subjects.ChargesConsumer)
			})
		if err != nil {
			return nil // stopped while waiting
		}
		if err := c.pull(ctx, cons); err != nil {
			c.log.Warn("pull results", "err", err)
		}
		if sleep(ctx, c.cfg.NakDelay) != nil {
			return nil
		}
	}
}

// pull runs the workers over one message iterator until ctx ends or the iterator closes.
func (c *Consumer) pull(ctx context.Context, cons jetstream.Consumer) error {
	if cons == nil {
		return errors.New("no results consumer")
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(c.cfg.Workers))
	if err != nil {
		return fmt.Errorf("pull results from %s: %w", subjects.ChargesConsumer, err)
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			iter.Drain() // no more pulls; what was delivered still comes out of Next
		case <-stopped:
		}
	}()
	defer close(stopped)
	settleCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() {
			for {
				msg, err := iter.Next()
				switch {
				case errors.Is(err, jetstream.ErrMsgIteratorClosed):
					return
				case err != nil:
					// Missed heartbeats and the like: the library pulls again by itself.
					c.log.Debug("next result", "err", err)
					_ = sleep(ctx, 100*time.Millisecond)
					continue
				}
				c.handleWithProgress(settleCtx, msg)
			}
		})
	}
	wg.Wait()
	iter.Stop()
	return nil
}

// handleWithProgress handles msg, telling the server every ProgressEvery that it is still
// being worked on.
func (c *Consumer) handleWithProgress(ctx context.Context, msg jetstream.Msg) {
	stop := every(c.cfg.ProgressEvery, func() {
		if err := msg.InProgress(); err != nil {
			c.log.Debug("tell the server a result is in progress", "subject", msg.Subject(), "err", err)
		}
	})
	defer stop()
	c.handle(ctx, msg)
}

// every calls fn each period until stop is called; stop waits for a call under way. No
// goroutine waits in between: a timer re-arms itself.
func every(period time.Duration, fn func()) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // the callback must see t assigned
	defer mu.Unlock()
	t = time.AfterFunc(period, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		fn()
		t.Reset(period)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(ctx, workTimeout)
	defer cancel()
	log := c.log.With("subject", msg.Subject())
	var res messages.Result
	if err := json.Unmarshal(msg.Data(), &res); err != nil {
		c.reject(msg, log, "result is not valid JSON", err)
		return
	}
	jobID := subjects.JobIDFromResult(msg.Subject())
	if res.JobID == "" {
		res.JobID = jobID
	}
	log = log.With("job_id", res.JobID, "trace_id", trace.IDOf(res.TraceParent))
	switch {
	case res.V > messages.Version:
		log.Warn("result of a newer message version; leaving it for an upgraded ledger", "v", res.V)
		c.m.Results.WithLabelValues("retry").Inc()
		_ = msg.NakWithDelay(versionNakDelay)
		return
	case res.JobID != jobID:
		c.reject(msg, log, "result's jobId does not match its subject", nil)
		return
	}
	err := c.Apply(ctx, res)
	switch {
	case errors.Is(err, wallet.ErrInvalid):
		c.reject(msg, log, "result cannot be settled", err)
	case err != nil:
		log.Warn("settle result; will retry", "err", err)
		c.m.Results.WithLabelValues("retry").Inc()
		if err := msg.NakWithDelay(c.cfg.NakDelay); err != nil {
			log.Warn("nak result", "err", err)
		}
	default:
		if err := msg.Ack(); err != nil {
			log.Warn("ack result (it will come again and be found settled)", "err", err)
		}
	}
}

func (c *Consumer) reject(msg jetstream.Msg, log *slog.Logger, reason string, err error) {
	log.Error("rejecting result", "reason", reason, "err", err)
	c.m.Results.WithLabelValues("rejected").Inc()
	if err := msg.TermWithReason(reason); err != nil {
		log.Warn("term result", "err", err)
	}
}

// Apply settles res and records it, each exactly once, whatever the number of calls: a
// chargeable status charges the job's hold (or, with no hold, the result's price or the
// configured one, from available but never below zero: the shortfall is counted as
// unpaid); internal_error (or no status) releases it.
func (c *Consumer) Apply(ctx context.Context, res messages.Result) error {
	charge := res.Status.Chargeable()
	reason := wallet.ReasonResult
	if !charge {
		reason = wallet.ReasonInternalError
	}
	direct := res.PriceMicros
	if direct <= 0 {
		direct = c.cfg.Prices.For(res.Language)
	}
	st, err := c.wallet.Close(ctx, res.JobID, res.UserID, charge, direct, reason)
	if err != nil {
		return fmt.Errorf("settle job %s: %w", res.JobID, err)
	}
	recorded, err := c.records.Insert(ctx, records.FromResult(res, st.ChargedMicros, c.cfg.Region, c.cfg.Now()))
	if err != nil {
		return err
	}
	// Each shortfall is counted once: with the close entry that records it, or, for an
	// account that has no wallet (nothing written), with the job's record.
	if st.UnpaidMicros > 0 && (st.Created || st.NoWallet && recorded) {
		c.m.Unpaid.Add(float64(st.UnpaidMicros))
		c.log.Warn("job ran without a hold and its wallet could not pay it",
			"job_id", res.JobID, "user_id", res.UserID, "charged_micros", st.ChargedMicros,
			"unpaid_micros", st.UnpaidMicros, "no_wallet", st.NoWallet)
	}
	if st.Created {
		log := c.log.With("job_id", res.JobID, "trace_id", trace.IDOf(res.TraceParent))
		switch st.Entry.Kind {
		case wallet.KindCharge:
			c.m.Charges.WithLabelValues(string(res.Status)).Inc()
			c.m.Revenue.Add(float64(st.ChargedMicros))
			log.Info("job charged", "status", res.Status, "charged_micros", st.ChargedMicros)
		case wallet.KindRelease:
			c.m.Releases.WithLabelValues(st.Entry.Reason).Inc()
			log.Info("hold released", "reason", st.Entry.Reason)
		}
	}
	if st.Created || recorded {
		c.m.Results.WithLabelValues("applied").Inc()
	} else {
		c.m.Results.WithLabelValues("duplicate").Inc()
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
