// Package streams defines CodeExec's JetStream streams and consumers as code. A provisioner
// (the all-in-one, or `codeexec`-style operators' tooling) calls Ensure; services only bind.
package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/subjects"
)

// Job consumer settings.
const (
	// JobAckWait is how long a runner may hold a job without an in-progress ping.
	JobAckWait = 30 * time.Second
	// JobMaxDeliver bounds redeliveries; after it a job is dead-lettered.
	JobMaxDeliver = 3
	// ResultsMaxAge is how long results stay for polling and for the ledger.
	ResultsMaxAge = 7 * 24 * time.Hour
)

// JobsConfig is the work-queue stream of jobs, partitioned by region and language.
func JobsConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        subjects.JobsStream,
		Description: "CodeExec jobs, one subject per region and language",
		Subjects:    []string{subjects.JobsAll},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     100_000,
		MaxBytes:    4 << 30,
		MaxMsgSize:  4 << 20,
		Duplicates:  2 * time.Minute,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// ResultsConfig is the stream of results, one message per job subject.
func ResultsConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              subjects.ResultsStream,
		Description:       "CodeExec results, one subject per job",
		Subjects:          []string{subjects.ResultsAll},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxAge:            ResultsMaxAge,
		MaxBytes:          8 << 30,
		MaxMsgSize:        8 << 20,
		Duplicates:        10 * time.Minute,
		Storage:           jetstream.FileStorage,
		AllowDirect:       true,
		Replicas:          replicas,
	}
}

// JobConsumerConfig is the durable pull consumer all runners of region and language bind.
// maxAckPending caps the jobs in flight across those runners.
func JobConsumerConfig(region, language string, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       subjects.JobConsumer(region, language),
		Description:   "runners of " + language + " in " + region,
		FilterSubject: subjects.Jobs(region, language),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       JobAckWait,
		MaxDeliver:    JobMaxDeliver,
		MaxAckPending: maxAckPending,
	}
}

// JobIndexConfig is the key-value bucket where the edge records who owns each job, so
// that GET /api/v1/jobs/:jobId answers only the owner.
func JobIndexConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      subjects.JobIndexBucket,
		Description: "CodeExec job owners, by job id",
		TTL:         ResultsMaxAge,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Ensure creates or updates the job and result streams and the key-value buckets.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range []jetstream.StreamConfig{JobsConfig(replicas), ResultsConfig(replicas)} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range []jetstream.KeyValueConfig{JobIndexConfig(replicas), RateLimitConfig(replicas), ConcurrencyConfig(replicas)} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
