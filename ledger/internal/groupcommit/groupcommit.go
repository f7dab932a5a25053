// Package groupcommit writes many callers' items with one database call: while one call
// is under way, the items that arrive wait, and the next call takes them all. A lone
// caller pays nothing extra (its item goes at once); under load, each call carries many
// items, so the database does one command and one commit for them instead of one each.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Flush writes items and returns one error per item (nil: written). It must not keep items.
type Flush[T any] func(ctx context.Context, items []T) []error

// Group batches the items of concurrent Do calls. The zero value is not usable: use New.
type Group[T any] struct {
	flush    Flush[T]
	maxBatch int
	timeout  time.Duration

	mu       sync.Mutex
	pending  []request[T]
	flushing bool
}

type request[T any] struct {
	item T
	done chan error
}

// New returns a Group whose calls carry at most maxBatch items and last at most timeout.
func New[T any](flush Flush[T], maxBatch int, timeout time.Duration) *Group[T] {
	return &Group[T]{flush: flush, maxBatch: max(maxBatch, 1), timeout: timeout}
}

// Do writes item, alone or with others, and returns its own outcome. When ctx ends first,
// Do returns ctx's error, and the item may still be written.
func (g *Group[T]) Do(ctx context.Context, item T) error {
	r := request[T]{item: item, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	lead := !g.flushing
	g.flushing = true
	g.mu.Unlock()
	if lead {
		// The batch does not end with this caller's context: other callers' items are in it.
		go g.drain(context.WithoutCancel(ctx))
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain writes batches of the waiting items until none is left.
func (g *Group[T]) drain(ctx context.Context) {
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.maxBatch)
		if n == 0 {
			g.flushing = false
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = append([]request[T](nil), g.pending[n:]...)
		g.mu.Unlock()
		g.write(ctx, batch)
	}
}

func (g *Group[T]) write(ctx context.Context, batch []request[T]) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	items := make([]T, len(batch))
	for i, r := range batch {
		items[i] = r.item
	}
	errs := g.flush(ctx, items)
	for i, r := range batch {
		var err error
		switch {
		case len(errs) != len(batch):
			err = fmt.Errorf("group commit: %d outcomes for %d items", len(errs), len(batch))
		default:
			err = errs[i]
		}
		r.done <- err
	}
}

// Each returns err as the outcome of every one of n items.
func Each(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
