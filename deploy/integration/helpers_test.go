// Package integration drives the all-in-one CodeExec over real HTTP, with embedded NATS,
// embedded FerretDB and real Docker containers. Nothing here is faked.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/deploy/allinone"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// Test prices: a new account can pay for exactly two executions and a half.
const (
	testPrice      = 10_000
	testFreeCredit = 25_000
)

// startMesh runs an all-in-one on dataDir (kept across restarts) with an edge on a free port.
func startMesh(t testing.TB, dataDir string, tune func(*config.Config)) *allinone.Instance {
	t.Helper()
	return startMeshLogging(t, dataDir, tune, nil)
}

// startMeshLogging is startMesh with the mesh's log written to logs too (at Info and above),
// for tests that read what the services log.
func startMeshLogging(t testing.TB, dataDir string, tune func(*config.Config), logs io.Writer) *allinone.Instance {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = dataDir
	cfg.PriceMicros = testPrice
	cfg.FreeCreditMicros = testFreeCredit
	cfg.Languages = []string{"python", "javascript"}
	cfg.PoolSize = 1
	cfg.RunnerSlots = 2
	cfg.WaitTimeout = 60 * time.Second
	cfg.AnonRateBurst = 10_000 // tests register and log in many times from one address
	cfg.MetricsAddr = "127.0.0.1:0"
	if tune != nil {
		tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("CODEEXEC_TEST_LOGS") != "" {
		level = slog.LevelDebug
		cfg.DebugFerretDB = true
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if logs != nil {
		log = slog.New(slog.NewMultiHandler(log.Handler(), slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	}
	inst, err := allinone.Start(context.Background(), cfg, ln, log)
	if err != nil {
		t.Fatalf("start all-in-one: %v", err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("stop all-in-one: %v", err)
		}
	})
	waitAvailable(t, inst.URL, cfg.Languages...)
	return inst
}

// waitAvailable polls the languages endpoint until a runner serves every language given.
func waitAvailable(t testing.TB, base string, langs ...string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var list []struct {
			Language  string `json:"language"`
			Available bool   `json:"available"`
		}
		status, _ := call(t, base, "GET", "/api/v1/languages", "", nil, &list)
		if status == 200 {
			ready := 0
			for _, l := range list {
				for _, want := range langs {
					if l.Language == want && l.Available {
						ready++
					}
				}
			}
			if ready == len(langs) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("languages %v not available after 90s (last list %+v)", langs, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 2 * time.Minute}

// call sends body (any JSON value, or a raw string) with key as a Bearer token, and
// decodes the answer into out.
func call(t testing.TB, base, method, path, key string, body any, out any) (int, []byte) {
	t.Helper()
	a := do(t, base, method, path, creds{key: key}, body)
	if out != nil && len(a.body) > 0 {
		a.decode(t, out)
	}
	return a.status, a.body
}

type registered struct {
	Email  string `json:"-"`
	UserID string `json:"userId"`
	APIKey string `json:"apiKey"`
}

var userSeq int

func registerUser(t testing.TB, base string) registered {
	t.Helper()
	userSeq++
	name := fmt.Sprintf("user%d_%d", time.Now().UnixNano()%1e6, userSeq)
	var r registered
	status, body := call(t, base, "POST", "/api/register", "", map[string]string{
		"email": name + "@example.com", "username": name, "password": "a long password",
	}, &r)
	if status != 201 || r.APIKey == "" {
		t.Fatalf("register: got %d %s, want 201 with a key", status, body)
	}
	r.Email = name + "@example.com"
	return r
}

type wallet struct {
	BalanceMicros int64  `json:"balanceMicros"`
	HeldMicros    int64  `json:"heldMicros"`
	Balance       string `json:"balance"`
	Currency      string `json:"currency"`
	PriceMicros   int64  `json:"priceMicros"`
}

func getWallet(t testing.TB, base, key string) wallet {
	t.Helper()
	var w wallet
	if status, body := call(t, base, "GET", "/api/wallet", key, nil, &w); status != 200 {
		t.Fatalf("wallet: got %d %s", status, body)
	}
	return w
}

type result struct {
	JobID         string  `json:"jobId"`
	Language      string  `json:"language"`
	RunTimeStatus string  `json:"runTimeStatus"`
	Output        string  `json:"output"`
	Stdout        string  `json:"stdout"`
	Stderr        string  `json:"stderr"`
	ExitCode      *int    `json:"exitCode"`
	ErrorMessage  *string `json:"errorMessage"`
	ExecutionTime float64 `json:"executionTime"`
	WallTimeMs    int64   `json:"wallTimeMs"`
	CPUTimeMs     int64   `json:"cpuTimeMs"`
	MemoryBytes   int64   `json:"memoryBytes"`
	MemoryUsage   string  `json:"memoryUsage"`
	CPUUsage      string  `json:"cpuUsage"`
}

type executeAnswer struct {
	Succeeded bool   `json:"succeeded"`
	JobID     string `json:"jobId"`
	Result    result `json:"result"`
	Error     struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func execute(t testing.TB, base, key string, body any) (int, executeAnswer) {
	t.Helper()
	var a executeAnswer
	status, _ := call(t, base, "POST", "/api/v1/execute", key, body, &a)
	return status, a
}

// announceRunner makes the edges of the mesh at natsURL believe a runner of region local
// serves langs, until the test ends; it never pulls a job.
func announceRunner(t testing.TB, natsURL string, langs ...string) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done; nc.Close() })
	announce := func() {
		hb, _ := json.Marshal(messages.Heartbeat{V: messages.Version, RunnerID: "idle", Region: "local",
			Languages: langs, Slots: 1, FreeSlots: 1, SentAt: time.Now()})
		_ = nc.Publish(subjects.Heartbeat("local", "idle"), hb)
	}
	announce()
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				announce()
			}
		}
	}()
}

// queueUnserved has the mesh's edge queue a python job (wait false) that no runner pulls:
// the edge refuses a language no runner serves, so an idle runner is announced first.
func queueUnserved(t testing.TB, mesh *allinone.Instance, key, code string) executeAnswer {
	t.Helper()
	announceRunner(t, mesh.NATSURL, "python")
	var a executeAnswer
	waitfor.Eventually(t, 10*time.Second, "the edge queues a job", func() (bool, error) {
		status, _ := call(t, mesh.URL, "POST", "/api/v1/execute", key,
			map[string]any{"language": "python", "code": code, "wait": false}, &a)
		return status == 202, nil
	})
	return a
}

// natsOf connects to the mesh's NATS for the rest of the test.
func natsOf(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
