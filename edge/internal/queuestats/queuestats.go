// Package queuestats exports the mesh's queues from JetStream: jobs waiting, in flight and
// redelivered per region and language with the age of the oldest waiting job, the ledger's
// billing lag, and dead letters. A background loop reads the job consumers, the ledger's
// consumer and the dead-letter streams every few seconds and keeps what it read; a
// Prometheus scrape only reads that copy, so it never waits on NATS.
//
// The edge hosts it: it is present in every deployment (the all-in-one and every cluster),
// it already reads the jobs and results streams, and it is where a client's wait is felt.
// Every edge exports the same series; aggregate them with max by (region, language).
package queuestats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/shared/metrics"

	"github.com/codeexec/codeexec/shared/subjects"
)

// DefaultEvery is how often the queues are read.
const DefaultEvery = 2 * time.Second

// pollTimeout bounds one read of every queue.
const pollTimeout = 5 * time.Second

// Sources of a poll, the values of the poll_errors_total label.
const (
	sourceJobs        = "jobs"
	sourceBilling     = "billing"
	sourceDeadLetters = "dead_letters"
)

// jobQueue is what one job consumer (one region and language) held at the last poll.
type jobQueue struct {
	region, language string
	pending          uint64
	inFlight         int
	redelivered      int
	// oldest is how old the oldest waiting job was at the last poll (0: none waits).
	oldest time.Duration
}

// snapshot is one poll's reading; a part whose read failed is left out (ok false).
type snapshot struct {
	at   time.Time // local time of the poll, from which ages keep growing between polls
	jobs []jobQueue
	// jobsOK, billingOK and deadLettersOK say which parts were read.
	jobsOK, billingOK, deadLettersOK bool

	unbilled, billingInFlight uint64
	oldestUnbilled            time.Duration

	deadLetters, unhandledAdvisories uint64
}

// oldestSeen caches the oldest waiting message of a consumer, so that it is fetched once,
// not at every poll: it stays the oldest until the consumer delivers past it.
type oldestSeen struct {
	seq uint64
	at  time.Time
}

// Collector reads the queues in the background and exports the last reading.
type Collector struct {
	js    jetstream.JetStream
	every time.Duration
	log   *slog.Logger
	now   func() time.Time

	// oldest is keyed by stream and consumer (see oldestKey); only the poll loop touches it.
	oldest map[string]oldestSeen

	mu   sync.Mutex
	last snapshot

	pending, inFlight, redelivered, oldestAge      *prometheus.Desc
	unbilled, billingInFlight, oldestUnbilled      *prometheus.Desc
	deadLetters, unhandledAdvisories, lastPollTime *prometheus.Desc
	pollErrors                                     *prometheus.CounterVec
	failing                                        map[string]bool
}

// New returns a Collector reading through js every every (0: DefaultEvery). Register it
// on a registry, then Run it.
func New(js jetstream.JetStream, every time.Duration, log *slog.Logger) *Collector {
	if every <= 0 {
		every = DefaultEvery
	}
	rl := []string{"region", "language"}
	c := &Collector{
		js: js, every: every, log: log, now: time.Now,
		oldest:  map[string]oldestSeen{},
		failing: map[string]bool{},
		pending: prometheus.NewDesc("codeexec_queue_jobs_pending",
			"Jobs waiting for a runner (not delivered yet), by region and language.", rl, nil),
		inFlight: prometheus.NewDesc("codeexec_queue_jobs_in_flight",
			"Jobs delivered to a runner and not acknowledged yet (ack pending), by region and language.", rl, nil),
		redelivered: prometheus.NewDesc("codeexec_queue_jobs_redelivered",
			"Jobs in flight that were delivered more than once (a runner died holding them, or the platform failed), by region and language.", rl, nil),
		oldestAge: prometheus.NewDesc("codeexec_queue_oldest_job_age_seconds",
			"Age of the oldest job waiting for a runner (0: none waits), by region and language.", rl, nil),
		unbilled: prometheus.NewDesc("codeexec_queue_results_unbilled",
			"Results the ledger has not taken yet (its consumer's pending): the billing lag.", nil, nil),
		billingInFlight: prometheus.NewDesc("codeexec_queue_results_billing_in_flight",
			"Results the ledger took and has not settled yet (its consumer's ack pending).", nil, nil),
		oldestUnbilled: prometheus.NewDesc("codeexec_queue_oldest_unbilled_result_age_seconds",
			"Age of the oldest result the ledger has not taken yet (0: none).", nil, nil),
		deadLetters: prometheus.NewDesc("codeexec_queue_dead_letters_total",
			"Dead-letter records ever stored: jobs that ran out of deliveries.", nil, nil),
		unhandledAdvisories: prometheus.NewDesc("codeexec_queue_dead_letters_unhandled",
			"Jobs out of deliveries whose dead letter no runner has recorded yet.", nil, nil),
		lastPollTime: prometheus.NewDesc("codeexec_queue_last_poll_timestamp_seconds",
			"When the queues were last read (Unix time), whatever parts of it failed.", nil, nil),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_queue_poll_errors_total",
			Help: "Reads of the queues that failed, by source (jobs, billing, dead_letters).",
		}, []string{"source"}),
	}
	for _, source := range []string{sourceJobs, sourceBilling, sourceDeadLetters} {
		c.pollErrors.WithLabelValues(source) // exported at 0 before the first failure
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.inFlight, c.redelivered, c.oldestAge,
		c.unbilled, c.billingInFlight, c.oldestUnbilled, c.deadLetters, c.unhandledAdvisories, c.lastPollTime} {
		ch <- d
	}
	c.pollErrors.Describe(ch)
}

// Collect implements prometheus.Collector from the last poll only: it never waits on NATS.
// Ages go on growing from the poll to the scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s := c.last
	c.mu.Unlock()
	c.pollErrors.Collect(ch)
	if s.at.IsZero() {
		return
	}
	since := c.now().Sub(s.at)
	grown := func(age time.Duration) float64 {
		if age <= 0 {
			return 0
		}
		return (age + since).Seconds()
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.lastPollTime, float64(s.at.UnixNano())/1e9)
	if s.jobsOK {
		for _, q := range s.jobs {
			gauge(c.pending, float64(q.pending), q.region, q.language)
			gauge(c.inFlight, float64(q.inFlight), q.region, q.language)
			gauge(c.redelivered, float64(q.redelivered), q.region, q.language)
			gauge(c.oldestAge, grown(q.oldest), q.region, q.language)
		}
	}
	if s.billingOK {
		gauge(c.unbilled, float64(s.unbilled))
		gauge(c.billingInFlight, float64(s.billingInFlight))
		gauge(c.oldestUnbilled, grown(s.oldestUnbilled))
	}
	if s.deadLettersOK {
		ch <- prometheus.MustNewConstMetric(c.deadLetters, prometheus.CounterValue, float64(s.deadLetters))
		gauge(c.unhandledAdvisories, float64(s.unhandledAdvisories))
	}
}

// Run reads the queues every period until ctx ends.
func (c *Collector) Run(ctx context.Context) { metrics.Poll(ctx, c.every, c.Poll) }

// Poll reads every queue once and keeps the reading for the scrapes.
func (c *Collector) Poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	s := snapshot{at: c.now()}
	var err error
	s.jobs, err = c.readJobs(ctx)
	s.jobsOK = c.outcome(ctx, sourceJobs, err)
	s.unbilled, s.billingInFlight, s.oldestUnbilled, err = c.readBilling(ctx)
	s.billingOK = c.outcome(ctx, sourceBilling, err)
	s.deadLetters, s.unhandledAdvisories, err = c.readDeadLetters(ctx)
	s.deadLettersOK = c.outcome(ctx, sourceDeadLetters, err)
	c.mu.Lock()
	c.last = s
	c.mu.Unlock()
}

// outcome counts a failed read and logs when a source starts or stops failing (not at
// every poll); it reports whether the read succeeded.
func (c *Collector) outcome(ctx context.Context, source string, err error) bool {
	if err == nil {
		if c.failing[source] {
			c.log.Info("queue metrics readable again", "source", source)
			c.failing[source] = false
		}
		return true
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return false
	}
	c.pollErrors.WithLabelValues(source).Inc()
	if !c.failing[source] {
		c.log.Warn("read queue metrics; their series are left out until it works", "source", source, "err", err)
		c.failing[source] = true
	}
	return false
}

// readJobs lists the job consumers (one request) and finds each one's oldest waiting job.
func (c *Collector) readJobs(ctx context.Context) ([]jobQueue, error) {
	stream, err := c.js.Stream(ctx, subjects.JobsStream)
	if err != nil {
		return nil, fmt.Errorf("jobs stream: %w", err)
	}
	var queues []jobQueue
	seen := map[string]bool{}
	lister := stream.ListConsumers(ctx)
	for info := range lister.Info() {
		region, language, ok := jobsFilter(info.Config.FilterSubject)
		if !ok {
			continue
		}
		seen[oldestKey(info)] = true
		q := jobQueue{region: region, language: language, pending: info.NumPending,
			inFlight: info.NumAckPending, redelivered: info.NumRedelivered}
		if info.NumPending > 0 {
			at, err := c.oldestWaiting(ctx, stream, info)
			if err != nil {
				return nil, err
			}
			q.oldest = max(info.TimeStamp.Sub(at), time.Nanosecond)
		}
		queues = append(queues, q)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list job consumers: %w", err)
	}
	for key := range c.oldest {
		if strings.HasPrefix(key, subjects.JobsStream+"/") && !seen[key] {
			delete(c.oldest, key) // a consumer deleted since
		}
	}
	return queues, nil
}

// oldestWaiting is the time the consumer's first undelivered message was stored: the
// first on its filter after the last delivered one. It is fetched only when the consumer
// has delivered past the one cached.
func (c *Collector) oldestWaiting(ctx context.Context, stream jetstream.Stream, info *jetstream.ConsumerInfo) (time.Time, error) {
	next := info.Delivered.Stream + 1
	if o, ok := c.oldest[oldestKey(info)]; ok && o.seq >= next {
		return o.at, nil
	}
	msg, err := stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(info.Config.FilterSubject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return info.TimeStamp, nil // taken meanwhile
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("oldest job of %s: %w", info.Name, err)
	}
	c.oldest[oldestKey(info)] = oldestSeen{seq: msg.Sequence, at: msg.Time}
	return msg.Time, nil
}

func oldestKey(info *jetstream.ConsumerInfo) string { return info.Stream + "/" + info.Name }

// jobsFilter parses a job consumer's filter, exec.jobs.<region>.<language>.
func jobsFilter(filter string) (region, language string, ok bool) {
	rest, ok := strings.CutPrefix(filter, "exec.jobs.")
	if !ok {
		return "", "", false
	}
	region, language, ok = strings.Cut(rest, ".")
	if !ok || !subjects.Token(region) || !subjects.Token(language) || subjects.Jobs(region, language) != filter {
		return "", "", false
	}
	return region, language, true
}

// readBilling reads the ledger's consumer of results: what it has not taken, what it is
// settling, and how old the oldest result it has not taken is.
func (c *Collector) readBilling(ctx context.Context) (unbilled, inFlight uint64, oldest time.Duration, err error) {
	cons, err := c.js.Consumer(ctx, subjects.ResultsStream, subjects.ChargesConsumer)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("ledger consumer %s: %w", subjects.ChargesConsumer, err)
	}
	info := cons.CachedInfo()
	if info.NumPending > 0 {
		stream, err := c.js.Stream(ctx, subjects.ResultsStream)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("results stream: %w", err)
		}
		filter := info.Config.FilterSubject
		if filter == "" {
			filter = subjects.ResultsAll
		}
		info.Config.FilterSubject = filter
		at, err := c.oldestWaiting(ctx, stream, info)
		if err != nil {
			return 0, 0, 0, err
		}
		oldest = max(info.TimeStamp.Sub(at), time.Nanosecond)
	}
	return info.NumPending, uint64(info.NumAckPending), oldest, nil
}

// readDeadLetters reads how many dead letters were ever recorded (the dead-letter stream's
// last sequence: one message per job) and how many advisories wait for a runner.
func (c *Collector) readDeadLetters(ctx context.Context) (recorded, unhandled uint64, err error) {
	dl, err := c.js.Stream(ctx, subjects.DeadLettersStream)
	if err != nil {
		return 0, 0, fmt.Errorf("dead-letter stream: %w", err)
	}
	adv, err := c.js.Stream(ctx, subjects.JobAdvisoriesStream)
	if err != nil {
		return 0, 0, fmt.Errorf("advisories stream: %w", err)
	}
	return dl.CachedInfo().State.LastSeq, adv.CachedInfo().State.Msgs, nil
}
