package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/codeexec/codeexec/client"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// conformance checks every request and answer that passes through it against the API
// description, with kin-openapi's openapi3filter, and records which operations answered
// which statuses.
type conformance struct {
	t      testing.TB
	router routers.Router
	next   http.RoundTripper

	mu       sync.Mutex
	answered map[string][]int // operationId → statuses seen
}

// newConformance loads the description the edge at base serves.
func newConformance(t testing.TB, base string) (*conformance, *openapi3.T) {
	t.Helper()
	status, body := call(t, base, "GET", "/api/openapi.json", "", nil, nil)
	if status != 200 {
		t.Fatalf("GET /api/openapi.json: got %d %.200s, want 200", status, body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("load the served description: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served description is not valid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("route the description: %v", err)
	}
	return &conformance{t: t, router: router, next: http.DefaultTransport, answered: map[string][]int{}}, doc
}

// client is an API client whose calls all go through c.
func (c *conformance) client(t testing.TB, base string, opts ...client.Option) *client.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Jar: jar, Transport: c, Timeout: 2 * time.Minute})}, opts...)
	cl, err := client.New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// credentialPresent is the security check of the validation: the credential a scheme
// names is in the request (the edge decides whether it is valid).
func credentialPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req, scheme := in.RequestValidationInput.Request, in.SecurityScheme
	switch {
	case scheme.Type == "http" && scheme.Scheme == "bearer":
		if h := req.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			return nil
		}
	case scheme.Type == "apiKey" && scheme.In == "header":
		if req.Header.Get(scheme.Name) != "" {
			return nil
		}
	case scheme.Type == "apiKey" && scheme.In == "cookie":
		if _, err := req.Cookie(scheme.Name); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no %s credential", in.SecuritySchemeName)
}

func (c *conformance) RoundTrip(req *http.Request) (*http.Response, error) {
	var payload []byte
	if req.Body != nil {
		var err error
		if payload, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(payload))
	}
	where := req.Method + " " + req.URL.Path
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s: the description has no such operation: %v", where, err)
		return c.next.RoundTrip(req)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: credentialPresent, MultiError: true, SkipSettingDefaults: true}}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		c.t.Errorf("%s (%s): the request does not follow the description: %v", where, route.Operation.OperationID, err)
	}
	if payload != nil { // the edge gets the client's bytes, whatever the validation read
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(payload)), int64(len(payload))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		c.t.Errorf("%s (%s): the answer %d %.300s does not follow the description: %v",
			where, route.Operation.OperationID, resp.StatusCode, body, err)
	}
	c.mu.Lock()
	c.answered[route.Operation.OperationID] = append(c.answered[route.Operation.OperationID], resp.StatusCode)
	c.mu.Unlock()
	return resp, nil
}

// TestAPIFollowsItsDescription drives every operation of the description against a real
// all-in-one through the Go client, and checks every request and answer, successes and
// errors, against the description.
func TestAPIFollowsItsDescription(t *testing.T) {
	const adminToken = "conformance-admin-token"
	inst := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.AdminToken = adminToken
		c.RatePerSec, c.RateBurst = 1000, 1000 // the job poll asks often
	})
	check, doc := newConformance(t, inst.URL)
	ctx := context.Background()
	anon := check.client(t, inst.URL)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	refused := func(what string, err error, status int, code string) {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) || e.Status != status || e.Code != code {
			t.Errorf("%s: got %v, want %d %s", what, err, status, code)
		}
	}

	_, err := anon.Health(ctx)
	must("health", err)
	_, err = anon.Ready(ctx)
	must("ready", err)
	_, err = anon.Description(ctx)
	must("description", err)
	langs, err := anon.Languages(ctx, "")
	must("languages", err)
	if len(langs) < 6 {
		t.Errorf("languages: got %d, want the whole catalog", len(langs))
	}
	_, err = anon.Languages(ctx, "not a region")
	refused("languages of a bad region", err, 400, "invalid_input")

	userOf := func(name string) (client.RegisterRequest, client.RegisterReply) {
		req := client.RegisterRequest{Email: fmt.Sprintf("%s%d@example.com", name, time.Now().UnixNano()), Username: fmt.Sprintf("%s%d", name, time.Now().UnixNano()%1e9), Password: "a long password"}
		reply, err := anon.Register(ctx, req)
		must("register "+name, err)
		return req, reply
	}
	adaReq, ada := userOf("ada")
	_, bob := userOf("bob")
	_, err = anon.Register(ctx, adaReq)
	refused("register twice", err, 409, "conflict")
	a := check.client(t, inst.URL, client.WithAPIKey(ada.APIKey))
	b := check.client(t, inst.URL, client.WithAPIKey(bob.APIKey))

	// A session: login, me through the cookie, logout.
	session := check.client(t, inst.URL)
	_, err = session.Login(ctx, client.LoginRequest{Email: adaReq.Email, Password: "wrong password"})
	refused("login with a wrong password", err, 401, "invalid_credentials")
	_, err = session.Login(ctx, client.LoginRequest{Email: adaReq.Email, Password: adaReq.Password})
	must("login", err)
	me, err := session.Me(ctx)
	must("me by session", err)
	if me.UserID != ada.UserID {
		t.Errorf("me by session: got %s, want %s", me.UserID, ada.UserID)
	}
	must("logout", session.Logout(ctx))
	_, err = check.client(t, inst.URL, client.WithAPIKey("ce_not_a_key")).Me(ctx)
	refused("me with a bad key", err, 401, "invalid_api_key")

	// Keys.
	k, err := a.CreateKey(ctx, client.KeyCreateRequest{Name: "laptop"})
	must("create key", err)
	_, err = a.ListKeys(ctx)
	must("list keys", err)
	must("revoke key", a.RevokeKey(ctx, k.ID))
	refused("revoke a revoked key", a.RevokeKey(ctx, k.ID), 404, "not_found")

	// Ada gets credit for her executions; Bob keeps the test's free credit.
	_, err = a.AdminCredit(ctx, adminToken, client.CreditRequest{UserID: ada.UserID, AmountMicros: 1_000_000, Reference: "conformance-1"})
	must("admin credit", err)

	// Executions: waited (v1, v2), not waited and polled, refused.
	run, err := a.ExecuteV1(ctx, client.ExecuteV1Request{Language: "python", Code: "print(6*7)"})
	must("execute v1", err)
	if run.Result == nil || run.Result.Stdout != "42\n" {
		t.Errorf("execute v1: got %+v, want 42", run.Result)
	}
	files := []client.File{
		{Filename: "main.py", Code: "import util, sys\nprint(util.hello(input()), sys.argv[1:])\nsys.exit(3)\n", IsEntryPoint: true},
		{Filename: "util.py", Code: "def hello(n):\n    return 'hello ' + n\n"},
	}
	run, err = a.ExecuteV2(ctx, client.ExecuteV2Request{Language: "py", Files: files, RunOptions: client.RunOptions{Stdin: "world", Args: []string{"-v"}}})
	must("execute v2", err)
	if r := run.Result; r == nil || r.Stdout != "hello world ['-v']\n" || r.RunTimeStatus != client.StatusRuntimeError || r.ExitCode == nil || *r.ExitCode != 3 {
		t.Errorf("execute v2: got %+v, want hello world and exit code 3", run.Result)
	}
	noWait := false
	queued, err := a.ExecuteV1(ctx, client.ExecuteV1Request{Language: "javascript", Code: "console.log(1+1)", RunOptions: client.RunOptions{Wait: &noWait}})
	must("execute without waiting", err)
	waitfor.Eventually(t, time.Minute, "the job is done", func() (bool, error) {
		job, err := a.Job(ctx, queued.JobID)
		return err == nil && job.Status == "done", err
	})
	_, err = b.Job(ctx, queued.JobID)
	refused("another user's job", err, 404, "not_found")
	_, err = a.ExecuteV1(ctx, client.ExecuteV1Request{Language: "cobol", Code: "DISPLAY 1"})
	refused("an unknown language", err, 400, "unknown_language")
	_, err = a.ExecuteV1(ctx, client.ExecuteV1Request{Language: "python", Code: strings.Repeat("#", 300<<10)})
	refused("code over 256 KiB", err, 413, "code_too_large")

	_, err = a.Wallet(ctx)
	must("wallet", err)
	usage, err := a.Usage(ctx, client.UsageQuery{Page: 1, PageSize: 2})
	must("usage", err)
	if usage.Totals.Executions != 3 {
		t.Errorf("usage: got %d executions, want 3", usage.Totals.Executions)
	}
	_, err = a.AdminCredit(ctx, "not-the-token", client.CreditRequest{UserID: ada.UserID, AmountMicros: 1, Reference: "conformance-2"})
	refused("admin credit with a wrong token", err, 401, "invalid_admin_token")

	// Projects, sharing and forking.
	p, err := a.CreateProject(ctx, client.ProjectInput{Name: "hello", Language: "python", Files: files})
	must("create project", err)
	_, err = a.ListProjects(ctx)
	must("list projects", err)
	_, err = a.GetProject(ctx, p.ID)
	must("get project", err)
	_, err = b.GetProject(ctx, p.ID)
	refused("another user's project", err, 404, "not_found")
	_, err = a.UpdateProject(ctx, p.ID, client.ProjectInput{Name: "hello again", Language: "python", Files: files})
	must("update project", err)
	_, err = a.ExecuteProject(ctx, p.ID, client.ProjectExecuteRequest{Stdin: "project"})
	must("execute project", err)
	share, err := a.ShareProject(ctx, p.ID)
	must("share project", err)
	_, err = anon.GetShared(ctx, share.ShareID)
	must("get shared", err)
	_, err = b.ForkShared(ctx, share.ShareID)
	must("fork shared", err)
	must("unshare project", a.UnshareProject(ctx, p.ID))
	_, err = anon.GetShared(ctx, share.ShareID)
	refused("an unshared project", err, 404, "not_found")
	must("delete project", a.DeleteProject(ctx, p.ID))

	// Bob's free credit pays for two executions and a half: the third is refused.
	for i := range 3 {
		_, err = b.ExecuteV1(ctx, client.ExecuteV1Request{Language: "python", Code: "pass"})
		if i < 2 {
			must("bob's execution", err)
		}
	}
	refused("an execution past the balance", err, 402, "insufficient_funds")

	// Every operation of the description answered at least once with success.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			statuses := check.answered[op.OperationID]
			if !slices.ContainsFunc(statuses, func(s int) bool { return s < 300 }) {
				t.Errorf("%s %s (%s) never answered with success here (statuses %v): drive it in this test", method, path, op.OperationID, statuses)
			}
		}
	}
}

// TestConformanceRefusesAnswersOutsideTheDescription: the checker itself fails a route
// whose answer the description does not allow (a status it does not list, a field it
// does not know).
func TestConformanceRefusesAnswersOutsideTheDescription(t *testing.T) {
	inst := startMesh(t, t.TempDir(), nil)
	for _, tc := range []struct {
		name   string
		answer func(*http.Response)
		want   string
	}{
		{"undocumented status", func(r *http.Response) { r.StatusCode = http.StatusTeapot }, "answer 418"},
		{"unknown field", func(r *http.Response) {
			r.Body = io.NopCloser(strings.NewReader(`{"status":"ok","extra":1}`))
		}, "extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			check, _ := newConformance(rec, inst.URL)
			check.next = rewrite{tc.answer}
			cl := check.client(t, inst.URL)
			cl.Health(context.Background()) // the client's own verdict does not matter here
			if !strings.Contains(strings.Join(rec.errors, "\n"), tc.want) {
				t.Fatalf("the checker reported %q, want an error about %q", rec.errors, tc.want)
			}
		})
	}
}

// recorder keeps the errors a checker reports instead of failing the test.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// rewrite changes the real answer of the edge before the checker sees it.
type rewrite struct{ answer func(*http.Response) }

func (rw rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		rw.answer(resp)
	}
	return resp, err
}
