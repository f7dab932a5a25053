package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// localCluster is a deploy/local-cluster of one test: 3 NATS nodes with the shipped
// permissions and R3 streams, FerretDB, the ledger, accounts, 2 edges and 3 runners, each a
// process of its own.
type localCluster struct {
	script string
	env    []string          // the script's settings
	addr   map[string]string // what `local-cluster env` printed
	dir    string
}

func startLocalCluster(t *testing.T) *localCluster {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lc := &localCluster{script: filepath.Join(repo, "deploy", "local-cluster"), dir: dir}
	lc.env = append(environWithout("CODEEXEC_"),
		"CODEEXEC_CLUSTER_DIR="+dir,
		"CODEEXEC_CLUSTER_BIN="+filepath.Join(dir, "bin"),
		fmt.Sprintf("CODEEXEC_CLUSTER_PORT=%d", freePortRange(t, 80)),
		"CODEEXEC_CLUSTER_LANGUAGES=python",
		"CODEEXEC_LOG_LEVEL=info",
		"CODEEXEC_MAX_CONCURRENT=16",
		// The test polls wallets and jobs; the limits are not what it is about.
		"CODEEXEC_RATE_PER_SEC=1000", "CODEEXEC_RATE_BURST=1000",
	)
	t.Cleanup(func() {
		if out, err := lc.run(context.Background(), "stop"); err != nil {
			t.Errorf("local-cluster stop: %v\n%s", err, out)
		}
		if t.Failed() {
			lc.dumpLogs(t)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := lc.run(ctx, "start"); err != nil {
		t.Fatalf("local-cluster start: %v\n%s", err, out)
	}
	out, err := lc.run(ctx, "env")
	if err != nil {
		t.Fatalf("local-cluster env: %v\n%s", err, out)
	}
	lc.addr = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			lc.addr[k] = v
		}
	}
	return lc
}

func (lc *localCluster) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, lc.script, args...)
	cmd.Env = lc.env
	return cmd.CombinedOutput()
}

// must runs the script or fails the test.
func (lc *localCluster) must(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := lc.run(ctx, args...); err != nil {
		t.Fatalf("local-cluster %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// dumpLogs shows the tail of every log, and keeps the logs outside the test's temporary
// directory for a closer look.
func (lc *localCluster) dumpLogs(t *testing.T) {
	logs, _ := filepath.Glob(filepath.Join(lc.dir, "*.log"))
	if keep, err := os.MkdirTemp("", "codeexec-cluster-logs-"); err == nil {
		for _, l := range logs {
			if data, err := os.ReadFile(l); err == nil {
				_ = os.WriteFile(filepath.Join(keep, filepath.Base(l)), data, 0o600)
			}
		}
		t.Logf("the cluster's logs are kept in %s", keep)
	}
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		t.Logf("--- %s (tail)\n%s", filepath.Base(l), data)
	}
}

// provisioner connects to the cluster as the provisioning user (to read stream info).
func (lc *localCluster) provisioner(t *testing.T) jetstream.JetStream {
	t.Helper()
	return natsOf(t, lc.addr["NATS_URLS"], nats.UserInfo("provision", lc.addr["PROVISION_PASS"]))
}

// freePortRange returns a base port p such that p+1 … p+n are free on loopback now.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for base := 31000 + int(time.Now().UnixNano()%97)*200; base < 60000; base += 200 {
		free := true
		for p := base + 1; p <= base+n && free; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				free = false
				continue
			}
			ln.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// loadRecord is one request of the steady load.
type loadRecord struct {
	user, edge int
	start, end time.Time
	status     int
	retryAfter time.Duration // what a non-200 answer asked the client to wait
	code       string        // error code of a non-200 answer
	jobID      string
	runStatus  string
	err        error // no HTTP answer at all
}

// The mesh as an operator runs it, under steady load while a runner, the NATS leader of
// the jobs stream and the ledger are SIGKILLed one after another and started again: no job
// is lost or charged twice, every request gets an answer, every balance is its credit
// minus the price of its charged runs, and ledger-check finds every chain consistent.
func TestClusterSurvivesCrashes(t *testing.T) {
	lc := startLocalCluster(t)
	edges := []string{lc.addr["EDGE_1_URL"], lc.addr["EDGE_2_URL"]}
	const clients = 4
	users := make([]registered, clients)
	credit := make([]int64, clients)
	for i := range users {
		users[i] = registerUser(t, edges[i%2])
		credit[i] = getWallet(t, edges[i%2], users[i].APIKey).BalanceMicros
	}

	var mu sync.Mutex
	var records []loadRecord
	// count is how many requests have been answered, or answered 200.
	count := func(succeeded bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range records {
			if !succeeded || r.status == 200 {
				n++
			}
		}
		return n
	}
	var started atomic.Int64 // requests sent so far
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	client := &http.Client{Timeout: 3 * time.Minute}
	for c := range clients {
		load.Go(func() {
			for n := 0; loadCtx.Err() == nil; n++ {
				started.Add(1)
				rec := loadRecord{user: c, edge: (c + n) % 2, start: time.Now()}
				body := fmt.Sprintf(`{"language":"python","code":"import time\ntime.sleep(0.2)\nprint(%d)"}`, n)
				rec.status, rec.code, rec.jobID, rec.runStatus, rec.retryAfter, rec.err = postExecute(client, edges[rec.edge], users[c].APIKey, body)
				rec.end = time.Now()
				mu.Lock()
				records = append(records, rec)
				mu.Unlock()
				if rec.status != 200 { // a client waits as the answer asks before it tries again
					select {
					case <-time.After(max(rec.retryAfter, 250*time.Millisecond)):
					case <-loadCtx.Done():
					}
				}
			}
		})
	}
	stopped := false
	defer func() {
		if !stopped {
			stopLoad()
			load.Wait()
		}
	}()
	// progress waits for more requests answered (succeeded: answered 200).
	progress := func(what string, more int, succeeded bool) {
		t.Helper()
		want := count(succeeded) + more
		waitfor.Eventually(t, 3*time.Minute, what, func() (bool, error) { return count(succeeded) >= want, nil })
	}
	progress("the load runs", 8, true)

	type fault struct {
		name     string
		from, to time.Time
	}
	var faults []fault
	// crash SIGKILLs part, waits for more requests answered (succeeded: 200) while it is
	// down, starts it again, and waits until jobs succeed again.
	crash := func(part string, more int, succeeded bool, back func()) {
		t.Helper()
		f := fault{name: part, from: time.Now()}
		lc.must(t, "kill", part)
		progress("requests answered without "+part, more, succeeded)
		lc.must(t, "start-one", part)
		back()
		progress("jobs succeed with "+part+" back", 6, true)
		f.to = time.Now()
		faults = append(faults, f)
		// The next fault starts once every request sent during this one is answered, so
		// that each request is counted against one fault.
		sent := int(started.Load())
		waitfor.Eventually(t, 3*time.Minute, "the requests sent while "+part+" was down are answered", func() (bool, error) {
			return count(false) >= sent, nil
		})
	}

	// A runner: its jobs move to the other runner of the region once their ack wait ends.
	crash("runner-1", 6, true, func() {})

	// The node that leads the jobs stream: another node takes over, nothing is lost (R3).
	js := lc.provisioner(t)
	info, err := js.Stream(t.Context(), subjects.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	si := info.CachedInfo()
	if si.Config.Replicas != 3 || si.Cluster == nil || si.Cluster.Leader == "" {
		t.Fatalf("jobs stream: %d replicas, cluster %+v; want 3 with a leader", si.Config.Replicas, si.Cluster)
	}
	leader := "nats-" + strings.TrimPrefix(si.Cluster.Leader, "codeexec-local-")
	crash(leader, 6, true, func() {
		n := strings.TrimPrefix(leader, "nats-")
		waitfor.Eventually(t, time.Minute, leader+" is back and current", func() (bool, error) {
			resp, err := http.Get(lc.addr["NATS_"+n+"_MONITOR"] + "/healthz")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == 200, nil
		})
	})

	// The ledger: reserves fail (503) while it is down; results wait in their stream and are
	// charged once it is back.
	crash("ledger", 4, false, func() {})

	// An edge: its clients get no answer while it is down (they would go to the other
	// edge); the jobs it had published run and are charged once all the same.
	crash("edge-2", 4, true, func() {
		waitfor.Eventually(t, time.Minute, "edge-2 is ready again", func() (bool, error) {
			resp, err := http.Get(edges[1] + "/readyz")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == 200, nil
		})
	})
	edgeDown := faults[len(faults)-1]

	stopLoad()
	load.Wait()
	stopped = true

	// Every request got an answer; a 200 carries its result. Jobs that were answered
	// without one (504, 202) end with a stored result.
	byUser := make([]map[string]bool, clients) // jobs answered with a result, per user
	for i := range byUser {
		byUser[i] = map[string]bool{}
	}
	codes := map[string]int{}
	for _, r := range records {
		switch {
		case r.err != nil && r.edge == 1 && r.start.Before(edgeDown.to) && r.end.After(edgeDown.from):
			codes["no answer: edge-2 down"]++
		case r.err != nil:
			t.Errorf("a request got no answer: %v", r.err)
		case r.status == 200:
			codes["200 "+r.runStatus]++
			if r.runStatus != "succeeded" {
				t.Errorf("job %s: %s, want succeeded", r.jobID, r.runStatus)
			}
			byUser[r.user][r.jobID] = true
		case r.status == 503 || r.status == 504 || r.status == 429:
			codes[fmt.Sprintf("%d %s", r.status, r.code)]++
			if r.jobID != "" {
				t.Logf("job %s answered %d %s after %s", r.jobID, r.status, r.code, r.end.Sub(r.start).Round(time.Millisecond))
				waitJobDone(t, edges[0], users[r.user].APIKey, r.jobID)
			}
		default:
			codes[fmt.Sprintf("%d %s", r.status, r.code)]++
			t.Errorf("request answered %d %s (job %q)", r.status, r.code, r.jobID)
		}
	}
	t.Logf("%d requests: %v", len(records), codes)

	// Money: every hold settled, one record per job, each balance its credit minus its charges.
	// A request that edge-2 took when it was killed between its reserve and its publish left a
	// hold whose job was never queued: the ledger gives that job up and releases its hold
	// after its orphan grace (45 s), well within the wait.
	settling := time.Now()
	for i, u := range users {
		waitfor.Eventually(t, 2*time.Minute, "every hold of user "+u.UserID+" settled", func() (bool, error) {
			return getWallet(t, edges[i%2], u.APIKey).HeldMicros == 0, nil
		})
		if i == len(users)-1 {
			t.Logf("every hold settled %s after the load stopped (edge-2 was killed %s before)",
				time.Since(settling).Round(time.Second), settling.Sub(edgeDown.from).Round(time.Second))
		}
		// A ledger killed after a charge and before its record left the result unacked:
		// its next life records the job when the result comes back, after the charges'
		// AckWait (the charge itself is not made twice).
		var recs []usageRecord
		waitfor.Eventually(t, streams.ChargesAckWait+time.Minute, "a record of every job of user "+u.UserID+" that succeeded", func() (bool, error) {
			recs = usageRecords(t, edges[i%2], u.APIKey)
			have := map[string]bool{}
			for _, r := range recs {
				have[r.JobID] = true
			}
			for job := range byUser[i] {
				if !have[job] {
					return false, nil
				}
			}
			return true, nil
		})
		seen := map[string]int{}
		var charged int64
		for _, r := range recs {
			seen[r.JobID]++
			charged += r.PriceMicros
		}
		for job, n := range seen {
			if n > 1 {
				t.Errorf("job %s has %d records", job, n)
			}
		}
		for job := range byUser[i] {
			if seen[job] != 1 {
				t.Errorf("job %s answered succeeded but has %d records", job, seen[job])
			}
		}
		if w := getWallet(t, edges[i%2], u.APIKey); w.HeldMicros != 0 || w.BalanceMicros != credit[i]-charged {
			t.Errorf("user %d: balance %d and held %d, want credit %d minus charges %d and nothing held", i, w.BalanceMicros, w.HeldMicros, credit[i], charged)
		}
	}
	cmd := exec.Command(ledgerCheckBinary.build(t))
	cmd.Env = append(environWithout("CODEEXEC_"), "CODEEXEC_MONGO_URI="+lc.addr["MONGO_URI"])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ledger-check: %v\n%s", err, out)
	} else {
		t.Logf("ledger-check: %s", strings.TrimSpace(string(out)))
	}

	// How long the requests that overlapped a fault took.
	for _, f := range faults {
		var lat []time.Duration
		for _, r := range records {
			if r.start.Before(f.to) && r.end.After(f.from) {
				lat = append(lat, r.end.Sub(r.start))
			}
		}
		slices.Sort(lat)
		if len(lat) > 0 {
			t.Logf("%s down: %d requests affected, p50 %s, p99 %s, max %s", f.name, len(lat),
				lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		}
	}
}

// postExecute sends one execute request; err is set only when no HTTP answer came.
func postExecute(client *http.Client, base, key, body string) (status int, code, jobID, runStatus string, retryAfter time.Duration, err error) {
	req, err := http.NewRequest("POST", base+"/api/v1/execute", strings.NewReader(body))
	if err != nil {
		return 0, "", "", "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", "", 0, err
	}
	defer resp.Body.Close()
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		retryAfter = time.Duration(secs) * time.Second
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", "", "", retryAfter, err
	}
	var a executeAnswer
	_ = json.Unmarshal(data, &a)
	jobID = a.JobID
	if a.Result.JobID != "" {
		jobID = a.Result.JobID
	}
	return resp.StatusCode, a.Error.Code, jobID, a.Result.RunTimeStatus, retryAfter, nil
}

// waitJobDone waits until GET /api/v1/jobs/:id gives the job's result.
func waitJobDone(t *testing.T, base, key, jobID string) {
	t.Helper()
	waitfor.Eventually(t, 2*time.Minute, "job "+jobID+" ends", func() (bool, error) {
		var a struct {
			Result *result `json:"result"`
		}
		status, _ := call(t, base, "GET", "/api/v1/jobs/"+jobID, key, nil, &a)
		return status == 200 && a.Result != nil && a.Result.RunTimeStatus != "", nil
	})
}

type usageRecord struct {
	JobID       string `json:"jobId"`
	PriceMicros int64  `json:"priceMicros"`
}

// usageRecords reads every execution record of a user.
func usageRecords(t *testing.T, base, key string) []usageRecord {
	t.Helper()
	var all []usageRecord
	for page := 1; ; page++ {
		var p struct {
			Records []usageRecord `json:"records"`
		}
		status, body := call(t, base, "GET", fmt.Sprintf("/api/usage?page=%d&pageSize=100", page), key, nil, &p)
		if status != 200 {
			t.Fatalf("usage page %d: %d %s", page, status, body)
		}
		all = append(all, p.Records...)
		if len(p.Records) < 100 {
			return all
		}
	}
}
