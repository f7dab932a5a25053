package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/deploy/allinone"
	"github.com/codeexec/codeexec/edge"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/metrics"
)

// creds is how a test request authenticates: an API key, a session cookie, or nothing.
type creds struct {
	key     string
	xAPIKey bool // send the key as X-API-Key instead of Authorization: Bearer
	cookie  string
	headers map[string]string // more request headers
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorCode returns the error code of an answer in the design's error shape ("" if none).
func (a answer) errorCode() string {
	var e struct {
		Succeeded *bool `json:"succeeded"`
		Error     struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(a.body, &e) != nil || e.Succeeded == nil || *e.Succeeded || e.Error.Message == "" {
		return ""
	}
	return e.Error.Code
}

func (a answer) decode(t testing.TB, out any) {
	t.Helper()
	if err := json.Unmarshal(a.body, out); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
}

func (a answer) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// do sends one request; body is any JSON value or a raw string.
func do(t testing.TB, base, method, path string, cr creds, body any) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case cr.key != "" && cr.xAPIKey:
		req.Header.Set("X-API-Key", cr.key)
	case cr.key != "":
		req.Header.Set("Authorization", "Bearer "+cr.key)
	}
	if cr.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "codeexec_session", Value: cr.cookie})
	}
	for k, v := range cr.headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

// expect fails unless the answer has the status and, when code is set, that error code.
func expect(t testing.TB, a answer, status int, code string, what string) {
	t.Helper()
	if a.status != status || (code != "" && a.errorCode() != code) {
		t.Fatalf("%s: got %d %s, want %d %s", what, a.status, a.body, status, code)
	}
}

// secondEdge runs another edge on its own NATS connection to mesh's NATS (mesh must have
// been started with NATSListen set) and returns its base URL and metrics.
func secondEdge(t testing.TB, mesh *allinone.Instance, cfg config.Config) (string, func() string) {
	t.Helper()
	if mesh.NATSURL == "" {
		t.Fatal("the mesh's NATS does not listen: set NATSListen")
	}
	nc, err := nats.Connect(mesh.NATSURL, nats.Name("codeexec-edge-2"), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg := metrics.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := edge.New(edge.ConfigFrom(cfg), nc, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()
	metricsDone := make(chan error, 1)
	go func() { metricsDone <- metrics.ServeListener(ctx, mln, reg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second edge: %v", err)
		}
		if err := <-metricsDone; err != nil {
			t.Errorf("second edge's metrics: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	deadline := time.Now().Add(30 * time.Second)
	for do(t, base, "GET", "/readyz", creds{}, nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("second edge not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	metricsBase := "http://" + mln.Addr().String()
	scrape := func() string { return do(t, metricsBase, "GET", "/metrics", creds{}, nil).text() }
	return base, scrape
}

func (a answer) text() string { return string(a.body) }

// metricValue sums the samples of a metric whose labels include every given label pair
// (as `name="value"`), from a Prometheus text exposition.
func metricValue(exposition, metric string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		rest := line[len(metric):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// syncBuffer collects log lines from concurrent services.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
