package integration

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/config"
)

const testPassword = "a long password"

type keyView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	APIKey     string     `json:"apiKey"`
}

func login(t testing.TB, base, email, password string) (answer, string) {
	t.Helper()
	a := do(t, base, "POST", "/api/login", creds{}, map[string]string{"email": email, "password": password})
	if c := a.cookie("codeexec_session"); c != nil {
		return a, c.Value
	}
	return a, ""
}

func createKey(t testing.TB, base string, cr creds, name string) keyView {
	t.Helper()
	a := do(t, base, "POST", "/api/keys", cr, map[string]string{"name": name})
	expect(t, a, 201, "", "create key")
	var k keyView
	a.decode(t, &k)
	if !strings.HasPrefix(k.APIKey, "ce_") || !strings.HasPrefix(k.APIKey, k.Prefix) || k.ID == "" || k.Name != name {
		t.Fatalf("create key: got %s, want a ce_ secret with its prefix, an id and the name", a.body)
	}
	return k
}

// TestSessionAndKeyLifecycle: login, me, logout (401 after); keys created, listed without
// secrets, used through both headers, revoked (401 after); bad input everywhere.
func TestSessionAndKeyLifecycle(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) { c.RatePerSec, c.RateBurst = 1000, 1000 })
	base := mesh.URL
	user := registerUser(t, base)

	t.Run("login refusals do not tell whether the email exists", func(t *testing.T) {
		wrong, _ := login(t, base, user.Email, "not the password")
		unknown, _ := login(t, base, "nobody-"+user.Email, testPassword)
		expect(t, wrong, 401, "invalid_credentials", "wrong password")
		expect(t, unknown, 401, "invalid_credentials", "unknown email")
		if string(wrong.body) != string(unknown.body) {
			t.Fatalf("wrong password %s and unknown email %s answer differently", wrong.body, unknown.body)
		}
		if wrong.cookie("codeexec_session") != nil {
			t.Fatal("a refused login set a cookie")
		}
	})
	t.Run("login bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
			code string
		}{
			{"bad JSON", `{"email":`, "invalid_json"},
			{"unknown field", map[string]any{"email": user.Email, "password": testPassword, "remember": true}, "invalid_input"},
			{"missing password", map[string]any{"email": user.Email}, "invalid_input"},
			{"wrong type", map[string]any{"email": 5, "password": testPassword}, "invalid_input"},
			{"huge password", map[string]any{"email": user.Email, "password": strings.Repeat("p", 5000)}, "invalid_input"},
		} {
			expect(t, do(t, base, "POST", "/api/login", creds{}, tc.body), 400, tc.code, tc.name)
		}
	})

	a, session := login(t, base, strings.ToUpper(user.Email), testPassword)
	expect(t, a, 200, "", "login")
	var logged struct {
		UserID string `json:"userId"`
	}
	a.decode(t, &logged)
	c := a.cookie("codeexec_session")
	if logged.UserID != user.UserID || c == nil || session == "" {
		t.Fatalf("login: got %s with cookie %v, want userId %s and a session cookie", a.body, c, user.UserID)
	}
	if week := 7 * 24 * 3600; !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge < week-60 || c.MaxAge > week {
		t.Fatalf("cookie: got %+v, want HttpOnly, SameSite=Lax, Path=/, about 7 days", c)
	}
	if strings.Contains(string(a.body), session) {
		t.Fatal("the session token is in the body")
	}

	type me struct {
		UserID   string `json:"userId"`
		Email    string `json:"email"`
		Username string `json:"username"`
	}
	for name, cr := range map[string]creds{"cookie": {cookie: session}, "bearer": {key: user.APIKey}, "x-api-key": {key: user.APIKey, xAPIKey: true}} {
		a := do(t, base, "GET", "/api/me", cr, nil)
		expect(t, a, 200, "", "me by "+name)
		var m me
		a.decode(t, &m)
		if m.UserID != user.UserID || m.Email != user.Email || m.Username == "" {
			t.Fatalf("me by %s: got %s", name, a.body)
		}
	}
	expect(t, do(t, base, "GET", "/api/me", creds{}, nil), 401, "missing_credentials", "me without credentials")
	expect(t, do(t, base, "GET", "/api/me", creds{cookie: "ces_forged"}, nil), 401, "invalid_session", "me with a forged cookie")
	expect(t, do(t, base, "GET", "/api/wallet", creds{cookie: session}, nil), 200, "", "wallet by cookie")

	// Keys, created with the session.
	k := createKey(t, base, creds{cookie: session}, "ci")
	a = do(t, base, "GET", "/api/keys", creds{key: k.APIKey}, nil)
	expect(t, a, 200, "", "list keys")
	if strings.Contains(string(a.body), k.APIKey) || strings.Contains(string(a.body), user.APIKey) ||
		strings.Contains(string(a.body), "apiKey") || strings.Contains(strings.ToLower(string(a.body)), "hash") {
		t.Fatalf("the key list shows a secret or hash: %s", a.body)
	}
	var list struct {
		Keys []keyView `json:"keys"`
	}
	a.decode(t, &list)
	if len(list.Keys) != 2 || list.Keys[1].ID != k.ID || list.Keys[1].Prefix != k.Prefix || list.Keys[1].CreatedAt.IsZero() ||
		list.Keys[0].Prefix != user.APIKey[:len(list.Keys[0].Prefix)] {
		t.Fatalf("list keys: got %s, want the first key then %s with prefixes", a.body, k.ID)
	}
	// lastUsedAt is written best-effort, after the check that used the key.
	for deadline := time.Now().Add(5 * time.Second); list.Keys[1].LastUsedAt == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("lastUsedAt of the key just used: still null")
		}
		do(t, base, "GET", "/api/keys", creds{key: k.APIKey}, nil).decode(t, &list)
	}
	t.Run("key bad input", func(t *testing.T) {
		expect(t, do(t, base, "POST", "/api/keys", creds{key: k.APIKey}, map[string]any{"name": 5}), 400, "invalid_input", "numeric name")
		expect(t, do(t, base, "POST", "/api/keys", creds{key: k.APIKey}, map[string]any{"label": "x"}), 400, "invalid_input", "unknown field")
		expect(t, do(t, base, "POST", "/api/keys", creds{key: k.APIKey}, map[string]any{"name": strings.Repeat("n", 101)}), 400, "invalid_input", "long name")
		expect(t, do(t, base, "POST", "/api/keys", creds{key: k.APIKey}, `[1,2]`), 400, "invalid_input", "an array")
		expect(t, do(t, base, "DELETE", "/api/keys/no%20such", creds{key: k.APIKey}, nil), 404, "not_found", "malformed key id")
		expect(t, do(t, base, "DELETE", "/api/keys/key_nosuchkey", creds{key: k.APIKey}, nil), 404, "not_found", "unknown key id")
		expect(t, do(t, base, "POST", "/api/keys", creds{}, nil), 401, "missing_credentials", "create without credentials")
	})
	nameless := do(t, base, "POST", "/api/keys", creds{key: k.APIKey}, nil)
	expect(t, nameless, 201, "", "create a key with no body")

	other := registerUser(t, base)
	expect(t, do(t, base, "DELETE", "/api/keys/"+k.ID, creds{key: other.APIKey}, nil), 404, "not_found", "revoke another user's key")
	expect(t, do(t, base, "GET", "/api/me", creds{key: k.APIKey, xAPIKey: true}, nil), 200, "", "the key after a refused revocation")
	expect(t, do(t, base, "DELETE", "/api/keys/"+k.ID, creds{key: user.APIKey}, nil), 204, "", "revoke")
	expect(t, do(t, base, "GET", "/api/me", creds{key: k.APIKey}, nil), 401, "invalid_api_key", "a revoked key")
	expect(t, do(t, base, "DELETE", "/api/keys/"+k.ID, creds{key: user.APIKey}, nil), 404, "not_found", "revoke twice")
	a = do(t, base, "GET", "/api/keys", creds{cookie: session}, nil)
	a.decode(t, &list)
	if len(list.Keys) != 2 || list.Keys[0].ID == k.ID || list.Keys[1].ID == k.ID {
		t.Fatalf("list after revoke: got %s, want the two live keys", a.body)
	}

	// Logout ends the session everywhere and clears the cookie.
	a = do(t, base, "POST", "/api/logout", creds{cookie: session}, nil)
	expect(t, a, 204, "", "logout")
	if c := a.cookie("codeexec_session"); c == nil || c.Value != "" || c.Expires.After(time.Now()) || c.Path != "/" {
		t.Fatalf("logout cookie: got %+v, want it cleared", c)
	}
	expect(t, do(t, base, "GET", "/api/me", creds{cookie: session}, nil), 401, "invalid_session", "me after logout")
	expect(t, do(t, base, "POST", "/api/logout", creds{}, nil), 204, "", "logout without a session")
	expect(t, do(t, base, "GET", "/api/me", creds{key: user.APIKey}, nil), 200, "", "the API key after logout")
}

// TestTwoEdges runs a second edge on its own NATS connection: a revocation through the
// first edge is felt by the second within 2 s though it had the key cached, and the rate
// and concurrency limits hold across both.
func TestTwoEdges(t *testing.T) {
	tune := func(c *config.Config) {
		c.NATSListen = "127.0.0.1:0"
		c.RatePerSec, c.RateBurst = 1, 4
		c.MaxConcurrent = 1
	}
	mesh := startMesh(t, t.TempDir(), tune)
	cfg := config.Defaults()
	tune(&cfg)
	cfg.WaitTimeout = 60 * time.Second
	edgeB, scrapeB := secondEdge(t, mesh, cfg)
	edgeA := mesh.URL

	t.Run("revocation reaches the second edge within 2s", func(t *testing.T) {
		user := registerUser(t, edgeA)
		expect(t, do(t, edgeB, "GET", "/api/me", creds{key: user.APIKey}, nil), 200, "", "warm edge B")
		hitsBefore := metricValue(scrapeB(), "codeexec_edge_credential_checks_total", `result="hit"`)
		expect(t, do(t, edgeB, "GET", "/api/me", creds{key: user.APIKey}, nil), 200, "", "edge B from its cache")
		if hits := metricValue(scrapeB(), "codeexec_edge_credential_checks_total", `result="hit"`); hits != hitsBefore+1 {
			t.Fatalf("edge B cache hits: got %v, want %v (the key is cached there)", hits, hitsBefore+1)
		}
		var list struct {
			Keys []keyView `json:"keys"`
		}
		do(t, edgeA, "GET", "/api/keys", creds{key: user.APIKey}, nil).decode(t, &list)
		start := time.Now()
		expect(t, do(t, edgeA, "DELETE", "/api/keys/"+list.Keys[0].ID, creds{key: user.APIKey}, nil), 204, "", "revoke through edge A")
		for {
			a := do(t, edgeB, "GET", "/api/me", creds{key: user.APIKey}, nil)
			if a.status == 401 {
				expect(t, a, 401, "invalid_api_key", "edge B after the revocation")
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("edge B still accepts the revoked key after %v: %d %s", time.Since(start), a.status, a.body)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("edge B refused the revoked key %v after the revocation was sent to edge A", took)
		expect(t, do(t, edgeA, "GET", "/api/me", creds{key: user.APIKey}, nil), 401, "invalid_api_key", "edge A after the revocation")
	})

	t.Run("rate limit holds across edges", func(t *testing.T) {
		user := registerUser(t, edgeA)
		cr := creds{key: user.APIKey}
		// The burst is 4 at 1/s: two requests on each edge drain it (a fraction of a
		// token may come back meanwhile, never a whole one this fast).
		for i, base := range []string{edgeA, edgeB, edgeA, edgeB} {
			expect(t, do(t, base, "GET", "/api/me", cr, nil), 200, "", "request "+strconv.Itoa(i+1))
		}
		for _, base := range []string{edgeA, edgeB} {
			a := do(t, base, "GET", "/api/me", cr, nil)
			expect(t, a, 429, "rate_limited", "a fifth request")
			ra, err := strconv.Atoi(a.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 1 {
				t.Fatalf("Retry-After: got %q, want 1 (a token comes back each second)", a.header.Get("Retry-After"))
			}
		}
		if n := metricValue(scrapeB(), "codeexec_edge_limit_refusals_total", `code="rate_limited"`); n < 1 {
			t.Fatalf("edge B rate-limit refusals metric: got %v, want at least 1", n)
		}
		// Another key of the same user has its own bucket.
		other := registerUser(t, edgeB)
		expect(t, do(t, edgeA, "GET", "/api/me", creds{key: other.APIKey}, nil), 200, "", "another user's key")
		time.Sleep(1100 * time.Millisecond)
		expect(t, do(t, edgeB, "GET", "/api/me", cr, nil), 200, "", "after Retry-After")
	})

	t.Run("concurrent executions are limited across edges", func(t *testing.T) {
		user := registerUser(t, edgeA)
		cr := creds{key: user.APIKey}
		waitAvailable(t, edgeB, "python")
		a := do(t, edgeA, "POST", "/api/v1/execute", cr, map[string]any{"language": "python", "code": "import time; time.sleep(3); print('slow')", "wait": false})
		expect(t, a, 202, "", "a slow job, not waited for")
		var accepted struct {
			JobID string `json:"jobId"`
		}
		a.decode(t, &accepted)
		a = do(t, edgeB, "POST", "/api/v1/execute", cr, map[string]any{"language": "python", "code": "print(1)"})
		expect(t, a, 429, "too_many_concurrent", "a second job on edge B while the first runs")
		if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After: got %q, want an integer >= 1", a.header.Get("Retry-After"))
		}
		// Once the first job's result is stored, its lease goes (nobody waited for it:
		// the next acquisition finds the result).
		deadline := time.Now().Add(60 * time.Second)
		for {
			time.Sleep(time.Second) // within the rate limit
			var st struct {
				Status string `json:"status"`
			}
			a := do(t, edgeA, "GET", "/api/v1/jobs/"+accepted.JobID, cr, nil)
			if a.status == 200 {
				a.decode(t, &st)
				if st.Status == "done" {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the slow job never finished: %d %s", a.status, a.body)
			}
		}
		time.Sleep(time.Second)
		var ans executeAnswer
		a = do(t, edgeB, "POST", "/api/v1/execute", cr, map[string]any{"language": "python", "code": "print('next')"})
		expect(t, a, 200, "", "a job after the first finished")
		a.decode(t, &ans)
		if ans.Result.Stdout != "next\n" {
			t.Fatalf("got %s", a.body)
		}
		// A waited-for job releases its lease at once.
		time.Sleep(time.Second)
		expect(t, do(t, edgeA, "POST", "/api/v1/execute", cr, map[string]any{"language": "python", "code": "print(2)"}), 402, "insufficient_funds",
			"a third job: the lease is free, the wallet is not")
	})
}

type projectView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Language string `json:"language"`
	ShareID  string `json:"shareId"`
	Files    []struct {
		Filename     string `json:"filename"`
		Code         string `json:"code"`
		IsEntryPoint bool   `json:"isEntryPoint"`
	} `json:"files"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func mainPy(code string) []map[string]any {
	return []map[string]any{{"filename": "main.py", "code": code, "isEntryPoint": true}}
}

// TestProjects covers project CRUD and execution, ownership, sharing and forks, and bad
// input on each endpoint.
func TestProjects(t *testing.T) {
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) { c.RatePerSec, c.RateBurst = 1000, 1000 })
	base := mesh.URL
	owner, other := registerUser(t, base), registerUser(t, base)
	ow, ot := creds{key: owner.APIKey}, creds{key: other.APIKey}

	a := do(t, base, "POST", "/api/projects", ow, map[string]any{"name": "Greeter", "language": "py", "files": []map[string]any{
		{"filename": "main.py", "code": "import greet, sys\nprint(greet.hello(input()), sys.argv[1:])", "isEntryPoint": true},
		{"filename": "greet.py", "code": "def hello(n):\n    return 'hello ' + n"},
	}})
	expect(t, a, 201, "", "create")
	var p projectView
	a.decode(t, &p)
	if p.ID == "" || p.Name != "Greeter" || p.Language != "python" || len(p.Files) != 2 || p.CreatedAt.IsZero() {
		t.Fatalf("create: got %s, want the project with the language resolved", a.body)
	}
	path := "/api/projects/" + p.ID

	t.Run("bad input", func(t *testing.T) {
		big := strings.Repeat("#", 256<<10+1)
		for _, tc := range []struct {
			name, method, path string
			body               any
			status             int
			code               string
		}{
			{"bad JSON", "POST", "/api/projects", `{"name":`, 400, "invalid_json"},
			{"unknown field", "POST", "/api/projects", map[string]any{"name": "x", "language": "python", "files": mainPy("1"), "public": true}, 400, "invalid_input"},
			{"no name", "POST", "/api/projects", map[string]any{"language": "python", "files": mainPy("1")}, 400, "invalid_input"},
			{"empty name", "POST", "/api/projects", map[string]any{"name": "  ", "language": "python", "files": mainPy("1")}, 400, "invalid_input"},
			{"long name", "POST", "/api/projects", map[string]any{"name": strings.Repeat("n", 101), "language": "python", "files": mainPy("1")}, 400, "invalid_input"},
			{"name wrong type", "POST", "/api/projects", map[string]any{"name": 7, "language": "python", "files": mainPy("1")}, 400, "invalid_input"},
			{"unknown language", "POST", "/api/projects", map[string]any{"name": "x", "language": "cobol", "files": mainPy("1")}, 400, "unknown_language"},
			{"no files", "POST", "/api/projects", map[string]any{"name": "x", "language": "python"}, 400, "invalid_files"},
			{"bad filename", "POST", "/api/projects", map[string]any{"name": "x", "language": "python", "files": []map[string]any{{"filename": "../x.py", "code": "1", "isEntryPoint": true}}}, 400, "invalid_files"},
			{"two entry points", "POST", "/api/projects", map[string]any{"name": "x", "language": "python", "files": []map[string]any{
				{"filename": "a.py", "code": "1", "isEntryPoint": true}, {"filename": "b.py", "code": "1", "isEntryPoint": true}}}, 400, "invalid_files"},
			{"too large", "POST", "/api/projects", map[string]any{"name": "x", "language": "python", "files": mainPy(big)}, 413, "code_too_large"},
			{"update too large", "PUT", path, map[string]any{"name": "x", "language": "python", "files": mainPy(big)}, 413, "code_too_large"},
			{"update unknown field", "PUT", path, map[string]any{"name": "x", "language": "python", "files": mainPy("1"), "owner": "me"}, 400, "invalid_input"},
			{"update no name", "PUT", path, map[string]any{"language": "python", "files": mainPy("1")}, 400, "invalid_input"},
			{"execute unknown field", "POST", path + "/execute", map[string]any{"code": "print(1)"}, 400, "invalid_input"},
			{"execute bad JSON", "POST", path + "/execute", `nope`, 400, "invalid_json"},
			{"execute args wrong type", "POST", path + "/execute", map[string]any{"args": "x"}, 400, "invalid_input"},
			{"execute huge stdin", "POST", path + "/execute", map[string]any{"stdin": strings.Repeat("s", 1<<20+1)}, 400, "stdin_too_large"},
			{"malformed id", "GET", "/api/projects/x%20y", nil, 404, "not_found"},
			{"unknown id", "GET", "/api/projects/prj_000000000000000000000000", nil, 404, "not_found"},
			{"share unknown", "POST", "/api/projects/prj_0/share", nil, 404, "not_found"},
			{"unshare unshared", "DELETE", path + "/share", nil, 404, "not_found"},
			{"fork unknown", "POST", "/api/shared/shr_nosuchshare/fork", nil, 404, "not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expect(t, do(t, base, tc.method, tc.path, ow, tc.body), tc.status, tc.code, tc.name)
			})
		}
		expect(t, do(t, base, "GET", "/api/projects", creds{}, nil), 401, "missing_credentials", "list without credentials")
		expect(t, do(t, base, "GET", "/api/shared/shr_nosuchshare", creds{}, nil), 404, "not_found", "unknown share")
	})

	t.Run("only the owner sees or changes it", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"GET", path, nil},
			{"PUT", path, map[string]any{"name": "mine", "language": "python", "files": mainPy("print('mine')")}},
			{"DELETE", path, nil},
			{"POST", path + "/execute", nil},
			{"POST", path + "/share", nil},
			{"DELETE", path + "/share", nil},
		} {
			expect(t, do(t, base, tc.method, tc.path, ot, tc.body), 404, "not_found", "another user's "+tc.method+" "+tc.path)
		}
		var list struct {
			Projects []projectView `json:"projects"`
		}
		do(t, base, "GET", "/api/projects", ot, nil).decode(t, &list)
		if len(list.Projects) != 0 {
			t.Fatalf("another user's list: got %+v, want empty", list.Projects)
		}
		var got projectView
		do(t, base, "GET", path, ow, nil).decode(t, &got)
		if got.Name != "Greeter" || len(got.Files) != 2 {
			t.Fatalf("the project after refused changes: %+v", got)
		}
	})

	var list struct {
		Projects []projectView `json:"projects"`
	}
	do(t, base, "GET", "/api/projects", ow, nil).decode(t, &list)
	if len(list.Projects) != 1 || list.Projects[0].ID != p.ID || list.Projects[0].Files != nil {
		t.Fatalf("list: got %+v, want the one project without files", list.Projects)
	}

	a = do(t, base, "POST", path+"/execute", ow, map[string]any{"stdin": "world", "args": []string{"-v"}})
	expect(t, a, 200, "", "execute the project")
	var ran executeAnswer
	a.decode(t, &ran)
	if ran.Result.Stdout != "hello world ['-v']\n" {
		t.Fatalf("execute: got %s", a.body)
	}
	t.Run("the job carries the project id", func(t *testing.T) {
		var page struct {
			Records []struct {
				JobID     string `json:"jobId"`
				ProjectID string `json:"projectId"`
			} `json:"records"`
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			do(t, base, "GET", "/api/usage", ow, nil).decode(t, &page)
			if len(page.Records) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no execution record: %+v", page)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r := page.Records[0]; r.JobID != ran.Result.JobID || r.ProjectID != p.ID {
			t.Fatalf("record: got %+v, want job %s of project %s", r, ran.Result.JobID, p.ID)
		}
	})

	a = do(t, base, "PUT", path, ow, map[string]any{"name": " Renamed ", "language": "javascript", "files": []map[string]any{
		{"filename": "index.js", "code": "console.log('v2')", "isEntryPoint": true}}})
	expect(t, a, 200, "", "update")
	var upd projectView
	a.decode(t, &upd)
	if upd.Name != "Renamed" || upd.Language != "javascript" || len(upd.Files) != 1 || !upd.UpdatedAt.After(p.UpdatedAt) && !upd.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("update: got %s", a.body)
	}
	a = do(t, base, "POST", path+"/execute", ow, map[string]any{"wait": false})
	expect(t, a, 202, "", "execute the updated project without waiting")

	// Sharing is idempotent, read-only without auth, and shows the owner's username only.
	var s1, s2 struct {
		ShareID string `json:"shareId"`
	}
	a = do(t, base, "POST", path+"/share", ow, nil)
	expect(t, a, 200, "", "share")
	a.decode(t, &s1)
	do(t, base, "POST", path+"/share", creds{key: owner.APIKey, xAPIKey: true}, nil).decode(t, &s2)
	if s1.ShareID == "" || s1.ShareID != s2.ShareID || len(s1.ShareID) < 26 {
		t.Fatalf("share twice: got %q and %q, want one long id", s1.ShareID, s2.ShareID)
	}
	a = do(t, base, "GET", "/api/shared/"+s1.ShareID, creds{}, nil)
	expect(t, a, 200, "", "shared view without auth")
	var view map[string]any
	a.decode(t, &view)
	if view["name"] != "Renamed" || view["language"] != "javascript" || view["owner"] == "" || view["owner"] == nil {
		t.Fatalf("shared view: got %s", a.body)
	}
	if strings.Contains(string(a.body), owner.UserID) || strings.Contains(string(a.body), owner.Email) {
		t.Fatalf("shared view shows the owner's id or email: %s", a.body)
	}
	for _, m := range []string{"PUT", "DELETE", "POST"} {
		if a := do(t, base, m, "/api/shared/"+s1.ShareID, ot, map[string]any{}); a.status != 404 && a.status != 405 {
			t.Fatalf("%s on a shared view: got %d %s, want it refused", m, a.status, a.body)
		}
	}
	expect(t, do(t, base, "POST", "/api/shared/"+s1.ShareID+"/fork", creds{}, nil), 401, "missing_credentials", "fork without auth")
	a = do(t, base, "POST", "/api/shared/"+s1.ShareID+"/fork", ot, nil)
	expect(t, a, 201, "", "fork")
	var fork projectView
	a.decode(t, &fork)
	if fork.ID == p.ID || fork.Name != "Renamed" || len(fork.Files) != 1 || fork.Files[0].Code != "console.log('v2')" {
		t.Fatalf("fork: got %s", a.body)
	}
	expect(t, do(t, base, "GET", "/api/projects/"+fork.ID, ot, nil), 200, "", "the fork is the forker's")
	expect(t, do(t, base, "GET", "/api/projects/"+fork.ID, ow, nil), 404, "not_found", "the fork is not the owner's")

	// Unshare kills the link; sharing again makes a new one.
	expect(t, do(t, base, "DELETE", path+"/share", ow, nil), 204, "", "unshare")
	expect(t, do(t, base, "GET", "/api/shared/"+s1.ShareID, creds{}, nil), 404, "not_found", "the link after unshare")
	var s3 struct {
		ShareID string `json:"shareId"`
	}
	do(t, base, "POST", path+"/share", ow, nil).decode(t, &s3)
	if s3.ShareID == "" || s3.ShareID == s1.ShareID {
		t.Fatalf("share after unshare: got %q, want a new id", s3.ShareID)
	}
	var got projectView
	do(t, base, "GET", path, ow, nil).decode(t, &got)
	if got.ShareID != s3.ShareID {
		t.Fatalf("project's shareId: got %q, want %q", got.ShareID, s3.ShareID)
	}

	// Deleting the project kills its share.
	expect(t, do(t, base, "DELETE", path, ow, nil), 204, "", "delete")
	expect(t, do(t, base, "GET", path, ow, nil), 404, "not_found", "get after delete")
	expect(t, do(t, base, "GET", "/api/shared/"+s3.ShareID, creds{}, nil), 404, "not_found", "the link after delete")
	expect(t, do(t, base, "DELETE", path, ow, nil), 404, "not_found", "delete twice")
	expect(t, do(t, base, "POST", path+"/execute", ow, nil), 404, "not_found", "execute a deleted project")
	expect(t, do(t, base, "GET", "/api/projects/"+fork.ID, ot, nil), 200, "", "the fork outlives the original")
}
