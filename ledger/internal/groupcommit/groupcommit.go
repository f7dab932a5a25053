// Package groupcommit writes many callers' items with one database call: while one call
// is under way, the items that arrive wait, and the next call takes them all. A lone
// caller pays nothing extra (its item goes at once); under load, each call carries many
// items, so the database does one command and one commit for them instead of one each.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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

// ErrDuplicate is the outcome of a document whose insert met a unique index.
var ErrDuplicate = errors.New("duplicate key")

// Inserts returns a Group that inserts the documents of concurrent callers into coll
// with one unordered insertMany: a duplicate (ErrDuplicate) or a failure of one document
// does not stop the others. On FerretDB the documents of one call share one transaction.
func Inserts(coll *mongo.Collection, maxBatch int, timeout time.Duration) *Group[any] {
	return New(func(ctx context.Context, docs []any) []error {
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		return perDocument(len(docs), err, func(we mongo.WriteError) error {
			if we.HasErrorCode(11000) {
				return ErrDuplicate
			}
			return we
		})
	}, maxBatch, timeout)
}

// Deletes returns a Group that deletes the documents of concurrent callers from coll by
// _id, with one unordered bulk write of deletes (each an indexed lookup by _id).
func Deletes(coll *mongo.Collection, maxBatch int, timeout time.Duration) *Group[any] {
	return New(func(ctx context.Context, ids []any) []error {
		models := make([]mongo.WriteModel, len(ids))
		for i, id := range ids {
			models[i] = mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: id}})
		}
		_, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		return perDocument(len(ids), err, func(we mongo.WriteError) error { return we })
	}, maxBatch, timeout)
}

// perDocument spreads the error of a bulk call over its n documents.
func perDocument(n int, err error, writeError func(mongo.WriteError) error) []error {
	if err == nil {
		return make([]error, n)
	}
	var bulk mongo.BulkWriteException
	if !errors.As(err, &bulk) || bulk.WriteConcernError != nil {
		return Each(n, err)
	}
	errs := make([]error, n)
	for _, we := range bulk.WriteErrors {
		if we.Index < 0 || we.Index >= n {
			return Each(n, err)
		}
		errs[we.Index] = writeError(we.WriteError)
	}
	return errs
}
