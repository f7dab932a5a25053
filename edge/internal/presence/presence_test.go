package presence

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/messages"
)

func TestAvailableFollowsHeartbeats(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })
	if tr.Available("local", "python") {
		t.Fatal("available before any heartbeat")
	}
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r1", Region: "local", Languages: []string{"python"}})
	if !tr.Available("local", "python") {
		t.Fatal("python not available after a heartbeat")
	}
	if tr.Available("local", "ruby") || tr.Available("eu", "python") {
		t.Fatal("available for a language or region the runner does not serve")
	}
	now = now.Add(Expiry + time.Second)
	if tr.Available("local", "python") {
		t.Fatal("still available after the runner went silent")
	}
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r1", Region: "local", Languages: []string{"python"}, Draining: true})
	if tr.Available("local", "python") {
		t.Fatal("a draining runner counts as available")
	}
}
