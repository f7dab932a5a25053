package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/codeexec/codeexec/edge/internal/dispatch"
	"github.com/codeexec/codeexec/edge/internal/presence"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func heartbeat(id, region string, draining bool) messages.Heartbeat {
	return messages.Heartbeat{V: messages.Version, RunnerID: id, Region: region, Languages: []string{"python"}, Draining: draining}
}

func TestPlaceJobFollowsThePolicy(t *testing.T) {
	tr := presence.NewTracker(quietLog(), nil)
	tr.Observe(heartbeat("r-us", "us-east", false))
	tr.Observe(heartbeat("r-eu", "eu-west", false))
	tr.Observe(heartbeat("r-ap", "ap-south", true)) // draining: serves nothing
	s := &Server{cfg: Config{Region: "eu-central", RegionNeighbors: []string{"ap-south", "us-east", "eu-west"}}, presence: tr}
	for _, tc := range []struct {
		name, region, policy, want string
	}{
		{"exact, served", "eu-west", "", "eu-west"},
		{"exact, unserved", "eu-central", "exact", ""},
		{"prefer, served at home", "eu-west", "prefer", "eu-west"},
		{"prefer skips the draining neighbor for the next", "eu-central", "prefer", "us-east"},
		{"prefer from another region tries the edge's own then its neighbors", "sa-east", "prefer", "us-east"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := &messages.Job{JobID: "j", Language: "python", Region: tc.region}
			err := s.placeJob(job, tc.policy)
			if tc.want == "" {
				var e *Error
				if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || e.Code != "no_runner" {
					t.Fatalf("got %v, want 503 no_runner", err)
				}
				return
			}
			if err != nil || job.Region != tc.want {
				t.Fatalf("got region %s (%v), want %s", job.Region, err, tc.want)
			}
		})
	}
	t.Run("prefer with no neighbor live names the regions tried", func(t *testing.T) {
		s := &Server{cfg: Config{Region: "eu-central", RegionNeighbors: []string{"ap-south"}}, presence: tr}
		err := s.placeJob(&messages.Job{JobID: "j", Language: "python", Region: "eu-central"}, "prefer")
		var e *Error
		if !errors.As(err, &e) || e.Code != "no_runner" || !strings.Contains(e.Message, "ap-south") {
			t.Fatalf("got %v, want 503 no_runner naming ap-south", err)
		}
	})
}

func TestBuildJobChecksTheRegionPolicy(t *testing.T) {
	catalog, err := languages.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{Region: "local"}, catalog: catalog}
	code := "print(1)"
	for _, policy := range []string{"", "exact", "prefer"} {
		if _, err := s.buildJob(&executeRequest{Language: "python", Code: &code, RegionPolicy: policy}, 1, "u"); err != nil {
			t.Errorf("policy %q: got %v, want it accepted", policy, err)
		}
	}
	_, err = s.buildJob(&executeRequest{Language: "python", Code: &code, RegionPolicy: "nearest"}, 1, "u")
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != "invalid_input" {
		t.Fatalf("policy nearest: got %v, want 400 invalid_input", err)
	}
}

// strandDispatcher is the part of the dispatcher the stranded-job watch uses.
type strandDispatcher struct {
	Dispatcher
	mu         sync.Mutex
	running    bool
	abandonErr error
	abandoned  []string
}

func (d *strandDispatcher) Running(context.Context, string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running, nil
}

func (d *strandDispatcher) Abandon(_ context.Context, job *messages.Job, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.abandonErr != nil {
		return d.abandonErr
	}
	d.abandoned = append(d.abandoned, job.JobID)
	return nil
}

func (d *strandDispatcher) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.abandoned)
}

func TestWatchStrandedAbandonsAQueuedJobOfARegionWithoutRunners(t *testing.T) {
	for _, tc := range []struct {
		name       string
		running    bool
		abandonErr error
		want       bool
	}{
		{name: "queued", want: true},
		{name: "started by a runner", running: true},
		{name: "a result came first", abandonErr: dispatch.ErrResultStored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := presence.NewTracker(quietLog(), nil)
				tr.Observe(heartbeat("r1", "eu", false))
				d := &strandDispatcher{running: tc.running, abandonErr: tc.abandonErr}
				s := &Server{cfg: Config{Region: "eu"}, presence: tr, dispatch: d, log: quietLog()}
				job := &messages.Job{JobID: "job-1", Language: "python", Region: "eu"}
				stop := s.watchStranded(context.Background(), job)

				// r1 goes silent: it counts as live for Expiry, then the grace of
				// another Expiry lets it come back before the job is given up.
				time.Sleep(2*presence.Expiry - time.Second)
				synctest.Wait()
				if d.calls() != 0 {
					t.Fatalf("abandoned %s after the last heartbeat: want the runner's expiry and a grace first", 2*presence.Expiry-time.Second)
				}
				time.Sleep(time.Second + 2*strandCheck)
				synctest.Wait()
				if got := stop(); got != tc.want {
					t.Fatalf("abandoned: got %v, want %v", got, tc.want)
				}
				if want := map[bool]int{true: 1}[tc.want]; d.calls() != want {
					t.Fatalf("Abandon succeeded %d times, want %d", d.calls(), want)
				}
			})
		})
	}
	t.Run("a region that keeps its runner keeps its job", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := presence.NewTracker(quietLog(), nil)
			d := &strandDispatcher{}
			s := &Server{cfg: Config{Region: "eu"}, presence: tr, dispatch: d, log: quietLog()}
			ctx, cancel := context.WithCancel(context.Background())
			beating := make(chan struct{})
			defer func() { cancel(); <-beating }()
			go func() { // the runner's heartbeats
				defer close(beating)
				for ctx.Err() == nil {
					tr.Observe(heartbeat("r1", "eu", false))
					time.Sleep(messages.HeartbeatInterval)
				}
			}()
			stop := s.watchStranded(ctx, &messages.Job{JobID: "job-2", Language: "python", Region: "eu"})
			time.Sleep(time.Minute)
			if stop() || d.calls() != 0 {
				t.Fatal("abandoned a job whose region has a live runner")
			}
		})
	})
}
