// Package streams defines CodeExec's JetStream streams, buckets and consumers as code.
// Provisioning (`codeexec provision`, or the all-in-one for itself) creates and updates them
// from a Plan; the services only bind, and wait for what is not there yet.
package streams

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/subjects"
)

// Job consumer settings.
const (
	// JobAckWait is how long a runner may hold a job without an in-progress ping (the
	// default of CODEEXEC_JOB_ACK_WAIT): a dead runner's job is redelivered after it.
	// Runners ping every third of it, so it can be short: a job moves off a dead runner
	// within seconds.
	JobAckWait = 6 * time.Second
	// JobMaxDeliver bounds redeliveries; after it a job is dead-lettered.
	JobMaxDeliver = 3
	// ResultsMaxAge is how long results stay for polling and for the ledger.
	ResultsMaxAge = 7 * 24 * time.Hour
	// DeadLettersMaxAge is how long dead-letter records (and unhandled advisories) stay.
	DeadLettersMaxAge = 30 * 24 * time.Hour
)

// JobsConfig is the work-queue stream of jobs, partitioned by region and language.
func JobsConfig(replicas int, maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        subjects.JobsStream,
		Description: "CodeExec jobs, one subject per region and language",
		Subjects:    []string{subjects.JobsAll},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     100_000,
		MaxBytes:    maxBytes,
		MaxMsgSize:  4 << 20,
		Duplicates:  2 * time.Minute,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// ResultsConfig is the stream of results, one message per job subject.
func ResultsConfig(replicas int, maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              subjects.ResultsStream,
		Description:       "CodeExec results, one subject per job",
		Subjects:          []string{subjects.ResultsAll},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxAge:            ResultsMaxAge,
		MaxBytes:          maxBytes,
		MaxMsgSize:        8 << 20,
		Duplicates:        10 * time.Minute,
		Storage:           jetstream.FileStorage,
		AllowDirect:       true,
		Replicas:          replicas,
	}
}

// JobFleetMaxAckPending is the default cap of the jobs in flight across all runners of a
// region and language: sized for a fleet, not for one runner, since each runner bounds
// itself by pulling one job per free slot. N runners of 4 slots run 4N jobs at once.
const JobFleetMaxAckPending = 4096

// JobConsumerConfig is the durable pull consumer all runners of region and language bind.
// maxAckPending caps the jobs in flight across those runners; ackWait (0: JobAckWait) is how
// long a job held without an ack or in-progress ping waits before its redelivery.
func JobConsumerConfig(region, language string, maxAckPending int, ackWait time.Duration) jetstream.ConsumerConfig {
	if ackWait <= 0 {
		ackWait = JobAckWait
	}
	return jetstream.ConsumerConfig{
		Durable:       subjects.JobConsumer(region, language),
		Description:   "runners of " + language + " in " + region,
		FilterSubject: subjects.Jobs(region, language),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       ackWait,
		MaxDeliver:    JobMaxDeliver,
		MaxAckPending: maxAckPending,
	}
}

// JobAdvisoriesConfig captures the server's max-deliveries advisories of the job consumers:
// a job whose every delivery timed out stays in the work-queue stream, and the advisory
// (core NATS, lost when nobody listens) is kept here until a runner's dead-letter worker
// has handled it.
func JobAdvisoriesConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        subjects.JobAdvisoriesStream,
		Description: "CodeExec max-deliveries advisories of the job consumers",
		Subjects:    []string{subjects.JobMaxDeliveriesAll},
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      DeadLettersMaxAge,
		MaxBytes:    AdvisoriesBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// DeadLetterConsumerConfig is the durable pull consumer of JobAdvisoriesStream that every
// runner binds; each advisory goes to one of them at a time, and is retried until handled.
func DeadLetterConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       subjects.DeadLetterConsumer,
		Description:   "runners: dead letters of jobs out of deliveries",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 64,
	}
}

// DeadLettersConfig is the stream of dead-letter records (messages.DeadLetter), one per job.
func DeadLettersConfig(replicas int, maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              subjects.DeadLettersStream,
		Description:       "CodeExec dead-letter records, one subject per job",
		Subjects:          []string{subjects.DeadLettersAll},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxAge:            DeadLettersMaxAge,
		MaxBytes:          maxBytes,
		Duplicates:        10 * time.Minute,
		Storage:           jetstream.FileStorage,
		AllowDirect:       true,
		Replicas:          replicas,
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
