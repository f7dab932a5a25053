package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/waitfor"
)

func TestItemsThatWaitGoTogether(t *testing.T) {
	var mu sync.Mutex
	var batches [][]int
	release := make(chan struct{})
	first := make(chan struct{})
	g := New(func(_ context.Context, items []int) []error {
		mu.Lock()
		batches = append(batches, append([]int(nil), items...))
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release // the first call is slow: the others pile up behind it
		}
		errs := make([]error, len(items))
		for i, it := range items {
			if it%2 == 1 {
				errs[i] = fmt.Errorf("odd %d", it)
			}
		}
		return errs
	}, 100, 10*time.Second)

	results := make([]error, 11)
	var wg sync.WaitGroup
	wg.Go(func() { results[0] = g.Do(t.Context(), 0) })
	<-first
	for i := 1; i <= 10; i++ {
		wg.Go(func() { results[i] = g.Do(t.Context(), i) })
	}
	waitPending(t, g, 10)
	close(release)
	wg.Wait()

	if len(batches) != 2 || len(batches[0]) != 1 || len(batches[1]) != 10 {
		t.Fatalf("batches: got %v, want [0] then the ten that waited", batches)
	}
	for i, err := range results {
		if (i%2 == 1) != (err != nil) {
			t.Fatalf("item %d: got %v, want its own outcome", i, err)
		}
	}
}

func TestBatchesAreBounded(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	first := make(chan struct{})
	g := New(func(_ context.Context, items []int) []error {
		mu.Lock()
		sizes = append(sizes, len(items))
		n := len(sizes)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release
		}
		return make([]error, len(items))
	}, 4, 10*time.Second)
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Do(t.Context(), 0) })
	<-first
	for i := 1; i <= 9; i++ {
		wg.Go(func() { _ = g.Do(t.Context(), i) })
	}
	waitPending(t, g, 9)
	close(release)
	wg.Wait()
	if fmt.Sprint(sizes) != "[1 4 4 1]" {
		t.Fatalf("batch sizes: got %v, want [1 4 4 1]", sizes)
	}
}

func TestAnOutcomeForEveryItem(t *testing.T) {
	g := New(func(context.Context, []string) []error { return nil }, 10, time.Second)
	if err := g.Do(t.Context(), "x"); err == nil {
		t.Fatal("a flush that reported no outcome: got nil, want an error")
	}
	boom := errors.New("boom")
	g = New(func(_ context.Context, items []string) []error { return Each(len(items), boom) }, 10, time.Second)
	if err := g.Do(t.Context(), "x"); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}

// A caller whose context ends stops waiting; the batch (another caller's too) goes on.
func TestCallerContextDoesNotCancelTheBatch(t *testing.T) {
	release := make(chan struct{})
	var flushCtxErr error
	flushed := make(chan struct{})
	g := New(func(ctx context.Context, items []int) []error {
		<-release
		flushCtxErr = ctx.Err()
		close(flushed)
		return make([]error, len(items))
	}, 10, 10*time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Do(ctx, 1) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the caller's context error", err)
	}
	close(release)
	<-flushed
	if flushCtxErr != nil {
		t.Fatalf("the batch's context ended with its caller's: %v", flushCtxErr)
	}
}

func waitPending[T any](t *testing.T, g *Group[T], n int) {
	t.Helper()
	waitfor.Eventually(t, 10*time.Second, fmt.Sprintf("%d items waiting", n), func() (bool, error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending) == n, nil
	})
}
