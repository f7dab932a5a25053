package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Backoff of Await: the first retry comes soon, later ones every awaitMaxGap.
const (
	awaitFirstGap = 250 * time.Millisecond
	awaitMaxGap   = 5 * time.Second
	awaitLogEvery = 30 * time.Second
)

// Await calls get until it succeeds or ctx ends, with backoff, saying what it waits for:
// a service started before its stream, bucket or consumer is provisioned (or while NATS
// is electing a leader) waits for it instead of exiting.
func Await[T any](ctx context.Context, log *slog.Logger, what string, get func(context.Context) (T, error)) (T, error) {
	gap := awaitFirstGap
	var lastLog time.Time
	for attempt := 1; ; attempt++ {
		v, err := get(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("found what it waited for", "what", what, "attempts", attempt)
			}
			return v, nil
		}
		if time.Since(lastLog) >= awaitLogEvery {
			log.Warn("waiting", "for", what, "err", err)
			lastLog = time.Now()
		}
		t := time.NewTimer(gap)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		gap = min(gap*2, awaitMaxGap)
	}
}
