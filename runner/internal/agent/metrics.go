package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/shared/metrics"
)

// Metrics are the runner's Prometheus series, prefixed codeexec_runner_.
type Metrics struct {
	Jobs           *prometheus.CounterVec   // jobs_total{language,status}
	JobDuration    *prometheus.HistogramVec // job_duration_seconds{language}
	ContainerStart prometheus.Histogram     // container_start_seconds
	// ContainerRemove is container_remove_seconds.
	ContainerRemove prometheus.Histogram
	PoolWarm        *prometheus.GaugeVec // pool_warm{language}
	PoolTarget      *prometheus.GaugeVec // pool_target{language}
	SlotsFree       prometheus.Gauge     // slots_free
	Slots           prometheus.Gauge     // slots
	SlotsBusy       *prometheus.GaugeVec // slots_busy{language}
	// Containers is containers{}: this runner's containers on its Docker host at the last
	// sweep, warm and busy ones included; well above both, they leak.
	Containers prometheus.Gauge
	// LeftoversRemoved is leftovers_removed_total: containers of dead runner lives removed.
	LeftoversRemoved prometheus.Counter
	RunsPerJob       *prometheus.HistogramVec // runs_per_job{language}
	ResultRetries    prometheus.Counter       // result_publish_retries_total
}

// NewMetrics registers the runner's series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "jobs_total",
			Help: "Jobs handled, by language and outcome (a result status, or requeued / rejected).",
		}, []string{"language", "status"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "job_duration_seconds",
			Help:    "Whole job: from the pull to the ack, container included.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"language"}),
		ContainerStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "container_start_seconds",
			Help:    "Container create and start.",
			Buckets: metrics.LatencyBuckets,
		}),
		ContainerRemove: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "container_remove_seconds",
			Help:    "Container force-remove, after a job or of a leftover.",
			Buckets: metrics.LatencyBuckets,
		}),
		PoolWarm: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "pool_warm",
			Help: "Warm (created, started, unused) containers by language.",
		}, []string{"language"}),
		PoolTarget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "pool_target",
			Help: "Warm containers a language's pool aims at: its recent demand, within CODEEXEC_POOL_MIN and CODEEXEC_POOL_SIZE.",
		}, []string{"language"}),
		SlotsFree: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "slots_free",
			Help: "Job slots not running a job.",
		}),
		Slots: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "slots",
			Help: "Job slots: how many jobs the runner runs at once (CODEEXEC_RUNNER_SLOTS).",
		}),
		SlotsBusy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "slots_busy",
			Help: "Job slots running a job, by the job's language.",
		}, []string{"language"}),
		Containers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "containers",
			Help: "This runner's containers on its host at the last sweep (each minute): warm, busy and being removed.",
		}),
		LeftoversRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "leftovers_removed_total",
			Help: "Containers left behind by dead runner lives (a crash, a kill during a create) that this runner removed.",
		}),
		RunsPerJob: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "runs_per_job",
			Help:    "Deliveries a job took until its result was stored here: above 1 only after a runner died holding it or the platform failed.",
			Buckets: []float64{1, 2, 3, 4, 5},
		}, []string{"language"}),
		ResultRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "codeexec", Subsystem: "runner", Name: "result_publish_retries_total",
			Help: "Attempts to store a result that failed and were tried again (a NATS leader election, a lost connection).",
		}),
	}
	for _, c := range []prometheus.Collector{m.Jobs, m.JobDuration, m.ContainerStart, m.ContainerRemove, m.PoolWarm, m.PoolTarget,
		m.SlotsFree, m.Slots, m.SlotsBusy, m.Containers, m.LeftoversRemoved, m.RunsPerJob, m.ResultRetries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
