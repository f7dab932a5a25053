package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/codeexec/codeexec/deploy/internal/opsfiles"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/trace"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// TestSeeTheMesh runs an all-in-one with one runner slot and checks what an operator sees
// of it: the queue filling and draining, one request followed through every service's
// logs by its trace id, every metric the alert rules and the dashboard name exported, and
// no label that could grow with users, jobs, keys, containers or traces.
func TestSeeTheMesh(t *testing.T) {
	logs := &syncBuffer{}
	mesh := startMeshLogging(t, t.TempDir(), func(c *config.Config) {
		c.Languages = []string{"python"}
		c.RunnerSlots = 1
		c.PoolSize = 1
		c.FreeCreditMicros = 20 * testPrice
		// A region whose jobs no runner takes: the test holds them itself, to see them
		// in flight, redelivered and dead-lettered.
		c.Regions = []string{"local", "nowhere"}
		c.JobAckWait = time.Second
		c.NATSListen = "127.0.0.1:0"
	}, logs)
	user := registerUser(t, mesh.URL)

	t.Run("queue depth and age follow five jobs through one slot", func(t *testing.T) {
		var wg sync.WaitGroup
		jobs := make(chan string, 5)
		for range 5 {
			wg.Go(func() {
				status, a := execute(t, mesh.URL, user.APIKey, map[string]any{
					"language": "python", "code": "import time; time.sleep(2)", "wait": false})
				if status != http.StatusAccepted || a.JobID == "" {
					t.Errorf("queue a job: got %d %+v, want 202 with a job id", status, a)
					return
				}
				jobs <- a.JobID
			})
		}
		wg.Wait()
		close(jobs)
		if t.Failed() {
			t.FailNow()
		}
		queue := map[string]string{"region": "local", "language": "python"}
		var firstAge float64
		waitfor.Eventually(t, 20*time.Second, "3 or more python jobs waiting in local", func() (bool, error) {
			m := scrape(t, mesh.MetricsURL)
			pending, _ := m.value("codeexec_queue_jobs_pending", queue)
			firstAge, _ = m.value("codeexec_queue_oldest_job_age_seconds", queue)
			return pending >= 3 && firstAge > 0, nil
		})
		waitfor.Eventually(t, 10*time.Second, "the oldest waiting job's age to grow", func() (bool, error) {
			m := scrape(t, mesh.MetricsURL)
			age, _ := m.value("codeexec_queue_oldest_job_age_seconds", queue)
			pending, _ := m.value("codeexec_queue_jobs_pending", queue)
			if pending == 0 {
				return false, fmt.Errorf("the queue emptied before its oldest job's age was seen growing past %.2fs", firstAge)
			}
			return age >= firstAge+1, nil
		})
		waitfor.Eventually(t, 90*time.Second, "the queue to empty once the jobs ran", func() (bool, error) {
			m := scrape(t, mesh.MetricsURL)
			var sum float64
			for _, name := range []string{"codeexec_queue_jobs_pending", "codeexec_queue_oldest_job_age_seconds", "codeexec_queue_jobs_in_flight"} {
				v, ok := m.value(name, queue)
				if !ok {
					return false, fmt.Errorf("%s%v not exported", name, queue)
				}
				sum += v
			}
			return sum == 0, nil
		})
		for id := range jobs {
			var job struct {
				Status string `json:"status"`
				Result result `json:"result"`
			}
			if status, body := call(t, mesh.URL, "GET", "/api/v1/jobs/"+id, user.APIKey, nil, &job); status != 200 || job.Status != "done" || job.Result.RunTimeStatus != "succeeded" {
				t.Errorf("job %s: got %d %s, want done and succeeded", id, status, body)
			}
		}
		waitfor.Eventually(t, 30*time.Second, "the ledger to charge every result (billing lag 0)", func() (bool, error) {
			v, ok := scrape(t, mesh.MetricsURL).value("codeexec_queue_results_unbilled", nil)
			return ok && v == 0, nil
		})
	})

	t.Run("a job held without an ack is in flight, redelivered, then dead-lettered", func(t *testing.T) {
		js := natsOf(t, mesh.NATSURL)
		ctx := t.Context()
		before, _ := scrape(t, mesh.MetricsURL).value("codeexec_queue_dead_letters_total", nil)
		id, err := messages.NewJobID()
		if err != nil {
			t.Fatal(err)
		}
		job, err := json.Marshal(messages.Job{V: messages.Version, JobID: id, UserID: user.UserID, Language: "python",
			Region: "nowhere", Files: []messages.File{{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}},
			SaveMetric: true, SubmittedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subjects.Jobs("nowhere", "python"), job, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		nowhere := map[string]string{"region": "nowhere", "language": "python"}
		waitfor.Eventually(t, 10*time.Second, "the job waiting in nowhere", func() (bool, error) {
			v, _ := scrape(t, mesh.MetricsURL).value("codeexec_queue_jobs_pending", nowhere)
			return v == 1, nil
		})
		cons, err := js.Consumer(ctx, subjects.JobsStream, subjects.JobConsumer("nowhere", "python"))
		if err != nil {
			t.Fatal(err)
		}
		// Take every delivery and never ack, as a runner that dies holding the job.
		deliveries := 0
		take := func() bool {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
			if err != nil {
				return false
			}
			for range batch.Messages() {
				deliveries++
			}
			return true
		}
		for i, what := range []string{"codeexec_queue_jobs_in_flight", "codeexec_queue_jobs_redelivered"} {
			want := i + 1
			waitfor.Eventually(t, 15*time.Second, fmt.Sprintf("delivery %d, seen in %s", want, what), func() (bool, error) {
				if deliveries < want {
					take()
					return false, nil
				}
				v, _ := scrape(t, mesh.MetricsURL).value(what, nowhere)
				return v == 1, nil
			})
		}
		waitfor.Eventually(t, 30*time.Second, "the job out of deliveries dead-lettered by the runner", func() (bool, error) {
			take()
			m := scrape(t, mesh.MetricsURL)
			after, _ := m.value("codeexec_queue_dead_letters_total", nil)
			inFlight, _ := m.value("codeexec_queue_jobs_in_flight", nowhere)
			pending, _ := m.value("codeexec_queue_jobs_pending", nowhere)
			return after == before+1 && inFlight == 0 && pending == 0, nil
		})
	})

	t.Run("one request's trace id in the edge's, runner's and ledger's logs", func(t *testing.T) {
		const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		a := do(t, mesh.URL, "POST", "/api/v1/execute", creds{key: user.APIKey,
			headers: map[string]string{trace.Header: "00-" + traceID + "-00f067aa0ba902b7-01"}},
			map[string]any{"language": "python", "code": "print('traced')"})
		var answer executeAnswer
		a.decode(t, &answer)
		if a.status != 200 || answer.Result.Stdout != "traced\n" {
			t.Fatalf("execute: got %d %s, want 200 with its output", a.status, a.body)
		}
		if got := trace.IDOf(a.header.Get(trace.Header)); got != traceID {
			t.Errorf("traceparent answered: got trace id %q, want the request's %s", got, traceID)
		}
		jobID := answer.Result.JobID
		waitfor.Eventually(t, 30*time.Second, "the job's trace id in the edge's, runner's and ledger's logs", func() (bool, error) {
			seen := logs.servicesLogging(t, jobID, traceID)
			return seen["edge"] && seen["runner"] && seen["ledger"], nil
		})
	})

	t.Run("every metric the alert rules and the dashboard name is exported", func(t *testing.T) {
		exported := scrape(t, mesh.MetricsURL).names()
		rules, err := opsfiles.RuleExprs("../prometheus/alerts.yml")
		if err != nil {
			t.Fatal(err)
		}
		panels, _, err := opsfiles.DashboardExprs("../grafana/codeexec-mesh.json")
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for file, exprs := range map[string]map[string]string{"alerts.yml": rules, "codeexec-mesh.json": panels} {
			for where, expr := range exprs {
				names, err := opsfiles.MetricNames(expr)
				if err != nil {
					t.Errorf("%s %s: %v", file, where, err)
				}
				for _, name := range names {
					checked++
					// up is made by Prometheus for every target it scrapes, not exported.
					if name != "up" && !exported[name] {
						t.Errorf("%s %s: %s is exported by no part of the mesh", file, where, name)
					}
				}
			}
		}
		if checked < 40 {
			t.Errorf("checked %d metric references, want the files' many", checked)
		}
	})

	t.Run("no label could grow with users, jobs, keys, containers or traces", func(t *testing.T) {
		m := scrape(t, mesh.MetricsURL)
		// Hex ids (job, trace, user ids), UUIDs, NKeys (a server's id), prefixed random ids.
		idLike := regexp.MustCompile(`^[0-9a-fA-F]{16,}$|^[0-9a-f]{8}-[0-9a-f]{4}-|^[A-Z2-7]{40,}$|^(usr|key|sess|job|edge)[-_][0-9a-f]{6,}$`)
		banned := []string{"user", "job", "key", "container", "trace", "session", "project", "runner"}
		for name, mf := range m {
			for _, metric := range mf.GetMetric() {
				for _, l := range metric.GetLabel() {
					lname := strings.ToLower(l.GetName())
					for _, b := range banned {
						if lname == b || strings.HasPrefix(lname, b+"_") || strings.HasSuffix(lname, "_"+b) {
							t.Errorf("%s has the label %s=%q", name, l.GetName(), l.GetValue())
						}
					}
					if idLike.MatchString(l.GetValue()) || strings.Contains(l.GetValue(), user.UserID) || strings.Contains(l.GetValue(), user.APIKey) {
						t.Errorf("%s{%s=%q}: the value looks like an id", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
		// The check must see what it forbids, or it proves nothing.
		if !idLike.MatchString("4bf92f3577b34da6a3ce929d0e0e4736") || !idLike.MatchString("edge-3fa2c91b07de") ||
			idLike.MatchString("python") || idLike.MatchString("/api/v1/jobs/:jobId") || idLike.MatchString("JOB_ADVISORIES") {
			t.Error("the id pattern does not tell ids from names")
		}
	})
}

// metricFamilies is one scrape, by family name.
type metricFamilies map[string]*dto.MetricFamily

// scrape reads base/metrics in the Prometheus text format.
func scrape(t testing.TB, base string) metricFamilies {
	t.Helper()
	a := do(t, base, "GET", "/metrics", creds{}, nil)
	if a.status != 200 {
		t.Fatalf("scrape %s/metrics: got %d", base, a.status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(a.body))
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", base, err)
	}
	return mfs
}

// value sums the samples of name whose labels include want.
func (m metricFamilies) value(name string, want map[string]string) (float64, bool) {
	mf, ok := m[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
	for _, metric := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range metric.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		found = true
		switch {
		case metric.Gauge != nil:
			sum += metric.Gauge.GetValue()
		case metric.Counter != nil:
			sum += metric.Counter.GetValue()
		case metric.Untyped != nil:
			sum += metric.Untyped.GetValue()
		}
	}
	return sum, found
}

// names are the series names a scrape holds: a histogram's and a summary's with their
// _bucket, _sum and _count.
func (m metricFamilies) names() map[string]bool {
	out := map[string]bool{}
	for name, mf := range m {
		out[name] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name+"_sum"], out[name+"_count"] = true, true
		}
	}
	return out
}

// servicesLogging reads the JSON log lines and tells which services logged a line with
// both jobID and traceID.
func (b *syncBuffer) servicesLogging(t testing.TB, jobID, traceID string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<24)
	for sc.Scan() {
		var line struct {
			Service string `json:"service"`
			JobID   string `json:"job_id"`
			TraceID string `json:"trace_id"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.JobID == jobID && line.TraceID == traceID {
			seen[line.Service] = true
		}
	}
	return seen
}
