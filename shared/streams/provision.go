package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/subjects"
)

// Default stream sizes. Each is a per-node maximum of the file store: with every stream
// full, one node holds JobsBytes + ResultsBytes + DeadLettersBytes + AdvisoriesBytes
// (13.25 GiB by default), so a node's max_file_store must be above that.
const (
	DefaultJobsBytes        int64 = 4 << 30
	DefaultResultsBytes     int64 = 8 << 30
	DefaultDeadLettersBytes int64 = 1 << 30
	// AdvisoriesBytes is the fixed size of JobAdvisoriesStream.
	AdvisoriesBytes int64 = 256 << 20
)

// Plan is everything provisioning creates or updates: the streams and buckets with their
// replicas and sizes, and the job consumers of every region and language.
type Plan struct {
	// Replicas of every stream and bucket (CODEEXEC_STREAM_REPLICAS): 1, or 3 on a
	// three-node cluster so that losing one node loses nothing.
	Replicas int
	// Storage limits of the streams, in bytes; 0: the default.
	JobsBytes, ResultsBytes, DeadLettersBytes int64
	// Regions and Languages whose job consumers are made: one per pair.
	Regions, Languages []string
	// JobAckWait and JobMaxAckPending are the job consumers' settings; 0: JobAckWait and
	// JobFleetMaxAckPending.
	JobAckWait       time.Duration
	JobMaxAckPending int
	// MissingOnly creates what does not exist and leaves what does as it is: for a process
	// that provisions for itself on a NATS it did not make (an all-in-one joining a mesh),
	// which must never turn an operator's settings (three replicas, say) back into its own.
	MissingOnly bool
}

func (p Plan) withDefaults() Plan {
	if p.Replicas <= 0 {
		p.Replicas = 1
	}
	if p.JobsBytes <= 0 {
		p.JobsBytes = DefaultJobsBytes
	}
	if p.ResultsBytes <= 0 {
		p.ResultsBytes = DefaultResultsBytes
	}
	if p.DeadLettersBytes <= 0 {
		p.DeadLettersBytes = DefaultDeadLettersBytes
	}
	if p.JobAckWait <= 0 {
		p.JobAckWait = JobAckWait
	}
	if p.JobMaxAckPending <= 0 {
		p.JobMaxAckPending = JobFleetMaxAckPending
	}
	return p
}

// Check reports a plan that cannot work, before anything is changed.
func (p Plan) Check() error {
	var errs []error
	if p.Replicas < 0 || p.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: JetStream allows 1 to 5", p.Replicas))
	}
	for _, r := range p.Regions {
		if !subjects.Token(r) {
			errs = append(errs, fmt.Errorf("region %q is not a subject token", r))
		}
	}
	for _, l := range p.Languages {
		if !subjects.Token(l) {
			errs = append(errs, fmt.Errorf("language %q is not a subject token", l))
		}
	}
	for name, n := range map[string]int64{"jobs": p.JobsBytes, "results": p.ResultsBytes, "dead letters": p.DeadLettersBytes} {
		if n < 0 || n > 0 && n < 64<<20 {
			errs = append(errs, fmt.Errorf("%s stream size %d: at least 64 MiB", name, n))
		}
	}
	return errors.Join(errs...)
}

// Streams returns the plan's streams.
func (p Plan) Streams() []jetstream.StreamConfig {
	p = p.withDefaults()
	return []jetstream.StreamConfig{
		JobsConfig(p.Replicas, p.JobsBytes), ResultsConfig(p.Replicas, p.ResultsBytes),
		JobAdvisoriesConfig(p.Replicas), DeadLettersConfig(p.Replicas, p.DeadLettersBytes),
	}
}

// Buckets returns the plan's key-value buckets.
func (p Plan) Buckets() []jetstream.KeyValueConfig {
	p = p.withDefaults()
	return []jetstream.KeyValueConfig{JobIndexConfig(p.Replicas), RateLimitConfig(p.Replicas), ConcurrencyConfig(p.Replicas)}
}

// Consumer is a durable consumer of a stream.
type Consumer struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Consumers returns the plan's durable consumers: the job consumer of every region and
// language, the runners' dead-letter consumer and the ledger's charges consumer.
func (p Plan) Consumers() []Consumer {
	p = p.withDefaults()
	var out []Consumer
	for _, r := range p.Regions {
		for _, l := range p.Languages {
			out = append(out, Consumer{subjects.JobsStream, JobConsumerConfig(r, l, p.JobMaxAckPending, p.JobAckWait)})
		}
	}
	return append(out,
		Consumer{subjects.JobAdvisoriesStream, DeadLetterConsumerConfig()},
		Consumer{subjects.ResultsStream, ChargesConsumerConfig()})
}

// Provision creates or updates every stream, bucket and consumer of the plan; it may be run
// again at any time (an update to the same settings changes nothing). It reports each
// change through done, which may be nil.
func Provision(ctx context.Context, js jetstream.JetStream, p Plan, done func(kind, name string)) error {
	if err := p.Check(); err != nil {
		return err
	}
	if done == nil {
		done = func(string, string) {}
	}
	for _, cfg := range p.Streams() {
		var err error
		if p.MissingOnly {
			if _, err = js.CreateStream(ctx, cfg); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
		} else {
			_, err = js.CreateOrUpdateStream(ctx, cfg)
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
		done("stream", cfg.Name)
	}
	for _, cfg := range p.Buckets() {
		var err error
		if p.MissingOnly {
			if _, err = js.CreateKeyValue(ctx, cfg); errors.Is(err, jetstream.ErrBucketExists) {
				continue
			}
		} else {
			_, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		}
		if err != nil {
			return fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
		done("bucket", cfg.Bucket)
	}
	for _, c := range p.Consumers() {
		var err error
		if p.MissingOnly {
			if _, err = js.CreateConsumer(ctx, c.Stream, c.Config); errors.Is(err, jetstream.ErrConsumerExists) {
				continue
			}
		} else {
			_, err = js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config)
		}
		if err != nil {
			return fmt.Errorf("consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
		done("consumer", c.Stream+"/"+c.Config.Durable)
	}
	return nil
}

// ChargesAckWait is how long the server waits for the ledger's ack of one result before
// redelivering it.
const ChargesAckWait = 30 * time.Second

// ChargesConsumerConfig is the ledger's durable pull consumer on the results stream. Every
// ledger process binds the same durable, so each result goes to one of them at a time.
func ChargesConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       subjects.ChargesConsumer,
		Description:   "ledger: charges and execution records",
		FilterSubject: subjects.ResultsAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       ChargesAckWait,
		MaxDeliver:    -1, // money must not be dropped: retry until the database answers
		MaxAckPending: 1024,
	}
}

// StoreBytes is what one node's file store holds with every stream of the plan full (the
// buckets are small beside them): its max_file_store must be above it.
func (p Plan) StoreBytes() int64 {
	p = p.withDefaults()
	return p.JobsBytes + p.ResultsBytes + p.DeadLettersBytes + AdvisoriesBytes
}
