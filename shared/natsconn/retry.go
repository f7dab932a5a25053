package natsconn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable is what Retry answers when JetStream stayed unavailable for its patience.
var ErrUnavailable = errors.New("JetStream does not answer")

// Transient reports a NATS or JetStream error that a retry may cure: a stream or bucket
// without a leader yet (an election after a node died), no answer in time, a connection
// that is reconnecting.
func Transient(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// Retry calls try, each time within attempt, until it succeeds, fails for good (not
// Transient), ctx ends, or patience has passed: a transient failure then is wrapped in
// ErrUnavailable. try must be safe to repeat (a publish with a message id, a put, a
// compare-and-set). The retries back off from 50 ms to 1 s.
func Retry[T any](ctx context.Context, patience, attempt time.Duration, try func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(patience)
	for gap := 50 * time.Millisecond; ; gap = min(2*gap, time.Second) {
		attemptCtx, cancel := context.WithTimeout(ctx, attempt)
		v, err := try(attemptCtx)
		cancel()
		if err == nil || !Transient(err) || ctx.Err() != nil {
			return v, err
		}
		if time.Now().Add(gap).After(deadline) {
			return v, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		t := time.NewTimer(gap)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return v, err
		}
	}
}
