package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/deploy/allinone"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// presenceExpiry is how long an edge counts a silent runner as live (presence.Expiry).
const presenceExpiry = 3 * messages.HeartbeatInterval

// regionMesh is an all-in-one without a runner whose edge is in region home; runner
// processes join its NATS in other regions.
type regionMesh struct {
	*allinone.Instance
	nc *nats.Conn
	js jetstream.JetStream
}

func startRegionMesh(t *testing.T, home string, neighbors ...string) regionMesh {
	t.Helper()
	inst := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Services = []string{"accounts", "ledger", "edge"}
		c.Languages = nil // no runner here: nothing to wait for
		c.NATSListen = "127.0.0.1:0"
		c.Region = home
		c.RegionNeighbors = neighbors
		c.FreeCreditMicros = 10 * testPrice
	})
	nc, err := nats.Connect(inst.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return regionMesh{Instance: inst, nc: nc, js: js}
}

// provisionRegion makes the python job consumer of region, as `codeexec provision` does
// for the regions it is given (the all-in-one provisions its own region only).
func (m regionMesh) provisionRegion(t *testing.T, region string) {
	t.Helper()
	cfg := streams.JobConsumerConfig(region, "python", streams.JobFleetMaxAckPending, processAckWait)
	if _, err := m.js.CreateOrUpdateConsumer(context.Background(), subjects.JobsStream, cfg); err != nil {
		t.Fatalf("provision the job consumer of %s: %v", region, err)
	}
}

// consumer returns the state of region's python job consumer.
func (m regionMesh) consumer(t *testing.T, region string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := m.js.Consumer(context.Background(), subjects.JobsStream, subjects.JobConsumer(region, "python"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// availableIn reads GET /api/v1/languages?region= for python.
func availableIn(t *testing.T, base, region string) bool {
	t.Helper()
	var list []struct {
		Language  string `json:"language"`
		Available bool   `json:"available"`
	}
	if status, body := call(t, base, "GET", "/api/v1/languages?region="+region, "", nil, &list); status != 200 {
		t.Fatalf("languages of %s: got %d %s", region, status, body)
	}
	for _, l := range list {
		if l.Language == "python" {
			return l.Available
		}
	}
	t.Fatalf("languages of %s: no python in %+v", region, list)
	return false
}

// startRunnerIn starts a runner process of region serving python with one slot (the
// settings of startRunner, in another region).
func startRunnerIn(t *testing.T, natsURL, id, region string) *runnerProc {
	t.Helper()
	return startRunnerWith(t, natsURL, id, "CODEEXEC_REGION="+region)
}

type regionResult struct {
	JobID         string  `json:"jobId"`
	RunTimeStatus string  `json:"runTimeStatus"`
	Stdout        string  `json:"stdout"`
	Region        string  `json:"region"`
	RunnerID      string  `json:"runnerId"`
	ErrorMessage  *string `json:"errorMessage"`
}

type regionAnswer struct {
	Succeeded bool         `json:"succeeded"`
	JobID     string       `json:"jobId"`
	Region    string       `json:"region"`
	Result    regionResult `json:"result"`
	Error     struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func runIn(t *testing.T, base, key, path string, body map[string]any) (int, regionAnswer) {
	t.Helper()
	var a regionAnswer
	status, _ := call(t, base, "POST", path, key, body, &a)
	return status, a
}

// TestRegionPolicy: a job for a region without a live runner is refused at once and
// costs nothing; with "regionPolicy": "prefer" it runs in the nearest region that has one
// (the edge's CODEEXEC_REGION_NEIGHBORS), and the answer says which.
func TestRegionPolicy(t *testing.T) {
	mesh := startRegionMesh(t, "eu-central", "us-east", "eu-west")
	mesh.provisionRegion(t, "eu-west")
	runner := startRunnerIn(t, mesh.NATSURL, uniqueID("west"), "eu-west")
	waitfor.Eventually(t, 90*time.Second, "python served in eu-west", func() (bool, error) {
		return availableIn(t, mesh.URL, "eu-west"), nil
	})
	user := registerUser(t, mesh.URL)
	before := getWallet(t, mesh.URL, user.APIKey)

	t.Run("languages report each region's runners", func(t *testing.T) {
		for region, want := range map[string]bool{"eu-west": true, "eu-central": false, "us-east": false} {
			if got := availableIn(t, mesh.URL, region); got != want {
				t.Errorf("python available in %s: got %v, want %v", region, got, want)
			}
		}
		if status, body := call(t, mesh.URL, "GET", "/api/v1/languages?region=eu.west", "", nil, nil); status != 400 {
			t.Errorf("a region that is no subject token: got %d %s, want 400", status, body)
		}
	})

	t.Run("a region without runners is refused at once, at no cost", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"language": "python", "code": "print(1)"},                                               // the edge's region
			{"language": "python", "code": "print(1)", "region": "us-east", "regionPolicy": "exact"}, // another one
		} {
			start := time.Now()
			status, a := runIn(t, mesh.URL, user.APIKey, "/api/v1/execute", body)
			if status != 503 || a.Error.Code != "no_runner" || a.Succeeded {
				t.Fatalf("%v: got %d %+v, want 503 no_runner", body, status, a)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("%v: the refusal took %s, want it at once", body, took)
			}
		}
		if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != before.BalanceMicros || w.HeldMicros != 0 {
			t.Fatalf("wallet after refusals: got %+v, want %+v with nothing held", w, before)
		}
	})

	t.Run("an unknown policy is refused", func(t *testing.T) {
		status, a := runIn(t, mesh.URL, user.APIKey, "/api/v1/execute",
			map[string]any{"language": "python", "code": "print(1)", "regionPolicy": "nearest"})
		if status != 400 || a.Error.Code != "invalid_input" {
			t.Fatalf("got %d %+v, want 400 invalid_input", status, a)
		}
	})

	t.Run("prefer runs in the nearest region with a runner", func(t *testing.T) {
		status, a := runIn(t, mesh.URL, user.APIKey, "/api/v1/execute",
			map[string]any{"language": "python", "code": "print('west')", "regionPolicy": "prefer"})
		if status != 200 || !a.Succeeded || a.Result.RunTimeStatus != "succeeded" || a.Result.Stdout != "west\n" {
			t.Fatalf("v1: got %d %+v, want 200 succeeded with west", status, a)
		}
		if a.Result.Region != "eu-west" || a.Result.RunnerID != runner.id {
			t.Fatalf("v1: ran in region %q on %q, want eu-west on %s", a.Result.Region, a.Result.RunnerID, runner.id)
		}
		// Asked for us-east, which has no runner: the edge's own region has none either,
		// its nearest neighbor us-east none, the next one (eu-west) has.
		status, a = runIn(t, mesh.URL, user.APIKey, "/api/v2/execute", map[string]any{"language": "python",
			"region": "us-east", "regionPolicy": "prefer",
			"files": []map[string]any{{"filename": "main.py", "code": "print('v2')", "isEntryPoint": true}}})
		if status != 200 || a.Result.RunTimeStatus != "succeeded" || a.Result.Region != "eu-west" {
			t.Fatalf("v2: got %d %+v, want 200 succeeded in eu-west", status, a)
		}
		var project struct {
			ID string `json:"id"`
		}
		if status, body := call(t, mesh.URL, "POST", "/api/projects", user.APIKey, map[string]any{"name": "regions",
			"language": "python", "files": []map[string]any{{"filename": "main.py", "code": "print('saved')", "isEntryPoint": true}}},
			&project); status != 201 {
			t.Fatalf("create project: got %d %s", status, body)
		}
		status, a = runIn(t, mesh.URL, user.APIKey, "/api/projects/"+project.ID+"/execute", map[string]any{"regionPolicy": "prefer"})
		if status != 200 || a.Result.Stdout != "saved\n" || a.Result.Region != "eu-west" {
			t.Fatalf("saved project: got %d %+v, want 200 with saved in eu-west", status, a)
		}
		status, a = runIn(t, mesh.URL, user.APIKey, "/api/projects/"+project.ID+"/execute", map[string]any{"regionPolicy": "anywhere"})
		if status != 400 || a.Error.Code != "invalid_input" {
			t.Fatalf("saved project with an unknown policy: got %d %+v, want 400 invalid_input", status, a)
		}
		status, a = runIn(t, mesh.URL, user.APIKey, "/api/v1/execute",
			map[string]any{"language": "python", "code": "print(1)", "regionPolicy": "prefer", "wait": false})
		if status != 202 || a.JobID == "" || a.Region != "eu-west" {
			t.Fatalf("wait false: got %d %+v, want 202 with the job's region eu-west", status, a)
		}
		if w, _ := waitCharged(t, mesh.URL, user.APIKey, 4); w.BalanceMicros != before.BalanceMicros-4*testPrice {
			t.Fatalf("balance after four runs: got %d, want %d", w.BalanceMicros, before.BalanceMicros-4*testPrice)
		}
	})
}

// TestStrandedJobIsAbandoned: a job waits in the queue of a region whose only runner
// stops (it drains: it finishes the job it holds and pulls no more). Once the region has
// had no live runner for longer than the presence expiry, the waiting request gets 503
// no_runner with the job id instead of a 504 a minute later; the job is not charged, it is
// gone from the queue, and a runner of the region that comes back and gets it anyway
// (a copy republished, as a job the edge could not delete would be) refuses to run it.
func TestStrandedJobIsAbandoned(t *testing.T) {
	mesh := startRegionMesh(t, "local")
	mesh.provisionRegion(t, "eu-west")
	first := startRunnerIn(t, mesh.NATSURL, uniqueID("leaving"), "eu-west")
	waitfor.Eventually(t, 90*time.Second, "python served in eu-west", func() (bool, error) {
		return availableIn(t, mesh.URL, "eu-west"), nil
	})
	user := registerUser(t, mesh.URL)
	before := getWallet(t, mesh.URL, user.APIKey)

	// Every job the edge publishes for eu-west, as published (core NATS sees the
	// stream's subjects too), so that the stranded one can be republished later.
	published := make(chan *nats.Msg, 8)
	sub, err := mesh.nc.ChanSubscribe(subjects.Jobs("eu-west", "python"), published)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	// One slot, taken by a job that runs a moment: the next one waits in the queue.
	var held regionAnswer
	if status, body := call(t, mesh.URL, "POST", "/api/v1/execute", user.APIKey, map[string]any{"language": "python",
		"code": "import time\ntime.sleep(2)\nprint('held')", "region": "eu-west", "wait": false}, &held); status != 202 {
		t.Fatalf("submit the holding job: got %d %s", status, body)
	}
	waitfor.Eventually(t, 30*time.Second, "the runner holds the first job", func() (bool, error) {
		return mesh.consumer(t, "eu-west").NumAckPending == 1, nil
	})

	type waited struct {
		status int
		answer regionAnswer
		at     time.Time
		err    error
	}
	done := make(chan waited, 1)
	go func() {
		data, _ := json.Marshal(map[string]any{"language": "python", "code": "print('stranded')", "region": "eu-west"})
		req, _ := http.NewRequest("POST", mesh.URL+"/api/v1/execute", bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+user.APIKey)
		resp, err := httpClient.Do(req)
		if err != nil {
			done <- waited{err: err}
			return
		}
		defer resp.Body.Close()
		var a regionAnswer
		err = json.NewDecoder(resp.Body).Decode(&a)
		done <- waited{status: resp.StatusCode, answer: a, at: time.Now(), err: err}
	}()
	var jobBody []byte
	waitfor.Eventually(t, 30*time.Second, "the second job waits in the queue", func() (bool, error) {
		for jobBody == nil {
			select {
			case m := <-published:
				var j messages.Job
				if err := json.Unmarshal(m.Data, &j); err != nil {
					return false, err
				}
				if j.JobID != held.JobID {
					jobBody = m.Data
				}
			default:
				return false, nil
			}
		}
		return mesh.consumer(t, "eu-west").NumPending == 1, nil
	})

	stopped := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var w waited
	select {
	case w = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the waiting request got no answer within a minute")
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.status != 503 || w.answer.Error.Code != "no_runner" || w.answer.JobID == "" || !strings.Contains(w.answer.Error.Message, w.answer.JobID) {
		t.Fatalf("the stranded job: got %d %+v, want 503 no_runner naming its job id", w.status, w.answer)
	}
	// The runner stops serving at its next heartbeat (draining), or one expiry after its
	// last; the edge gives the region one more expiry to come back, then gives up.
	if took, bound := w.at.Sub(stopped), 2*presenceExpiry+messages.HeartbeatInterval+2*time.Second; took > bound {
		t.Errorf("the 503 came %s after the runner stopped, want it within %s", took, bound)
	}
	stranded := w.answer.JobID
	var stored messages.Result
	readStored := func() {
		t.Helper()
		s, err := mesh.js.Stream(context.Background(), subjects.ResultsStream)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := s.GetLastMsgForSubject(context.Background(), subjects.Results(stranded))
		if err != nil {
			t.Fatalf("stored result of %s: %v", stranded, err)
		}
		stored = messages.Result{}
		if err := json.Unmarshal(raw.Data, &stored); err != nil {
			t.Fatal(err)
		}
	}
	readStored()
	if stored.Status != messages.StatusInternalError || stored.RunnerID != "" || !strings.Contains(stored.ErrorMessage, "region eu-west") {
		t.Fatalf("stored result: got %s by %q (%q), want the edge's internal_error", stored.Status, stored.RunnerID, stored.ErrorMessage)
	}
	var j jobAnswer
	if status, body := call(t, mesh.URL, "GET", "/api/v1/jobs/"+stranded, user.APIKey, nil, &j); status != 200 || j.Status != "done" || j.Result.RunTimeStatus != "internal_error" {
		t.Fatalf("poll the stranded job: got %d %s, want done with internal_error", status, body)
	}

	// The drained runner finished the job it held; the stranded one is out of the queue,
	// and only the held one is paid for.
	if code := first.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("the drained runner exited with %d, want 0", code)
	}
	waitfor.Eventually(t, 10*time.Second, "the eu-west queue is empty", func() (bool, error) {
		c := mesh.consumer(t, "eu-west")
		return c.NumPending == 0 && c.NumAckPending == 0, nil
	})
	settled, _ := waitCharged(t, mesh.URL, user.APIKey, 2)
	if settled.BalanceMicros != before.BalanceMicros-testPrice {
		t.Fatalf("balance: got %d, want %d (the held job paid, the stranded one not)", settled.BalanceMicros, before.BalanceMicros-testPrice)
	}

	// A runner of eu-west comes back and gets the stranded job anyway (a copy, as a job
	// the edge could not delete would reach it): its hold is closed, so it is not run.
	second := startRunnerIn(t, mesh.NATSURL, uniqueID("back"), "eu-west")
	waitfor.Eventually(t, 90*time.Second, "python served in eu-west again", func() (bool, error) {
		return availableIn(t, mesh.URL, "eu-west"), nil
	})
	if _, err := mesh.js.Publish(context.Background(), subjects.Jobs("eu-west", "python"), jobBody,
		jetstream.WithMsgID("late-"+stranded)); err != nil {
		t.Fatal(err)
	}
	waitfor.Eventually(t, 30*time.Second, "the returning runner refuses the stranded job", func() (bool, error) {
		for _, line := range strings.Split(second.logs.String(), "\n") {
			if strings.Contains(line, "job refused by the ledger, not run") && strings.Contains(line, stranded) {
				return true, nil
			}
		}
		return false, nil
	})
	waitfor.Eventually(t, 10*time.Second, "the eu-west queue is empty again", func() (bool, error) {
		c := mesh.consumer(t, "eu-west")
		return c.NumPending == 0 && c.NumAckPending == 0, nil
	})
	readStored()
	if stored.Status != messages.StatusInternalError || stored.RunnerID != "" {
		t.Fatalf("stored result after the runner came back: got %s by %q, want the edge's internal_error kept", stored.Status, stored.RunnerID)
	}
	if w, page := waitCharged(t, mesh.URL, user.APIKey, 2); w.BalanceMicros != settled.BalanceMicros || page.Totals.PriceMicros != testPrice {
		t.Fatalf("after the runner came back: balance %d, charged %d in all; want %d and %d", w.BalanceMicros, page.Totals.PriceMicros, settled.BalanceMicros, testPrice)
	}
}
