// Package accounts is CodeExec's accounts service: users, sessions, API keys, projects and
// their share links, and the key and session checks the edge asks for over NATS. It owns
// its MongoDB collections; nothing else reads them.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codeexec/codeexec/accounts/internal/keys"
	"github.com/codeexec/codeexec/accounts/internal/projects"
	"github.com/codeexec/codeexec/accounts/internal/sessions"
	"github.com/codeexec/codeexec/accounts/internal/users"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/metrics"
	"github.com/codeexec/codeexec/shared/natsconn"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Service answers the accounts subjects.
type Service struct {
	nc       *nats.Conn
	log      *slog.Logger
	users    *users.Store
	keys     *keys.Store
	usage    *keys.Usage
	used     chan string // key ids whose last use is due to be written
	sessions *sessions.Store
	projects *projects.Store
	m        *serviceMetrics
	// gate bounds the requests handled at once, over all subjects: a flood queues.
	gate *rpc.Gate
}

type serviceMetrics struct {
	registrations *prometheus.CounterVec
	keyChecks     *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	logins        *prometheus.CounterVec
	sessionChecks *prometheus.CounterVec
	revocations   prometheus.Counter
}

// New builds the service on db and nc; reg receives its metrics.
func New(nc *nats.Conn, db *mongo.Database, reg prometheus.Registerer, log *slog.Logger) (*Service, error) {
	m := &serviceMetrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_accounts_registrations_total", Help: "Registrations by outcome.",
		}, []string{"outcome"}),
		keyChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_accounts_key_checks_total", Help: "API key checks by result (valid, invalid, error).",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "codeexec_accounts_request_seconds", Help: "Time to answer a request, by subject.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"subject"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_accounts_logins_total", Help: "Logins by outcome (ok, failed, error).",
		}, []string{"outcome"}),
		sessionChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codeexec_accounts_session_checks_total", Help: "Session checks by result (valid, invalid, error).",
		}, []string{"result"}),
		revocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codeexec_accounts_key_revocations_total", Help: "API keys revoked.",
		}),
	}
	for _, c := range []prometheus.Collector{m.registrations, m.keyChecks, m.latency, m.logins, m.sessionChecks, m.revocations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register accounts metrics: %w", err)
		}
	}
	ks := keys.NewStore(db)
	return &Service{nc: nc, log: log, users: users.NewStore(db), keys: ks, usage: keys.NewUsage(ks),
		used: make(chan string, 1024), sessions: sessions.NewStore(db, 0), projects: projects.NewStore(db), m: m,
		gate: rpc.NewGate(rpc.DefaultMaxInFlight)}, nil
}

// Run prepares the collections (waiting for the database, should it not answer yet),
// answers requests until ctx ends, then stops listening.
func (s *Service) Run(ctx context.Context) error {
	if _, err := natsconn.Await(ctx, s.log, "the database (indexes of users, keys and projects)", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, errors.Join(s.users.EnsureIndexes(ctx), s.keys.EnsureIndexes(ctx), s.projects.EnsureIndexes(ctx))
	}); err != nil {
		return err
	}
	bg, stopBackground := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopBackground()
		wg.Wait()
	}()
	wg.Add(2)
	go func() { defer wg.Done(); s.writeUsage(bg) }()
	go func() { defer wg.Done(); s.sweepSessions(bg, time.Hour) }()

	subs := make([]*nats.Subscription, 0, 20)
	defer func() {
		for _, sub := range subs {
			_ = sub.Drain()
		}
	}()
	for _, h := range s.handlers() {
		sub, err := h(ctx)
		if err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}
	s.log.Info("accounts service ready")
	<-ctx.Done()
	return nil
}

type handler func(context.Context) (*nats.Subscription, error)

// handle answers subject with fn, timed, in the accounts queue group.
func handle[Req, Resp any](s *Service, subject string, fn func(context.Context, Req) (Resp, error)) handler {
	return func(ctx context.Context) (*nats.Subscription, error) {
		return rpc.Handle(ctx, s.nc, s.log, subject, subjects.QueueAccounts, timed(s, subject, fn), rpc.WithGate(s.gate))
	}
}

func (s *Service) handlers() []handler {
	return []handler{
		handle(s, subjects.Register, s.register),
		handle(s, subjects.KeyVerify, s.verifyKey),
		handle(s, subjects.Login, s.login),
		handle(s, subjects.SessionVerify, s.verifySession),
		handle(s, subjects.Logout, s.logout),
		handle(s, subjects.User, s.user),
		handle(s, subjects.KeyCreate, s.createKey),
		handle(s, subjects.KeyList, s.listKeys),
		handle(s, subjects.KeyRevoke, s.revokeKey),
		handle(s, subjects.ProjectCreate, s.createProject),
		handle(s, subjects.ProjectList, s.listProjects),
		handle(s, subjects.ProjectGet, s.getProject),
		handle(s, subjects.ProjectUpdate, s.updateProject),
		handle(s, subjects.ProjectDelete, s.deleteProject),
		handle(s, subjects.ProjectShare, s.shareProject),
		handle(s, subjects.ProjectUnshare, s.unshareProject),
		handle(s, subjects.SharedGet, s.getShared),
		handle(s, subjects.SharedFork, s.forkShared),
		handle(s, subjects.AccountsPing, ping),
	}
}

// ping answers an edge's readiness check: the accounts service serves.
func ping(context.Context, messages.PingRequest) (messages.PingReply, error) {
	return messages.PingReply{V: messages.Version, Service: "accounts"}, nil
}

func timed[Req, Resp any](s *Service, subject string, fn func(context.Context, Req) (Resp, error)) func(context.Context, Req) (Resp, error) {
	return func(ctx context.Context, req Req) (Resp, error) {
		start := time.Now()
		defer func() { s.m.latency.WithLabelValues(subject).Observe(time.Since(start).Seconds()) }()
		return fn(ctx, req)
	}
}

func (s *Service) register(ctx context.Context, req messages.RegisterRequest) (messages.RegisterReply, error) {
	u, err := s.users.Create(ctx, users.Registration{Email: req.Email, Username: req.Username, Password: req.Password})
	var invalid *users.InvalidError
	switch {
	case errors.As(err, &invalid):
		s.m.registrations.WithLabelValues("invalid").Inc()
		return messages.RegisterReply{}, rpc.Errorf(rpc.CodeInvalidInput, "%s", invalid.Reason)
	case errors.Is(err, users.ErrEmailTaken), errors.Is(err, users.ErrUsernameTaken):
		s.m.registrations.WithLabelValues("conflict").Inc()
		return messages.RegisterReply{}, rpc.Errorf(rpc.CodeConflict, "%s", err.Error())
	case err != nil:
		s.m.registrations.WithLabelValues("error").Inc()
		return messages.RegisterReply{}, fmt.Errorf("create user: %w", err)
	}
	_, secret, err := s.keys.Create(ctx, u.ID, "default")
	if err != nil {
		s.m.registrations.WithLabelValues("error").Inc()
		return messages.RegisterReply{}, fmt.Errorf("create first key of %s: %w", u.ID, err)
	}
	// The ledger opens a wallet lazily too, so a ledger that is down now costs nothing.
	if _, err := rpc.Call[messages.OpenWalletRequest, messages.WalletReply](ctx, s.nc, subjects.WalletOpen,
		messages.OpenWalletRequest{V: messages.Version, UserID: u.ID}); err != nil {
		s.log.Warn("open wallet at registration; the ledger will open it on first use", "user_id", u.ID, "err", err)
	}
	s.m.registrations.WithLabelValues("ok").Inc()
	s.log.Info("user registered", "user_id", u.ID)
	return messages.RegisterReply{V: messages.Version, UserID: u.ID, APIKey: secret}, nil
}

func (s *Service) verifyKey(ctx context.Context, req messages.KeyVerifyRequest) (messages.KeyVerifyReply, error) {
	k, err := s.keys.Verify(ctx, req.APIKey)
	if errors.Is(err, keys.ErrInvalid) {
		s.m.keyChecks.WithLabelValues("invalid").Inc()
		return messages.KeyVerifyReply{V: messages.Version}, nil
	}
	if err != nil {
		s.m.keyChecks.WithLabelValues("error").Inc()
		return messages.KeyVerifyReply{}, err
	}
	s.m.keyChecks.WithLabelValues("valid").Inc()
	s.noteUse(k.KeyID)
	return messages.KeyVerifyReply{V: messages.Version, Valid: true, UserID: k.UserID, KeyID: k.KeyID}, nil
}
