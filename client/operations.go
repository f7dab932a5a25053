package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Health calls GET /healthz: the edge serves HTTP.
func (cl *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/healthz", out: &out})
}

// Ready calls GET /readyz: the edge, NATS, JetStream, accounts and the ledger answer.
func (cl *Client) Ready(ctx context.Context) (Health, error) {
	var out Health
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/readyz", out: &out})
}

// Description calls GET /api/openapi.json: the API description (OpenAPI 3.1, JSON).
func (cl *Client) Description(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/openapi.json", out: &out})
}

// Register creates an account; the reply holds its first API key, shown once.
func (cl *Client) Register(ctx context.Context, req RegisterRequest) (RegisterReply, error) {
	var out RegisterReply
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/register", body: req, out: &out})
}

// Login opens a session; its cookie goes to the client's cookie jar and authenticates the
// calls that follow when the client has no API key.
func (cl *Client) Login(ctx context.Context, req LoginRequest) (LoginReply, error) {
	var out LoginReply
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/login", body: req, out: &out})
}

// Logout ends the session of the client's cookie, if any.
func (cl *Client) Logout(ctx context.Context) error {
	return cl.do(ctx, call{method: http.MethodPost, path: "/api/logout"})
}

// Me tells whom the credential belongs to.
func (cl *Client) Me(ctx context.Context) (Me, error) {
	var out Me
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/me", out: &out})
}

// CreateKey makes a new API key; its secret is in the reply only.
func (cl *Client) CreateKey(ctx context.Context, req KeyCreateRequest) (KeyCreated, error) {
	var out KeyCreated
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/keys", body: req, out: &out})
}

// ListKeys lists the caller's live keys, never a secret.
func (cl *Client) ListKeys(ctx context.Context) (KeyList, error) {
	var out KeyList
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/keys", out: &out})
}

// RevokeKey revokes one of the caller's keys; every edge refuses it within 2 s.
func (cl *Client) RevokeKey(ctx context.Context, id string) error {
	return cl.do(ctx, call{method: http.MethodDelete, path: "/api/keys/" + pathEscape(id)})
}

// Languages lists the languages, their limits and whether a live runner of region (empty:
// the edge's) serves them.
func (cl *Client) Languages(ctx context.Context, region string) ([]Language, error) {
	var out []Language
	q := url.Values{}
	if region != "" {
		q.Set("region", region)
	}
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/v1/languages", query: q, out: &out})
}

// ExecuteV1 runs one file of code.
func (cl *Client) ExecuteV1(ctx context.Context, req ExecuteV1Request) (Execution, error) {
	var out Execution
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/v1/execute", body: req, out: &out})
}

// ExecuteV2 runs several files.
func (cl *Client) ExecuteV2(ctx context.Context, req ExecuteV2Request) (Execution, error) {
	var out Execution
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/v2/execute", body: req, out: &out})
}

// Job reads a job of the caller: queued, running, or done with its result.
func (cl *Client) Job(ctx context.Context, jobID string) (Job, error) {
	var out Job
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/v1/jobs/" + pathEscape(jobID), out: &out})
}

// Wallet reads the caller's balance.
func (cl *Client) Wallet(ctx context.Context) (Wallet, error) {
	var out Wallet
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/wallet", out: &out})
}

// Usage reads a page of the caller's execution records, newest first.
func (cl *Client) Usage(ctx context.Context, q UsageQuery) (Usage, error) {
	v := url.Values{}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.PageSize > 0 {
		v.Set("pageSize", strconv.Itoa(q.PageSize))
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.Format(time.RFC3339))
	}
	var out Usage
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/usage", query: v, out: &out})
}

// AdminCredit credits a wallet with the operator's token (CODEEXEC_ADMIN_TOKEN), once per
// reference.
func (cl *Client) AdminCredit(ctx context.Context, adminToken string, req CreditRequest) (CreditReply, error) {
	var out CreditReply
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/admin/credit", bearer: adminToken, body: req, out: &out})
}

// CreateProject saves a project.
func (cl *Client) CreateProject(ctx context.Context, in ProjectInput) (Project, error) {
	var out Project
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/projects", body: in, out: &out})
}

// ListProjects lists the caller's projects, without their files.
func (cl *Client) ListProjects(ctx context.Context) (ProjectList, error) {
	var out ProjectList
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/projects", out: &out})
}

// GetProject reads a project with its files.
func (cl *Client) GetProject(ctx context.Context, id string) (Project, error) {
	var out Project
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/projects/" + pathEscape(id), out: &out})
}

// UpdateProject replaces a project's name, language and files.
func (cl *Client) UpdateProject(ctx context.Context, id string, in ProjectInput) (Project, error) {
	var out Project
	return out, cl.do(ctx, call{method: http.MethodPut, path: "/api/projects/" + pathEscape(id), body: in, out: &out})
}

// DeleteProject deletes a project; its share link dies with it.
func (cl *Client) DeleteProject(ctx context.Context, id string) error {
	return cl.do(ctx, call{method: http.MethodDelete, path: "/api/projects/" + pathEscape(id)})
}

// ExecuteProject runs a saved project.
func (cl *Client) ExecuteProject(ctx context.Context, id string, req ProjectExecuteRequest) (Execution, error) {
	var out Execution
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/projects/" + pathEscape(id) + "/execute", body: req, out: &out})
}

// ShareProject shares a project read-only; the same share id on every call.
func (cl *Client) ShareProject(ctx context.Context, id string) (Share, error) {
	var out Share
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/projects/" + pathEscape(id) + "/share", out: &out})
}

// UnshareProject stops sharing a project: its link answers 404.
func (cl *Client) UnshareProject(ctx context.Context, id string) error {
	return cl.do(ctx, call{method: http.MethodDelete, path: "/api/projects/" + pathEscape(id) + "/share"})
}

// GetShared reads a shared project; it needs no credential.
func (cl *Client) GetShared(ctx context.Context, shareID string) (Shared, error) {
	var out Shared
	return out, cl.do(ctx, call{method: http.MethodGet, path: "/api/shared/" + pathEscape(shareID), out: &out})
}

// ForkShared copies a shared project into the caller's projects.
func (cl *Client) ForkShared(ctx context.Context, shareID string) (Project, error) {
	var out Project
	return out, cl.do(ctx, call{method: http.MethodPost, path: "/api/shared/" + pathEscape(shareID) + "/fork", out: &out})
}
