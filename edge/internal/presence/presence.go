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

// forget is how long a silent runner is remembered, so that Unserved can say how long a
// region has gone without the languages it served.
const forget = time.Hour

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
	// drainingSince is when the runner first said it was draining (zero: it is not).
	drainingSince time.Time
}

// servedUntil is when the runner stopped, or stops, taking jobs: when it began to drain,
// or when its last heartbeat expires.
func (s seen) servedUntil() time.Time {
	if s.hb.Draining {
		return s.drainingSince
	}
	return s.at.Add(Expiry)
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
	now := t.now()
	s := seen{hb: hb, at: now}
	if hb.Draining {
		s.drainingSince = now
		if prev, ok := t.runners[hb.RunnerID]; ok && prev.hb.Draining {
			s.drainingSince = prev.drainingSince
		}
	}
	t.runners[hb.RunnerID] = s
}

// Available reports whether a live, not draining runner of region serves language.
func (t *Tracker) Available(region, language string) bool {
	live, _ := t.state(region, language)
	return live
}

// Unserved reports how long region has had no live, not draining runner of language: 0
// while one serves it; otherwise the time since the last such runner began to drain or
// went silent for Expiry. A region and language that no runner served within the last
// hour (or since the tracker started) count as unserved for that hour.
func (t *Tracker) Unserved(region, language string) time.Duration {
	_, d := t.state(region, language)
	return d
}

func (t *Tracker) state(region, language string) (live bool, unserved time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var until time.Time
	known := false
	for id, s := range t.runners {
		if now.Sub(s.at) > forget {
			delete(t.runners, id)
			continue
		}
		if s.hb.Region != region || !slices.Contains(s.hb.Languages, language) {
			continue
		}
		if !s.hb.Draining && now.Sub(s.at) <= Expiry {
			live = true
		}
		if u := s.servedUntil(); !known || u.After(until) {
			until, known = u, true
		}
	}
	switch {
	case live:
		return true, 0
	case !known:
		return false, forget
	}
	return false, max(now.Sub(until), 0)
}
