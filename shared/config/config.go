// Package config loads CodeExec's CODEEXEC_* environment variables with explicit defaults.
package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Config is every setting a CodeExec process may read. Each service uses the part it needs.
type Config struct {
	HTTPAddr string // CODEEXEC_HTTP_ADDR, the edge's listen address
	NATSURL  string // CODEEXEC_NATS_URL; empty: embedded nats-server (all-in-one only)
	// NATS is how a service authenticates to an external NATS: never through the URL.
	NATS     NATSAuth
	MongoURI string // CODEEXEC_MONGO_URI; empty: embedded FerretDB (all-in-one only)
	MongoDB  string // CODEEXEC_MONGO_DB, database name
	DataDir  string // CODEEXEC_DATA_DIR
	Region   string // CODEEXEC_REGION
	// RegionNeighbors (CODEEXEC_REGION_NEIGHBORS) are the other regions an edge may send a
	// job with "regionPolicy": "prefer" to when its region has no live runner for the
	// language, nearest first. Empty: such a job stays in its region (and is refused).
	RegionNeighbors []string
	AdminToken      string // CODEEXEC_ADMIN_TOKEN; empty disables admin endpoints
	MetricsAddr     string // CODEEXEC_METRICS_ADDR; empty: no separate metrics listener
	LogFormat       string // CODEEXEC_LOG_FORMAT: text or json
	LogLevel        string // CODEEXEC_LOG_LEVEL: debug, info, warn, error

	FreeCreditMicros int64 // CODEEXEC_FREE_CREDIT_MICROS
	PriceMicros      int64 // CODEEXEC_PRICE_MICROS

	WaitTimeout   time.Duration // CODEEXEC_WAIT_TIMEOUT: how long the edge waits before 504
	RunnerSlots   int           // CODEEXEC_RUNNER_SLOTS: jobs one runner runs at once
	PoolSize      int           // CODEEXEC_POOL_SIZE: the most warm containers per language
	PoolMin       int           // CODEEXEC_POOL_MIN: the fewest, even for a language nobody uses
	LanguagesFile string        // CODEEXEC_LANGUAGES_FILE: the runner's language table; empty: built in
	// RunnerID names a runner in heartbeats, results and the labels of its containers; a
	// runner restarted with the same id removes what its earlier life left behind. Empty:
	// derived from the host name (stable across restarts).
	RunnerID   string        // CODEEXEC_RUNNER_ID
	JobAckWait time.Duration // CODEEXEC_JOB_ACK_WAIT: how long a job held by a silent runner waits before redelivery (provisioning)
	// SandboxUIDs is the range "first-last" of host uids the runner's programs run as, one
	// per live container; empty: the sandbox's default. No host user may have one of them.
	SandboxUIDs string // CODEEXEC_SANDBOX_UIDS
	// Runtime is the OCI runtime of the runner's containers (CODEEXEC_RUNTIME): crun, runc
	// or runsc; empty: crun where the Docker daemon has it, else runc.
	Runtime string // CODEEXEC_RUNTIME
	// Engine is how the runner makes its containers (CODEEXEC_ENGINE): "direct", with the
	// OCI runtime itself (crun and runc), or "docker", through the Docker daemon; empty:
	// direct where it can be (a root runner with the runtime's binary), else docker.
	Engine string // CODEEXEC_ENGINE
	// JobsCPUWeight (CODEEXEC_JOBS_CPU_WEIGHT) is the CPU weight of the runner's containers
	// together, in host processes: on a busy host the programs come before the platform's
	// own work. 0: Docker's default cgroup, which weighs as one process.
	JobsCPUWeight int
	Languages     []string // CODEEXEC_LANGUAGES: languages this runner serves; empty: all
	DebugFerretDB bool     // CODEEXEC_FERRETDB_LOGS: show the embedded FerretDB's logs
	// FerretDBSyncEachCommit (CODEEXEC_FERRETDB_SYNC_EACH_COMMIT): the embedded FerretDB
	// syncs every commit to disk, instead of every 100 ms as MongoDB's journal does.
	FerretDBSyncEachCommit bool
	// Profiling (CODEEXEC_PPROF): the metrics listener also serves Go's /debug/pprof/.
	Profiling bool

	// Request limits, shared by every edge through JetStream key-value buckets.
	RatePerSec float64 // CODEEXEC_RATE_PER_SEC: requests per second per credential (token refill)
	RateBurst  int     // CODEEXEC_RATE_BURST: token bucket size
	// AnonRatePerSec and AnonRateBurst limit the endpoints without credentials (register,
	// login, shared projects) per client address: CODEEXEC_ANON_RATE_PER_SEC, _BURST.
	AnonRatePerSec float64
	AnonRateBurst  int
	MaxConcurrent  int           // CODEEXEC_MAX_CONCURRENT: executions one account runs at once
	KeyCacheTTL    time.Duration // CODEEXEC_KEY_CACHE_TTL: how long an edge trusts a valid key check

	// Provisioning (`codeexec provision`, and the all-in-one for itself).
	StreamReplicas int // CODEEXEC_STREAM_REPLICAS: replicas of every stream and bucket
	// Stream sizes in bytes: CODEEXEC_JOBS_STREAM_BYTES, _RESULTS_, _DEADLETTERS_.
	JobsStreamBytes, ResultsStreamBytes, DeadLettersStreamBytes int64
	// Regions whose job consumers provisioning makes (CODEEXEC_REGIONS); empty: Region.
	Regions []string

	// NATSListen is where the all-in-one's embedded NATS also accepts TCP clients (other
	// runners, say), as host:port; empty: in-process connections only.
	NATSListen string // CODEEXEC_NATS_LISTEN
	// Services are the parts the all-in-one runs (CODEEXEC_SERVICES, comma-separated).
	Services []string
}

// AllServices are the parts of the all-in-one, in start order.
var AllServices = []string{"accounts", "ledger", "runner", "edge"}

// Runs reports whether the all-in-one should run service.
func (c Config) Runs(service string) bool {
	for _, s := range c.Services {
		if s == service {
			return true
		}
	}
	return false
}

// Defaults returns the configuration used when no variable is set.
func Defaults() Config {
	return Config{
		HTTPAddr:               "127.0.0.1:8080",
		MongoDB:                "codeexec",
		DataDir:                "./data",
		Region:                 "local",
		LogFormat:              "text",
		LogLevel:               "info",
		FreeCreditMicros:       1_000_000,
		PriceMicros:            10_000,
		WaitTimeout:            60 * time.Second,
		RunnerSlots:            4,
		JobAckWait:             streams.JobAckWait,
		StreamReplicas:         1,
		JobsStreamBytes:        streams.DefaultJobsBytes,
		ResultsStreamBytes:     streams.DefaultResultsBytes,
		DeadLettersStreamBytes: streams.DefaultDeadLettersBytes,
		PoolSize:               2,
		JobsCPUWeight:          4,
		Services:               AllServices,
		RatePerSec:             10,
		RateBurst:              20,
		AnonRatePerSec:         2,
		AnonRateBurst:          30,
		MaxConcurrent:          8,
		KeyCacheTTL:            30 * time.Second,
	}
}

// Load reads the environment over Defaults and validates the result.
func Load() (Config, error) { return LoadFrom(os.LookupEnv) }

// LoadFrom is Load with an injected lookup, for tests.
func LoadFrom(lookup func(string) (string, bool)) (Config, error) {
	c := Defaults()
	var errs []error
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok {
			*dst = strings.TrimSpace(v)
		}
	}
	num := func(key string, dst *int64) {
		if v, ok := lookup(key); ok && strings.TrimSpace(v) != "" {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				return
			}
			*dst = n
		}
	}
	integer := func(key string, dst *int) {
		n := int64(*dst)
		num(key, &n)
		*dst = int(n)
	}
	str("CODEEXEC_HTTP_ADDR", &c.HTTPAddr)
	str("CODEEXEC_NATS_URL", &c.NATSURL)
	str("CODEEXEC_NATS_USER", &c.NATS.User)
	str("CODEEXEC_NATS_PASSWORD", &c.NATS.Password)
	str("CODEEXEC_NATS_CREDS", &c.NATS.CredsFile)
	str("CODEEXEC_NATS_TLS_CA", &c.NATS.TLSCA)
	str("CODEEXEC_NATS_TLS_CERT", &c.NATS.TLSCert)
	str("CODEEXEC_NATS_TLS_KEY", &c.NATS.TLSKey)
	str("CODEEXEC_MONGO_URI", &c.MongoURI)
	str("CODEEXEC_MONGO_DB", &c.MongoDB)
	str("CODEEXEC_DATA_DIR", &c.DataDir)
	str("CODEEXEC_REGION", &c.Region)
	str("CODEEXEC_ADMIN_TOKEN", &c.AdminToken)
	str("CODEEXEC_METRICS_ADDR", &c.MetricsAddr)
	str("CODEEXEC_LOG_FORMAT", &c.LogFormat)
	str("CODEEXEC_LOG_LEVEL", &c.LogLevel)
	str("CODEEXEC_LANGUAGES_FILE", &c.LanguagesFile)
	str("CODEEXEC_NATS_LISTEN", &c.NATSListen)
	str("CODEEXEC_RUNNER_ID", &c.RunnerID)
	str("CODEEXEC_SANDBOX_UIDS", &c.SandboxUIDs)
	str("CODEEXEC_RUNTIME", &c.Runtime)
	str("CODEEXEC_ENGINE", &c.Engine)
	num("CODEEXEC_FREE_CREDIT_MICROS", &c.FreeCreditMicros)
	num("CODEEXEC_PRICE_MICROS", &c.PriceMicros)
	integer("CODEEXEC_RUNNER_SLOTS", &c.RunnerSlots)
	integer("CODEEXEC_POOL_SIZE", &c.PoolSize)
	integer("CODEEXEC_POOL_MIN", &c.PoolMin)
	integer("CODEEXEC_JOBS_CPU_WEIGHT", &c.JobsCPUWeight)
	integer("CODEEXEC_RATE_BURST", &c.RateBurst)
	integer("CODEEXEC_ANON_RATE_BURST", &c.AnonRateBurst)
	integer("CODEEXEC_MAX_CONCURRENT", &c.MaxConcurrent)
	integer("CODEEXEC_STREAM_REPLICAS", &c.StreamReplicas)
	num("CODEEXEC_JOBS_STREAM_BYTES", &c.JobsStreamBytes)
	num("CODEEXEC_RESULTS_STREAM_BYTES", &c.ResultsStreamBytes)
	num("CODEEXEC_DEADLETTERS_STREAM_BYTES", &c.DeadLettersStreamBytes)
	duration := func(key string, dst *time.Duration) {
		if v, ok := lookup(key); ok && strings.TrimSpace(v) != "" {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				return
			}
			*dst = d
		}
	}
	duration("CODEEXEC_WAIT_TIMEOUT", &c.WaitTimeout)
	duration("CODEEXEC_KEY_CACHE_TTL", &c.KeyCacheTTL)
	duration("CODEEXEC_JOB_ACK_WAIT", &c.JobAckWait)
	for key, dst := range map[string]*float64{"CODEEXEC_RATE_PER_SEC": &c.RatePerSec, "CODEEXEC_ANON_RATE_PER_SEC": &c.AnonRatePerSec} {
		if v, ok := lookup(key); ok && strings.TrimSpace(v) != "" {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			} else {
				*dst = f
			}
		}
	}
	if v, ok := lookup("CODEEXEC_LANGUAGES"); ok && v != "" {
		c.Languages = list(v)
	}
	if v, ok := lookup("CODEEXEC_REGIONS"); ok && v != "" {
		c.Regions = list(v)
	}
	if v, ok := lookup("CODEEXEC_REGION_NEIGHBORS"); ok && v != "" {
		c.RegionNeighbors = list(v)
	}
	if v, ok := lookup("CODEEXEC_SERVICES"); ok && v != "" {
		c.Services = list(v)
	}
	if v, ok := lookup("CODEEXEC_FERRETDB_LOGS"); ok {
		c.DebugFerretDB = v == "1" || strings.EqualFold(v, "true")
	}
	if v, ok := lookup("CODEEXEC_PPROF"); ok {
		c.Profiling = v == "1" || strings.EqualFold(v, "true")
	}
	if v, ok := lookup("CODEEXEC_FERRETDB_SYNC_EACH_COMMIT"); ok {
		c.FerretDBSyncEachCommit = v == "1" || strings.EqualFold(v, "true")
	}
	if c.RunnerID == "" {
		c.RunnerID = HostRunnerID()
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// HostRunnerID is the default CODEEXEC_RUNNER_ID: the host name, lowercased, reduced to
// letters, digits and '-', so that a runner restarted on its host keeps its id (and
// removes what its earlier life left). Several runners on one host need ids of their own.
func HostRunnerID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, c := range strings.ToLower(host) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteRune(c)
		}
	}
	name := b.String()
	if len(name) > 48 {
		name = name[:48]
	}
	if name == "" {
		name = "runner"
	}
	return name
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if err := c.NATS.check(c.NATSURL); err != nil {
		errs = append(errs, err)
	}
	if !subjects.Token(c.Region) {
		errs = append(errs, fmt.Errorf("CODEEXEC_REGION %q: use letters, digits, - and _", c.Region))
	}
	for i, r := range c.RegionNeighbors {
		switch {
		case !subjects.Token(r):
			errs = append(errs, fmt.Errorf("CODEEXEC_REGION_NEIGHBORS: region %q: use letters, digits, - and _", r))
		case r == c.Region:
			errs = append(errs, fmt.Errorf("CODEEXEC_REGION_NEIGHBORS: %q is this process's own region (CODEEXEC_REGION)", r))
		case slices.Contains(c.RegionNeighbors[:i], r):
			errs = append(errs, fmt.Errorf("CODEEXEC_REGION_NEIGHBORS: %q is listed twice", r))
		}
	}
	if c.FreeCreditMicros < 0 {
		errs = append(errs, errors.New("CODEEXEC_FREE_CREDIT_MICROS must not be negative"))
	}
	if c.PriceMicros < 0 {
		errs = append(errs, errors.New("CODEEXEC_PRICE_MICROS must not be negative"))
	}
	if c.WaitTimeout <= 0 {
		errs = append(errs, errors.New("CODEEXEC_WAIT_TIMEOUT must be positive"))
	}
	if c.RunnerSlots < 1 {
		errs = append(errs, errors.New("CODEEXEC_RUNNER_SLOTS must be at least 1"))
	}
	if c.RunnerID != "" && !subjects.Token(c.RunnerID) {
		errs = append(errs, fmt.Errorf("CODEEXEC_RUNNER_ID %q: use letters, digits, - and _", c.RunnerID))
	}
	if c.JobAckWait < time.Second {
		errs = append(errs, errors.New("CODEEXEC_JOB_ACK_WAIT must be at least 1s"))
	}
	if c.PoolSize < 0 {
		errs = append(errs, errors.New("CODEEXEC_POOL_SIZE must not be negative"))
	}
	if c.JobsCPUWeight < 0 || c.JobsCPUWeight > 100 {
		errs = append(errs, errors.New("CODEEXEC_JOBS_CPU_WEIGHT must be between 0 (off) and 100"))
	}
	if c.PoolMin < 0 || c.PoolMin > c.PoolSize {
		errs = append(errs, errors.New("CODEEXEC_POOL_MIN must be between 0 and CODEEXEC_POOL_SIZE"))
	}
	if !(c.RatePerSec > 0) || c.RatePerSec > 1e6 {
		errs = append(errs, errors.New("CODEEXEC_RATE_PER_SEC must be above 0 (at most 1000000)"))
	}
	if c.RateBurst < 1 {
		errs = append(errs, errors.New("CODEEXEC_RATE_BURST must be at least 1"))
	}
	if !(c.AnonRatePerSec > 0) || c.AnonRatePerSec > 1e6 {
		errs = append(errs, errors.New("CODEEXEC_ANON_RATE_PER_SEC must be above 0 (at most 1000000)"))
	}
	if c.AnonRateBurst < 1 {
		errs = append(errs, errors.New("CODEEXEC_ANON_RATE_BURST must be at least 1"))
	}
	if c.MaxConcurrent < 1 {
		errs = append(errs, errors.New("CODEEXEC_MAX_CONCURRENT must be at least 1"))
	}
	if c.KeyCacheTTL < 0 {
		errs = append(errs, errors.New("CODEEXEC_KEY_CACHE_TTL must not be negative"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("CODEEXEC_LOG_FORMAT %q: want text or json", c.LogFormat))
	}
	for _, s := range c.Services {
		known := false
		for _, a := range AllServices {
			known = known || s == a
		}
		if !known {
			errs = append(errs, fmt.Errorf("CODEEXEC_SERVICES: unknown service %q (want %s)", s, strings.Join(AllServices, ",")))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("CODEEXEC_DATA_DIR must not be empty"))
	}
	if err := c.Plan(nil).Check(); err != nil {
		errs = append(errs, fmt.Errorf("provisioning (CODEEXEC_STREAM_REPLICAS, CODEEXEC_*_STREAM_BYTES, CODEEXEC_REGIONS): %w", err))
	}
	if c.StreamReplicas < 1 {
		errs = append(errs, errors.New("CODEEXEC_STREAM_REPLICAS must be at least 1"))
	}
	return errors.Join(errs...)
}

// Plan is what provisioning makes for these settings: the streams and buckets with their
// replicas and sizes, and the job consumers of every region of CODEEXEC_REGIONS (or the
// own region) for languages.
func (c Config) Plan(languages []string) streams.Plan {
	regions := c.Regions
	if len(regions) == 0 {
		regions = []string{c.Region}
	}
	return streams.Plan{
		Replicas: c.StreamReplicas, JobsBytes: c.JobsStreamBytes, ResultsBytes: c.ResultsStreamBytes,
		DeadLettersBytes: c.DeadLettersStreamBytes, Regions: regions, Languages: languages, JobAckWait: c.JobAckWait,
	}
}
