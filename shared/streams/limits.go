package streams

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/subjects"
)

// RateLimitTTL is how long an idle credential's token bucket is kept; a bucket not touched
// for that long is full again anyway (for any burst/rate under it).
const RateLimitTTL = 10 * time.Minute

// ConcurrencyTTL is how long an idle account's lease record is kept; it must outlast the
// longest lease.
const ConcurrencyTTL = 24 * time.Hour

// RateLimitConfig is the bucket of token-bucket states, one per credential. Every edge
// updates it with compare-and-set (Update with the last revision), so the limit holds
// across edges. Memory storage: losing it on a restart only refills the buckets.
func RateLimitConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      subjects.RateLimitBucket,
		Description: "CodeExec token buckets, by credential",
		TTL:         RateLimitTTL,
		History:     1,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	}
}

// ConcurrencyConfig is the bucket of per-account execution leases (job ids with expiry, so
// a crashed edge's leases lapse), updated with compare-and-set like RateLimitConfig.
func ConcurrencyConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      subjects.ConcurrencyBucket,
		Description: "CodeExec running executions, by account",
		TTL:         ConcurrencyTTL,
		History:     1,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	}
}
