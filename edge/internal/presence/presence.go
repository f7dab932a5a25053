// Package presence tracks live runners from their heartbeats so the edge can refuse at once
// a job that no runner would take.
package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Expiry is how long a runner counts as live after its last heartbeat.
const Expiry = 3 * messages.HeartbeatInterval

// Tracker remembers the last heartbeat of every runner.
type Tracker struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	runners map[string]seen
}

type seen struct {
	hb messages.Heartbeat
	at time.Time
}

// NewTracker returns an empty tracker; now may be nil for the wall clock.
func NewTracker(log *slog.Logger, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{log: log, now: now, runners: make(map[string]seen)}
}

// Subscribe listens to every heartbeat on nc until ctx ends.
func (t *Tracker) Subscribe(ctx context.Context, nc *nats.Conn) error {
	sub, err := nc.Subscribe(subjects.HeartbeatsAll, func(m *nats.Msg) {
		var hb messages.Heartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil || hb.V != messages.Version || hb.RunnerID == "" {
			t.log.Warn("ignored a malformed heartbeat", "subject", m.Subject)
			return
		}
		t.Observe(hb)
	})
	if err != nil {
		return fmt.Errorf("subscribe to heartbeats: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = sub.Unsubscribe()
	}()
	return nil
}

// Observe records a heartbeat.
func (t *Tracker) Observe(hb messages.Heartbeat) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runners[hb.RunnerID] = seen{hb: hb, at: t.now()}
}

// Available reports whether a live, not draining runner of region serves language.
func (t *Tracker) Available(region, language string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for id, s := range t.runners {
		if now.Sub(s.at) > Expiry {
			delete(t.runners, id)
			continue
		}
		if s.hb.Region == region && !s.hb.Draining && slices.Contains(s.hb.Languages, language) {
			return true
		}
	}
	return false
}
