package limits

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/subjects"
)

// DefaultLeaseTTL is how long an execution counts against its account when nobody
// releases it (its edge crashed, or the result never came).
const DefaultLeaseTTL = 10 * time.Minute

// maxAttempts bounds compare-and-set retries under contention.
const maxAttempts = 16

// maxLocal bounds the edge's copies of states.
const maxLocal = 100_000

// ErrNotStarted is returned before Start has bound the buckets.
var ErrNotStarted = errors.New("limits: not started")

// Config is the limits every edge must share.
type Config struct {
	RatePerSec float64 // tokens added per second, per credential
	Burst      int     // bucket size
	// AnonRatePerSec and AnonBurst are the bucket of each client address on the endpoints
	// without credentials.
	AnonRatePerSec float64
	AnonBurst      int
	MaxConcurrent  int           // executions one account runs at once
	LeaseTTL       time.Duration // DefaultLeaseTTL when 0
}

// Limiter applies Config through the RATE_LIMITS and CONCURRENCY buckets.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	rateKV  jetstream.KeyValue
	leaseKV jetstream.KeyValue
	buckets map[string]versioned[Bucket]
	leases  map[string]versioned[Leases]

	// stripes serialize this edge's own updates of one key, so that compare-and-set
	// conflicts come only from other edges.
	stripes [64]sync.Mutex
}

// lock takes the stripe of key; the caller unlocks it.
func (l *Limiter) lock(key string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	m := &l.stripes[h.Sum32()%uint32(len(l.stripes))]
	m.Lock()
	return m
}

// backoff waits a little, more with each attempt, before a compare-and-set is retried
// after another edge's write won.
func backoff(ctx context.Context, attempt int) {
	d := time.Duration(1+rand.IntN(1<<min(attempt, 5))) * time.Millisecond
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

type versioned[T any] struct {
	v   T
	rev uint64
}

// Leases is an account's running executions: job id → expiry (unix milliseconds).
type Leases struct {
	Jobs map[string]int64 `json:"jobs"`
}

// New returns a limiter; now is its clock (time.Now when nil).
func New(cfg Config, now func() time.Time) *Limiter {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{cfg: cfg, now: now, buckets: make(map[string]versioned[Bucket]), leases: make(map[string]versioned[Leases])}
}

// Start binds the buckets (created by shared/streams.Ensure).
func (l *Limiter) Start(ctx context.Context, js jetstream.JetStream) error {
	rate, err := js.KeyValue(ctx, subjects.RateLimitBucket)
	if err != nil {
		return fmt.Errorf("bind bucket %s: %w", subjects.RateLimitBucket, err)
	}
	lease, err := js.KeyValue(ctx, subjects.ConcurrencyBucket)
	if err != nil {
		return fmt.Errorf("bind bucket %s: %w", subjects.ConcurrencyBucket, err)
	}
	l.mu.Lock()
	l.rateKV, l.leaseKV = rate, lease
	l.mu.Unlock()
	return nil
}

func (l *Limiter) kvs() (rate, lease jetstream.KeyValue, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rateKV == nil {
		return nil, nil, ErrNotStarted
	}
	return l.rateKV, l.leaseKV, nil
}

func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// The buckets' reads and writes ride out a JetStream leader election (a node lost) for up
// to kvPatience before the request is answered 503; each try gets kvAttempt.
const (
	kvPatience = 5 * time.Second
	kvAttempt  = time.Second
)

// write stores v under key if the key is still at rev (0: absent). A retried write whose
// first try was stored after all meets a conflict, as another edge's would: the caller
// reads again.
func write(ctx context.Context, kv jetstream.KeyValue, key string, v any, rev uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	return natsconn.Retry(ctx, kvPatience, kvAttempt, func(ctx context.Context) (uint64, error) {
		if rev == 0 {
			return kv.Create(ctx, key, data)
		}
		return kv.Update(ctx, key, data, rev)
	})
}

// read returns key's value and revision; an absent key is the zero value at revision 0.
func read[T any](ctx context.Context, kv jetstream.KeyValue, key string) (T, uint64, error) {
	var v T
	e, err := natsconn.Retry(ctx, kvPatience, kvAttempt, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
		return kv.Get(ctx, key)
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, nil
	}
	if err != nil {
		return v, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		// A state nobody can read is replaced: the limits err on the generous side once.
		var zero T
		return zero, e.Revision(), nil
	}
	return v, e.Revision(), nil
}

func remember[T any](l *Limiter, m map[string]versioned[T], key string, v T, rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(m) >= maxLocal {
		clear(m)
	}
	m[key] = versioned[T]{v: v, rev: rev}
}

func forget[T any](l *Limiter, m map[string]versioned[T], key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(m, key)
}

func recall[T any](l *Limiter, m map[string]versioned[T], key string) (versioned[T], bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := m[key]
	return v, ok
}

// Allow takes a token from key's bucket. Refused, it says how long until a token is there.
// One round trip when this edge's copy of the bucket is current; a refusal from the copy
// needs none, since other edges only ever take tokens (the shared bucket holds no more).
func (l *Limiter) Allow(ctx context.Context, key string) (ok bool, wait time.Duration, err error) {
	return l.allow(ctx, key, l.cfg.RatePerSec, l.cfg.Burst)
}

// AllowAddress takes a token from the bucket of a client address, for the endpoints that
// take no credential (registration, login, shared projects).
func (l *Limiter) AllowAddress(ctx context.Context, addr string) (ok bool, wait time.Duration, err error) {
	return l.allow(ctx, "addr."+addressKey.Replace(addr), l.cfg.AnonRatePerSec, l.cfg.AnonBurst)
}

// addressKey makes an IP address (v4 or v6, with a zone) a valid key-value key.
var addressKey = strings.NewReplacer(":", "_", "%", "-")

func (l *Limiter) allow(ctx context.Context, key string, rate float64, burst int) (ok bool, wait time.Duration, err error) {
	kv, _, err := l.kvs()
	if err != nil {
		return false, 0, err
	}
	defer l.lock("rate:" + key).Unlock()
	for attempt := range maxAttempts {
		if attempt > 0 {
			backoff(ctx, attempt)
		}
		cur, known := recall(l, l.buckets, key)
		if !known {
			if cur.v, cur.rev, err = read[Bucket](ctx, kv, key); err != nil {
				return false, 0, err
			}
		}
		next, ok, wait := Take(cur.v, l.now(), rate, burst)
		if !ok {
			remember(l, l.buckets, key, cur.v, cur.rev)
			return false, wait, nil
		}
		rev, err := write(ctx, kv, key, next, cur.rev)
		if conflict(err) {
			forget(l, l.buckets, key)
			continue
		}
		if err != nil {
			forget(l, l.buckets, key)
			return false, 0, fmt.Errorf("take token of %s: %w", key, err)
		}
		remember(l, l.buckets, key, next, rev)
		return true, 0, nil
	}
	// So many edges took tokens at once that this one never got through: that is the
	// very load being limited.
	return false, time.Second, nil
}

// Acquire adds jobID to account's running executions unless MaxConcurrent are running.
// Leases past their expiry do not count; at the limit, finished (when not nil) is asked
// about each lease, and finished jobs (asynchronous ones nobody released) are dropped.
func (l *Limiter) Acquire(ctx context.Context, account, jobID string, finished func(ctx context.Context, jobID string) bool) (bool, error) {
	_, kv, err := l.kvs()
	if err != nil {
		return false, err
	}
	defer l.lock("lease:" + account).Unlock()
	needRead := false
	for attempt := range maxAttempts {
		if attempt > 0 && needRead {
			backoff(ctx, attempt)
		}
		cur, known := recall(l, l.leases, account)
		if !known || needRead {
			if cur.v, cur.rev, err = read[Leases](ctx, kv, account); err != nil {
				return false, err
			}
			needRead, known = false, false
		}
		now := l.now()
		jobs := live(cur.v.Jobs, now)
		if len(jobs) >= l.cfg.MaxConcurrent {
			if known { // this edge's copy may miss releases by other edges
				needRead = true
				continue
			}
			if finished != nil {
				for id := range jobs {
					if finished(ctx, id) {
						delete(jobs, id)
					}
				}
			}
			if len(jobs) >= l.cfg.MaxConcurrent {
				remember(l, l.leases, account, cur.v, cur.rev)
				return false, nil
			}
		}
		jobs[jobID] = now.Add(l.cfg.LeaseTTL).UnixMilli()
		next := Leases{Jobs: jobs}
		rev, err := write(ctx, kv, account, next, cur.rev)
		if conflict(err) {
			needRead = true
			continue
		}
		if err != nil {
			forget(l, l.leases, account)
			return false, fmt.Errorf("lease for %s: %w", account, err)
		}
		remember(l, l.leases, account, next, rev)
		return true, nil
	}
	return false, nil
}

// Release drops jobID from account's running executions.
func (l *Limiter) Release(ctx context.Context, account, jobID string) error {
	_, kv, err := l.kvs()
	if err != nil {
		return err
	}
	defer l.lock("lease:" + account).Unlock()
	needRead := false
	for attempt := range maxAttempts {
		if attempt > 0 && needRead {
			backoff(ctx, attempt)
		}
		cur, known := recall(l, l.leases, account)
		if !known || needRead {
			if cur.v, cur.rev, err = read[Leases](ctx, kv, account); err != nil {
				return err
			}
			needRead, known = false, false
		}
		if _, ok := cur.v.Jobs[jobID]; !ok {
			if known {
				needRead = true // this edge's copy may be behind
				continue
			}
			return nil
		}
		jobs := live(cur.v.Jobs, l.now())
		delete(jobs, jobID)
		next := Leases{Jobs: jobs}
		rev, err := write(ctx, kv, account, next, cur.rev)
		if conflict(err) {
			needRead = true
			continue
		}
		if err != nil {
			forget(l, l.leases, account)
			return fmt.Errorf("release lease for %s: %w", account, err)
		}
		remember(l, l.leases, account, next, rev)
		return nil
	}
	return fmt.Errorf("release lease for %s: too much contention", account)
}

// live copies the leases that have not expired at now.
func live(jobs map[string]int64, now time.Time) map[string]int64 {
	out := make(map[string]int64, len(jobs)+1)
	ms := now.UnixMilli()
	for id, exp := range maps.All(jobs) {
		if exp > ms {
			out[id] = exp
		}
	}
	return out
}
