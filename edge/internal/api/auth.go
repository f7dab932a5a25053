package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/edge/internal/authcache"
	"github.com/codeexec/codeexec/edge/internal/limits"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

const (
	localUserID = "userId"
	localKeyID  = "keyId"
)

// sessionCookie is the name of the cookie that carries a session token.
const sessionCookie = "codeexec_session"

// maxSecretLen bounds the credentials worth asking accounts about.
const maxSecretLen = 256

type authMetrics struct {
	checks   *prometheus.CounterVec
	refusals *prometheus.CounterVec
	logins   *prometheus.CounterVec
	authTime *prometheus.HistogramVec
	limits   *prometheus.HistogramVec
}

func newAuthMetrics(reg prometheus.Registerer) (*authMetrics, error) {
	m := &authMetrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_edge_credential_checks_total",
			Help: "Credential checks by kind (key, session) and result: hit (this edge's cache), miss (asked accounts: valid), invalid.",
		}, []string{"kind", "result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_edge_limit_refusals_total", Help: "Requests refused by a limit, by code (rate_limited, too_many_concurrent).",
		}, []string{"code"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_edge_logins_total", Help: "Logins by outcome (ok, failed).",
		}, []string{"outcome"}),
		authTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "codeexec_edge_auth_seconds", Help: "Time to authenticate a request and take its rate-limit token, by credential check (hit: from this edge's cache, miss: asked accounts).",
			Buckets: metrics.LatencyBuckets,
		}, []string{"check"}),
		limits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "codeexec_edge_limit_seconds", Help: "Time spent in the shared limits, by operation (rate, acquire, release).",
			Buckets: metrics.LatencyBuckets,
		}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{m.checks, m.refusals, m.logins, m.authTime, m.limits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, code := range []string{"rate_limited", "too_many_concurrent"} {
		m.refusals.WithLabelValues(code) // exported at 0 before the first refusal
	}
	return m, nil
}

// apiKey returns the key of a request: "Authorization: Bearer <key>" or "X-API-Key".
func apiKey(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		if scheme, key, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(key)
		}
	}
	return strings.TrimSpace(c.Get("X-API-Key"))
}

// authenticate finds who the request's credential belongs to (an API key in a header, else
// the session cookie), from this edge's cache or from accounts, then takes a token from
// the credential's rate-limit bucket.
func (s *Server) authenticate(c *fiber.Ctx) error {
	start := time.Now()
	secret, session := apiKey(c), false
	if secret == "" {
		secret, session = c.Cookies(sessionCookie), true
	}
	if secret == "" {
		return newError(http.StatusUnauthorized, "missing_credentials",
			"send an API key as 'Authorization: Bearer <key>' or 'X-API-Key', or log in for a session cookie")
	}
	ctx := c.UserContext()
	id, hit, err := s.identify(ctx, secret, session)
	if err != nil {
		return err
	}
	// Keys are limited one by one; a user's sessions share the user's bucket.
	bucket := id.KeyID
	if bucket == "" {
		bucket = id.UserID
	}
	if err := s.takeToken(ctx, bucket); err != nil {
		return err
	}
	check := "miss"
	if hit {
		check = "hit"
	}
	s.am.authTime.WithLabelValues(check).Observe(time.Since(start).Seconds())
	c.Locals(localUserID, id.UserID)
	c.Locals(localKeyID, id.KeyID)
	return c.Next()
}

// identify answers from the cache (hit), else asks accounts and caches a valid answer.
func (s *Server) identify(ctx context.Context, secret string, session bool) (id authcache.Identity, hit bool, err error) {
	kind, code, what := "key", "invalid_api_key", "the API key is not valid"
	if session {
		kind, code, what = "session", "invalid_session", "the session has ended or expired; log in again"
	}
	if len(secret) > maxSecretLen {
		s.am.checks.WithLabelValues(kind, "invalid").Inc()
		return authcache.Identity{}, false, newError(http.StatusUnauthorized, code, "%s", what)
	}
	hash := authcache.Hash(secret)
	if id, ok := s.creds.Get(hash); ok {
		s.am.checks.WithLabelValues(kind, "hit").Inc()
		return id, true, nil
	}
	gen := s.creds.Generation()
	var (
		valid    bool
		notAfter time.Time
	)
	if session {
		reply, err := rpc.Call[messages.SessionVerifyRequest, messages.SessionVerifyReply](ctx, s.nc, subjects.SessionVerify,
			messages.SessionVerifyRequest{V: messages.Version, Token: secret})
		if err != nil {
			return id, false, fromRPC(err, "accounts")
		}
		id, valid, notAfter = authcache.Identity{UserID: reply.UserID}, reply.Valid, reply.ExpiresAt
	} else {
		reply, err := rpc.Call[messages.KeyVerifyRequest, messages.KeyVerifyReply](ctx, s.nc, subjects.KeyVerify,
			messages.KeyVerifyRequest{V: messages.Version, APIKey: secret})
		if err != nil {
			return id, false, fromRPC(err, "accounts")
		}
		id, valid = authcache.Identity{UserID: reply.UserID, KeyID: reply.KeyID}, reply.Valid
	}
	if !valid || id.UserID == "" {
		s.am.checks.WithLabelValues(kind, "invalid").Inc()
		return authcache.Identity{}, false, newError(http.StatusUnauthorized, code, "%s", what)
	}
	s.am.checks.WithLabelValues(kind, "miss").Inc()
	s.creds.Put(hash, id, gen, notAfter)
	return id, false, nil
}

// limitsUnavailable is the answer when the shared limits cannot be read (NATS trouble).
func (s *Server) limitsUnavailable(op string, err error) error {
	s.log.Warn("shared limits unavailable", "op", op, "err", err)
	return &Error{Status: http.StatusServiceUnavailable, Code: "service_unavailable",
		Message: "request limits cannot be checked right now; try again shortly", RetryAfter: 1}
}

// takeToken takes one token from bucket's rate limit: 429 rate_limited with Retry-After
// when there is none.
func (s *Server) takeToken(ctx context.Context, bucket string) error {
	if s.limiter == nil {
		return nil
	}
	start := time.Now()
	ok, wait, err := s.limiter.Allow(ctx, bucket)
	s.am.limits.WithLabelValues("rate").Observe(time.Since(start).Seconds())
	if err != nil {
		return s.limitsUnavailable("rate", err)
	}
	if !ok {
		s.am.refusals.WithLabelValues("rate_limited").Inc()
		return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "too many requests for this credential; slow down", RetryAfter: limits.RetryAfter(wait)}
	}
	return nil
}

// limitAddress takes a token from the client address's bucket, for the endpoints that take
// no credential: 429 rate_limited with Retry-After when there is none.
func (s *Server) limitAddress(c *fiber.Ctx) error {
	if s.limiter == nil {
		return c.Next()
	}
	ok, wait, err := s.limiter.AllowAddress(c.UserContext(), c.IP())
	if err != nil {
		return s.limitsUnavailable("address rate", err)
	}
	if !ok {
		s.am.refusals.WithLabelValues("rate_limited").Inc()
		return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "too many requests from this address; slow down", RetryAfter: limits.RetryAfter(wait)}
	}
	return c.Next()
}

// acquireLease counts job against its account's concurrent executions: 429
// too_many_concurrent at the limit. The returned release is idempotent and safe to call
// after the request's context has ended.
func (s *Server) acquireLease(ctx context.Context, job *messages.Job) (release func(), err error) {
	if s.limiter == nil {
		return func() {}, nil
	}
	start := time.Now()
	ok, err := s.limiter.Acquire(ctx, job.UserID, job.JobID, s.jobFinished)
	s.am.limits.WithLabelValues("acquire").Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, s.limitsUnavailable("acquire", err)
	}
	if !ok {
		s.am.refusals.WithLabelValues("too_many_concurrent").Inc()
		return nil, &Error{Status: http.StatusTooManyRequests, Code: "too_many_concurrent",
			Message: "this account runs as many executions as it may at once; wait for one to finish", RetryAfter: 1}
	}
	released := false
	return func() {
		if released {
			return
		}
		released = true
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := s.limiter.Release(rctx, job.UserID, job.JobID)
		s.am.limits.WithLabelValues("release").Observe(time.Since(start).Seconds())
		if err != nil {
			s.log.Warn("release execution lease; it lapses by itself", "job_id", job.JobID, "err", err)
		}
	}, nil
}

// jobFinished reports whether a job's result is stored, so that its lease can go.
func (s *Server) jobFinished(ctx context.Context, jobID string) bool {
	_, err := s.dispatch.Result(ctx, jobID)
	return err == nil
}

func userID(c *fiber.Ctx) string {
	id, _ := c.Locals(localUserID).(string)
	return id
}
