package presence

import (
	"io"
	"log/slog"
	"maps"
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

func TestUnservedCountsFromTheLastRunnersEnd(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })
	if got := tr.Unserved("eu", "python"); got != forget {
		t.Fatalf("never served: got %s, want %s", got, forget)
	}
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r1", Region: "eu", Languages: []string{"python"}})
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r2", Region: "eu", Languages: []string{"python", "ruby"}})
	if got := tr.Unserved("eu", "python"); got != 0 {
		t.Fatalf("served: got %s, want 0", got)
	}

	// r1 goes silent; r2 keeps beating, then begins to drain 4 s later.
	now = now.Add(4 * time.Second)
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r2", Region: "eu", Languages: []string{"python", "ruby"}, Draining: true})
	if tr.Available("eu", "python") == false {
		t.Fatal("r1 is still live: want python available")
	}
	now = now.Add(Expiry) // r1 expired 4 s ago; r2 drains since Expiry
	if tr.Available("eu", "python") {
		t.Fatal("available with r1 silent and r2 draining")
	}
	if got, want := tr.Unserved("eu", "python"), 4*time.Second; got != want {
		t.Fatalf("python: got unserved %s, want %s (since r1 expired)", got, want)
	}
	// Ruby was only r2's: unserved since r2 began to drain, however often it still beats.
	now = now.Add(time.Second)
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r2", Region: "eu", Languages: []string{"python", "ruby"}, Draining: true})
	if got, want := tr.Unserved("eu", "ruby"), Expiry+time.Second; got != want {
		t.Fatalf("ruby: got unserved %s, want %s (since r2 began to drain)", got, want)
	}
	if got := tr.Unserved("us", "python"); got != forget {
		t.Fatalf("another region: got %s, want %s", got, forget)
	}

	// A runner back in the region serves it again at once.
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r3", Region: "eu", Languages: []string{"python"}})
	if got := tr.Unserved("eu", "python"); got != 0 || !tr.Available("eu", "python") {
		t.Fatalf("after r3's heartbeat: got unserved %s, want 0 and available", got)
	}
	// A runner silent for longer than forget is forgotten.
	now = now.Add(forget + time.Minute)
	if got := tr.Unserved("eu", "python"); got != forget {
		t.Fatalf("after an hour of silence: got %s, want %s", got, forget)
	}
}

func TestLiveCountsRunnersPerRegionAndLanguage(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := NewTracker(slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r1", Region: "local", Languages: []string{"python", "ruby"}})
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r2", Region: "local", Languages: []string{"python"}})
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r3", Region: "eu", Languages: []string{"python", "bad lang"}, Draining: true})
	want := map[servedBy]int{{"local", "python"}: 2, {"local", "ruby"}: 1, {"eu", "python"}: 0}
	if got := tr.live(); !maps.Equal(got, want) {
		t.Fatalf("live: got %v, want %v", got, want)
	}
	now = now.Add(Expiry + time.Second)
	tr.Observe(messages.Heartbeat{V: 1, RunnerID: "r2", Region: "local", Languages: []string{"python"}})
	want = map[servedBy]int{{"local", "python"}: 1, {"local", "ruby"}: 0, {"eu", "python"}: 0}
	if got := tr.live(); !maps.Equal(got, want) {
		t.Fatalf("live after r1 went silent: got %v, want %v", got, want)
	}
	now = now.Add(forget + time.Second)
	if got := tr.live(); len(got) != 0 {
		t.Fatalf("live an hour later: got %v, want nothing", got)
	}
}
