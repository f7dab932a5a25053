package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// TestPaidExecution is the README's session: register, run print(6*7), pay the price once.
func TestPaidExecution(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), nil)
	user := registerUser(t, mesh.URL)

	before := getWallet(t, mesh.URL, user.APIKey)
	if before.BalanceMicros != testFreeCredit || before.Currency != "USD" || before.PriceMicros != testPrice {
		t.Fatalf("new wallet: got %+v, want %d micros of free credit at price %d", before, testFreeCredit, testPrice)
	}

	for _, tc := range []struct{ language, code, want string }{
		{"python", "print(6*7)", "42\n"},
		{"js", "console.log(6*7)", "42\n"},
	} {
		status, a := execute(t, mesh.URL, user.APIKey, map[string]any{"language": tc.language, "code": tc.code})
		if status != 200 || !a.Succeeded {
			t.Fatalf("%s: got %d %+v, want 200 succeeded", tc.language, status, a)
		}
		r := a.Result
		if r.RunTimeStatus != "succeeded" || r.Stdout != tc.want || r.Output != tc.want {
			t.Fatalf("%s: got status %q stdout %q stderr %q, want succeeded with %q", tc.language, r.RunTimeStatus, r.Stdout, r.Stderr, tc.want)
		}
		if r.ExitCode == nil || *r.ExitCode != 0 || r.ErrorMessage != nil {
			t.Errorf("%s: got exit code %v error %v, want 0 and null", tc.language, r.ExitCode, r.ErrorMessage)
		}
		if r.WallTimeMs <= 0 || r.MemoryBytes <= 0 || !strings.HasSuffix(r.MemoryUsage, "MB") || !strings.HasSuffix(r.CPUUsage, "%") {
			t.Errorf("%s: usage not measured: %+v", tc.language, r)
		}
	}

	// The holds are taken at once; the charges land from the result stream.
	want := before.BalanceMicros - 2*testPrice
	deadline := time.Now().Add(30 * time.Second)
	for {
		w := getWallet(t, mesh.URL, user.APIKey)
		if w.BalanceMicros != want {
			t.Fatalf("balance: got %d, want %d (lower by exactly two prices)", w.BalanceMicros, want)
		}
		if w.HeldMicros == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holds never charged: %+v", w)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("the third execution is refused for want of funds", func(t *testing.T) {
		status, a := execute(t, mesh.URL, user.APIKey, map[string]any{"language": "python", "code": "print(1)"})
		if status != 402 || a.Succeeded || a.Error.Code != "insufficient_funds" {
			t.Fatalf("got %d %+v, want 402 insufficient_funds", status, a)
		}
		if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != want {
			t.Fatalf("a refused execution changed the balance: got %d, want %d", w.BalanceMicros, want)
		}
	})
}

// TestErrorStatuses checks each refusal's status and error shape.
func TestErrorStatuses(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), nil)
	user := registerUser(t, mesh.URL)
	big := strings.Repeat("#", 256<<10+1)
	cases := []struct {
		name, path, key string
		body            any
		status          int
		code            string
	}{
		{"no key", "/api/v1/execute", "", map[string]any{"language": "python", "code": "print(1)"}, 401, "missing_credentials"},
		{"bad key", "/api/v1/execute", "ce_wrongwrongwrongwrongwrongwrongwr", map[string]any{"language": "python", "code": "print(1)"}, 401, "invalid_api_key"},
		{"bad JSON", "/api/v1/execute", user.APIKey, `{"language": "python", "code": `, 400, "invalid_json"},
		{"unknown language", "/api/v1/execute", user.APIKey, map[string]any{"language": "cobol", "code": "x"}, 400, "unknown_language"},
		{"unknown field", "/api/v1/execute", user.APIKey, map[string]any{"language": "python", "code": "x", "colour": 1}, 400, "invalid_input"},
		{"code too large", "/api/v1/execute", user.APIKey, map[string]any{"language": "python", "code": big}, 413, "code_too_large"},
		{"no runner for ruby", "/api/v1/execute", user.APIKey, map[string]any{"language": "ruby", "code": "puts 1"}, 503, "no_runner"},
		{"bad filename", "/api/v2/execute", user.APIKey, map[string]any{"language": "python",
			"files": []map[string]any{{"filename": "../main.py", "code": "print(1)", "isEntryPoint": true}}}, 400, "invalid_files"},
		{"register bad JSON", "/api/register", "", `nope`, 400, "invalid_json"},
		{"register bad email", "/api/register", "", map[string]string{"email": "x", "username": "abc", "password": "a long password"}, 400, "invalid_input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e struct {
				Succeeded *bool `json:"succeeded"`
				Error     struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			status, body := call(t, mesh.URL, "POST", tc.path, tc.key, tc.body, &e)
			if status != tc.status || e.Error.Code != tc.code || e.Succeeded == nil || *e.Succeeded || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d with error code %q in the error shape", status, body, tc.status, tc.code)
			}
		})
	}
	t.Run("register twice is a conflict", func(t *testing.T) {
		body := map[string]string{"email": "twice@example.com", "username": "twice", "password": "a long password"}
		if status, b := call(t, mesh.URL, "POST", "/api/register", "", body, nil); status != 201 {
			t.Fatalf("first: got %d %s", status, b)
		}
		if status, b := call(t, mesh.URL, "POST", "/api/register", "", body, nil); status != 409 {
			t.Fatalf("second: got %d %s, want 409", status, b)
		}
	})
	t.Run("refusals cost nothing", func(t *testing.T) {
		if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != testFreeCredit || w.HeldMicros != 0 {
			t.Fatalf("got %+v, want the untouched free credit", w)
		}
	})
}

// TestRestartKeepsData stops the all-in-one and starts it again on the same data dir.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	first := startMesh(t, dir, nil)
	user := registerUser(t, first.URL)
	if status, a := execute(t, first.URL, user.APIKey, map[string]any{"language": "python", "code": "print('before')"}); status != 200 || a.Result.Stdout != "before\n" {
		t.Fatalf("execute before restart: got %d %+v", status, a)
	}
	before := getWallet(t, first.URL, user.APIKey)
	if err := first.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	second := startMesh(t, dir, nil)
	after := getWallet(t, second.URL, user.APIKey)
	if after.BalanceMicros != before.BalanceMicros {
		t.Fatalf("balance after restart: got %d, want %d", after.BalanceMicros, before.BalanceMicros)
	}
	if status, a := execute(t, second.URL, user.APIKey, map[string]any{"language": "python", "code": "print('after')"}); status != 200 || a.Result.Stdout != "after\n" {
		t.Fatalf("execute after restart with the old key: got %d %+v", status, a)
	}
	again := map[string]string{"email": user.Email, "username": "someone_else", "password": "a long password"}
	if status, b := call(t, second.URL, "POST", "/api/register", "", again, nil); status != 409 {
		t.Fatalf("registering the same email after restart: got %d %s, want 409", status, b)
	}
}

// TestAsyncJobLifecycle submits with wait false and polls the job: running, then done;
// nobody else can see it.
func TestAsyncJobLifecycle(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.RatePerSec, c.RateBurst = 1000, 1000 // the test polls; the limits are not what it is about
	})
	owner, other := registerUser(t, mesh.URL), registerUser(t, mesh.URL)
	var accepted executeAnswer
	status, body := call(t, mesh.URL, "POST", "/api/v1/execute", owner.APIKey,
		map[string]any{"language": "python", "code": "import time\ntime.sleep(1.5)\nprint('late')", "wait": false}, &accepted)
	if status != 202 || !accepted.Succeeded || accepted.JobID == "" {
		t.Fatalf("submit: got %d %s, want 202 with a job id", status, body)
	}
	path := "/api/v1/jobs/" + accepted.JobID
	if status, _ := call(t, mesh.URL, "GET", path, other.APIKey, nil, nil); status != 404 {
		t.Fatalf("another user's view: got %d, want 404", status)
	}
	seen := map[string]bool{}
	waitfor.Eventually(t, 60*time.Second, "the job done", func() (bool, error) {
		var j struct {
			Status string `json:"status"`
			Result result `json:"result"`
		}
		if status, body := call(t, mesh.URL, "GET", path, owner.APIKey, nil, &j); status != 200 {
			return false, fmt.Errorf("poll: got %d %s", status, body)
		}
		seen[j.Status] = true
		if j.Status == "done" && (j.Result.Stdout != "late\n" || j.Result.RunTimeStatus != "succeeded") {
			return false, fmt.Errorf("done: got %+v", j.Result)
		}
		return j.Status == "done", nil
	})
	if !seen["running"] {
		t.Errorf("statuses seen %v: want running before done", seen)
	}
	if status, _ := call(t, mesh.URL, "GET", "/api/v1/jobs/0123456789abcdef0123456789abcdef", owner.APIKey, nil, nil); status != 404 {
		t.Errorf("unknown job: got %d, want 404", status)
	}
}
