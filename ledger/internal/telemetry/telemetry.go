// Package telemetry holds the ledger's Prometheus metrics (prefix codeexec_ledger_).
package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/shared/metrics"
)

// Metrics are the ledger's collectors.
type Metrics struct {
	// Charges counts jobs charged, by the result's status.
	Charges *prometheus.CounterVec
	// Revenue sums what was charged.
	Revenue prometheus.Counter
	// Releases counts holds released, by reason (internal_error, expired, orphaned).
	Releases *prometheus.CounterVec
	// Reservations counts reserve requests that held or were refused for funds, by
	// outcome (ok: a new hold, existing: the job's open hold returned, refused).
	Reservations *prometheus.CounterVec
	// HoldsOutstanding is the number of open holds, as of the last sweep.
	HoldsOutstanding prometheus.Gauge
	// OldestHoldAge is how old the oldest open hold was at the last sweep (0: none).
	OldestHoldAge prometheus.Gauge
	// HoldsExpired counts holds the sweeper released.
	HoldsExpired prometheus.Counter
	// Results counts result messages by outcome (applied, duplicate, retry, rejected).
	Results *prometheus.CounterVec
	// Unpaid sums the micro-dollars of jobs charged without a hold that the wallet could
	// not cover (balances never go below zero).
	Unpaid prometheus.Counter
	// AppendConflicts counts appends that lost a race for a sequence number.
	AppendConflicts prometheus.Counter
	// RPCDuration is the latency of the ledger's request-reply handlers.
	RPCDuration *prometheus.HistogramVec
}

// New makes the metrics and registers them on reg. A collector registered before (a
// restarted service on the same registry) is reused.
func New(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "codeexec", "ledger"
	m := &Metrics{
		Charges: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "charges_total", Help: "Jobs charged, by result status."}, []string{"status"}),
		Revenue: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "revenue_micros_total", Help: "Micro-dollars charged."}),
		Releases: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "releases_total", Help: "Holds released, by reason."}, []string{"reason"}),
		Reservations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "reservations_total", Help: "Reserve requests, by outcome (ok, existing, refused)."}, []string{"outcome"}),
		HoldsOutstanding: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "holds_outstanding", Help: "Open holds as of the last sweep."}),
		OldestHoldAge: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "oldest_hold_age_seconds", Help: "Age of the oldest open hold as of the last sweep (0: none); holds older than the hold TTL are released by the sweeper."}),
		HoldsExpired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "holds_expired_total", Help: "Holds released by the sweeper after their TTL."}),
		Results: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "results_total", Help: "Result messages handled, by outcome (applied, duplicate, retry, rejected)."}, []string{"outcome"}),
		Unpaid: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "unpaid_micros_total", Help: "Micro-dollars of jobs run without a hold that the wallet could not cover."}),
		AppendConflicts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "append_conflicts_total", Help: "Appends that lost the race for an account's next sequence number."}),
		RPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "rpc_duration_seconds", Help: "Latency of ledger requests, by subject and outcome.",
			Buckets: metrics.LatencyBuckets}, []string{"subject", "outcome"}),
	}
	var err error
	m.Charges = register(reg, m.Charges, &err)
	m.Revenue = register(reg, m.Revenue, &err)
	m.Releases = register(reg, m.Releases, &err)
	m.Reservations = register(reg, m.Reservations, &err)
	m.HoldsOutstanding = register(reg, m.HoldsOutstanding, &err)
	m.OldestHoldAge = register(reg, m.OldestHoldAge, &err)
	m.HoldsExpired = register(reg, m.HoldsExpired, &err)
	m.Results = register(reg, m.Results, &err)
	m.Unpaid = register(reg, m.Unpaid, &err)
	m.AppendConflicts = register(reg, m.AppendConflicts, &err)
	m.RPCDuration = register(reg, m.RPCDuration, &err)
	// Exported at 0 before the first event, so that rates and alerts see them from the start.
	m.Charges.WithLabelValues("succeeded")
	for _, reason := range []string{"internal_error", "expired", "orphaned"} {
		m.Releases.WithLabelValues(reason)
	}
	for _, outcome := range []string{"ok", "existing", "refused"} {
		m.Reservations.WithLabelValues(outcome)
	}
	for _, outcome := range []string{"applied", "duplicate", "retry", "rejected"} {
		m.Results.WithLabelValues(outcome)
	}
	return m, err
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if reg == nil || *errp != nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errp = err
	}
	return c
}
