package sandbox

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// oomWatcher remembers Docker's "oom" events for this runner's containers. On cgroup v1
// with dockerd 20.10, a process of an exec'd step killed by the kernel's OOM killer (while
// the container's init survives) leaves State.OOMKilled false: the event, emitted from the
// cgroup's memory.oom_control notification, is the evidence. It arrives within a few
// milliseconds of the kill, usually before the exec's exit is reported.
type oomWatcher struct {
	mu      sync.Mutex
	seen    map[string]bool
	waiters map[string][]chan struct{}
	ready   chan struct{}
	once    sync.Once
}

func newOOMWatcher() *oomWatcher {
	return &oomWatcher{seen: map[string]bool{}, waiters: map[string][]chan struct{}{}, ready: make(chan struct{})}
}

func (w *oomWatcher) run(ctx context.Context, docker *client.Client, runnerID string, log *slog.Logger) {
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionOOM)),
		filters.Arg("label", LabelRunner+"="+runnerID),
	)
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 10*time.Second) {
		subCtx, cancel := context.WithCancel(ctx)
		msgs, errs := docker.Events(subCtx, events.ListOptions{Filters: args})
		// The subscription is made once the daemon answers; a ping orders us after it.
		if _, err := docker.Ping(subCtx); err == nil {
			w.once.Do(func() { close(w.ready) })
		}
	loop:
		for {
			select {
			case m := <-msgs:
				w.mark(m.Actor.ID)
				backoff = 100 * time.Millisecond
			case err := <-errs:
				if ctx.Err() == nil {
					log.Warn("docker events stream ended; resubscribing", "err", err)
				}
				break loop
			case <-ctx.Done():
				break loop
			}
		}
		cancel()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
}

func (w *oomWatcher) mark(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[id] = true
	for _, ch := range w.waiters[id] {
		close(ch)
	}
	delete(w.waiters, id)
}

// wait reports whether an oom event was seen for id, waiting at most d for one.
func (w *oomWatcher) wait(ctx context.Context, id string, d time.Duration) bool {
	w.mu.Lock()
	if w.seen[id] {
		w.mu.Unlock()
		return true
	}
	if d <= 0 {
		w.mu.Unlock()
		return false
	}
	ch := make(chan struct{})
	w.waiters[id] = append(w.waiters[id], ch)
	w.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[id]
}

// notify returns a channel closed once an oom event for id is seen, or id is forgotten (ask
// wait, with no delay, which of the two).
func (w *oomWatcher) notify(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if w.seen[id] {
		close(ch)
		return ch
	}
	w.waiters[id] = append(w.waiters[id], ch)
	return ch
}

func (w *oomWatcher) forget(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.seen, id)
	for _, ch := range w.waiters[id] {
		close(ch)
	}
	delete(w.waiters, id)
}
