// Package api answers the ledger's request-reply subjects: reserve, wallet, wallet open,
// admin credit and usage.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/ledger/internal/pricing"
	"github.com/codeexec/codeexec/ledger/internal/records"
	"github.com/codeexec/codeexec/ledger/internal/telemetry"
	"github.com/codeexec/codeexec/ledger/internal/wallet"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Handlers answer the ledger's requests.
type Handlers struct {
	wallet  *wallet.Store
	records *records.Store
	prices  pricing.Table
	holdTTL time.Duration
	now     func() time.Time
	m       *telemetry.Metrics
}

// New returns the handlers. holdTTL is the sweeper's: a reserve answers how long its hold
// has left, on the clock now (the one the sweeper reads).
func New(w *wallet.Store, r *records.Store, prices pricing.Table, holdTTL time.Duration, now func() time.Time, m *telemetry.Metrics) *Handlers {
	if now == nil {
		now = time.Now
	}
	return &Handlers{wallet: w, records: r, prices: prices, holdTTL: holdTTL, now: now, m: m}
}

// Reserve holds the price of one job, or returns the job's open hold as it is (the
// publisher's reserve and the runner's pre-run check are one call). Refusals, all writing
// nothing: insufficient_funds, not_found (the user has no wallet), hold_closed (the job's
// hold was charged, released or expired: it never gets a second one), conflict (the job
// is another user's), invalid_input.
func (h *Handlers) Reserve(ctx context.Context, req messages.ReserveRequest) (messages.ReserveReply, error) {
	if err := checkVersion(req.V); err != nil {
		return messages.ReserveReply{}, err
	}
	price := h.prices.For(req.Language)
	r, err := h.wallet.Hold(ctx, req.UserID, req.JobID, price, req.RecordsOwner)
	if err != nil {
		if errors.Is(err, wallet.ErrInsufficientFunds) {
			h.m.Reservations.WithLabelValues("refused").Inc()
			return messages.ReserveReply{}, rpc.Errorf(rpc.CodeInsufficientFunds,
				"the wallet cannot cover the price of %d micro-dollars", price)
		}
		return messages.ReserveReply{}, mapErr(err)
	}
	outcome := "ok"
	if !r.Created {
		outcome = "existing"
	}
	h.m.Reservations.WithLabelValues(outcome).Inc()
	remaining := max(h.holdTTL-h.now().Sub(r.HeldSince), 0)
	return messages.ReserveReply{V: messages.Version, PriceMicros: r.Hold.HeldMicros,
		BalanceMicros: r.Balance.AvailableMicros, HoldRemainingMs: remaining.Milliseconds()}, nil
}

// Wallet answers a user's balance, opening the wallet on first sight.
func (h *Handlers) Wallet(ctx context.Context, req messages.WalletRequest) (messages.WalletReply, error) {
	if err := checkVersion(req.V); err != nil {
		return messages.WalletReply{}, err
	}
	return h.open(ctx, req.UserID)
}

// Open gives a new user the signup credit, once.
func (h *Handlers) Open(ctx context.Context, req messages.OpenWalletRequest) (messages.WalletReply, error) {
	if err := checkVersion(req.V); err != nil {
		return messages.WalletReply{}, err
	}
	return h.open(ctx, req.UserID)
}

func (h *Handlers) open(ctx context.Context, userID string) (messages.WalletReply, error) {
	bal, err := h.wallet.Open(ctx, userID)
	if err != nil {
		return messages.WalletReply{}, mapErr(err)
	}
	return messages.WalletReply{V: messages.Version, BalanceMicros: bal.AvailableMicros,
		HeldMicros: bal.HeldMicros, PriceMicros: h.prices.Default}, nil
}

// Credit adds an admin credit, once per reference. The caller (the edge) has checked the
// admin token.
func (h *Handlers) Credit(ctx context.Context, req messages.CreditRequest) (messages.CreditReply, error) {
	if err := checkVersion(req.V); err != nil {
		return messages.CreditReply{}, err
	}
	_, bal, created, err := h.wallet.Credit(ctx, req.UserID, req.AmountMicros, req.Reference)
	if err != nil {
		return messages.CreditReply{}, mapErr(err)
	}
	return messages.CreditReply{V: messages.Version, BalanceMicros: bal.AvailableMicros,
		HeldMicros: bal.HeldMicros, Duplicate: !created}, nil
}

// Usage pages a user's execution records, newest first, with the period's totals, in a
// reply of at most messages.MaxUsageReplyBytes of JSON (see fitPage).
func (h *Handlers) Usage(ctx context.Context, req messages.UsageRequest) (messages.UsageReply, error) {
	if err := checkVersion(req.V); err != nil {
		return messages.UsageReply{}, err
	}
	if req.UserID == "" {
		return messages.UsageReply{}, rpc.Errorf(rpc.CodeInvalidInput, "userId is required")
	}
	if req.Page == 0 {
		req.Page = 1
	}
	if req.PageSize == 0 {
		req.PageSize = 20
	}
	if err := req.CheckPage(); err != nil {
		return messages.UsageReply{}, rpc.Errorf(rpc.CodeInvalidInput, "%s", err.Error())
	}
	if !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To) {
		return messages.UsageReply{}, rpc.Errorf(rpc.CodeInvalidInput, "from must be before to")
	}
	period := records.Period{From: req.From, To: req.To}
	recs, err := h.records.Page(ctx, req.UserID, period, req.Page, req.PageSize)
	if err != nil {
		return messages.UsageReply{}, err
	}
	totals, err := h.records.Totals(ctx, req.UserID, period)
	if err != nil {
		return messages.UsageReply{}, err
	}
	views := make([]messages.ExecutionRecord, 0, len(recs))
	for _, r := range recs {
		views = append(views, r.View())
	}
	return fitPage(messages.UsageReply{V: messages.Version, Page: req.Page, PageSize: req.PageSize, Totals: totals},
		views, messages.MaxUsageReplyBytes)
}

func checkVersion(v int) error {
	// 0 is a body without "v", taken as version 1; newer versions are refused.
	if v > messages.Version {
		return rpc.Errorf(rpc.CodeInvalidInput, "message version %d: this ledger speaks %d", v, messages.Version)
	}
	return nil
}

// mapErr turns the wallet's refusals into rpc errors; anything else stays internal.
func mapErr(err error) error {
	switch {
	case errors.Is(err, wallet.ErrInvalid):
		return rpc.Errorf(rpc.CodeInvalidInput, "%s", err.Error())
	case errors.Is(err, wallet.ErrNoWallet):
		return rpc.Errorf(rpc.CodeNotFound, "%s", err.Error())
	case errors.Is(err, wallet.ErrSettled):
		return rpc.Errorf(rpc.CodeHoldClosed, "%s", err.Error())
	case errors.Is(err, wallet.ErrConflict):
		return rpc.Errorf(rpc.CodeConflict, "%s", err.Error())
	}
	return err
}

// Server subscribes the handlers and, at shutdown, lets the requests in flight finish.
type Server struct {
	nc   *nats.Conn
	log  *slog.Logger
	h    *Handlers
	m    *telemetry.Metrics
	subs []*nats.Subscription
	gate *rpc.Gate // bounds the requests handled at once, over all subjects

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// NewServer returns a Server for h on nc.
func NewServer(nc *nats.Conn, h *Handlers, m *telemetry.Metrics, log *slog.Logger) *Server {
	return &Server{nc: nc, h: h, m: m, log: log, gate: rpc.NewGate(rpc.DefaultMaxInFlight)}
}

// Start subscribes every subject in the ledger's queue group. Handlers run under ctx,
// which the caller ends after Stop.
func (s *Server) Start(ctx context.Context) error {
	err := errors.Join(
		handle(ctx, s, subjects.Reserve, s.h.Reserve),
		handle(ctx, s, subjects.Wallet, s.h.Wallet),
		handle(ctx, s, subjects.WalletOpen, s.h.Open),
		handle(ctx, s, subjects.Credit, s.h.Credit),
		handle(ctx, s, subjects.Usage, s.h.Usage),
		handle(ctx, s, subjects.LedgerPing, ping),
	)
	if err != nil {
		s.Stop(ctx)
	}
	return err
}

// ping answers an edge's readiness check: the ledger serves.
func ping(context.Context, messages.PingRequest) (messages.PingReply, error) {
	return messages.PingReply{V: messages.Version, Service: "ledger"}, nil
}

func handle[Req, Resp any](ctx context.Context, s *Server, subject string, fn func(context.Context, Req) (Resp, error)) error {
	sub, err := rpc.Handle(ctx, s.nc, s.log, subject, subjects.QueueLedger, func(ctx context.Context, req Req) (Resp, error) {
		var zero Resp
		if !s.enter() {
			return zero, rpc.Errorf(rpc.CodeInternal, "the ledger is shutting down")
		}
		defer s.inflight.Done()
		start := time.Now()
		resp, err := fn(ctx, req)
		outcome := "ok"
		var rerr *rpc.Error
		switch {
		case errors.As(err, &rerr):
			outcome = rerr.Code
		case err != nil:
			outcome = "error"
		}
		s.m.RPCDuration.WithLabelValues(subject, outcome).Observe(time.Since(start).Seconds())
		return resp, err
	}, rpc.WithGate(s.gate))
	if err != nil {
		return fmt.Errorf("serve %s: %w", subject, err)
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return nil
}

func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Stop drains the subscriptions (requests already delivered are answered), then waits
// for the handlers in flight, at most until ctx ends.
func (s *Server) Stop(ctx context.Context) {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	for _, sub := range subs {
		if err := sub.Drain(); err != nil {
			s.log.Warn("drain subscription", "subject", sub.Subject, "err", err)
		}
	}
	for _, sub := range subs {
		for sub.IsValid() && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("ledger requests still running at shutdown")
	}
}
