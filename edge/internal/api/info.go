package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/edge/internal/dispatch"
	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

type languageView struct {
	Language  string          `json:"language"`
	Version   string          `json:"version"`
	Aliases   []string        `json:"aliases"`
	Limits    messages.Limits `json:"limits"`
	MaxLimits messages.Limits `json:"maxLimits"`
	MinLimits messages.Limits `json:"minLimits"`
	Available bool            `json:"available"`
}

// languages answers GET /api/v1/languages.
func (s *Server) languages(c *fiber.Ctx) error {
	region := s.cfg.Region
	if r := c.Query("region"); r != "" {
		if !subjects.Token(r) {
			return newError(http.StatusBadRequest, "invalid_input", "region %s is not a valid region name", excerpt.Quote(r))
		}
		region = r
	}
	out := make([]languageView, 0, len(s.catalog.Languages))
	for i := range s.catalog.Languages {
		l := &s.catalog.Languages[i]
		aliases := l.Aliases
		if aliases == nil {
			aliases = []string{}
		}
		out = append(out, languageView{
			Language:  l.Name,
			Version:   l.Version,
			Aliases:   aliases,
			Limits:    s.catalog.Defaults(l),
			MaxLimits: s.catalog.Maximums(l),
			MinLimits: s.catalog.Minimums(l),
			Available: s.presence.Available(region, l.Name),
		})
	}
	return c.JSON(out)
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers 200 only when this edge can serve: NATS is connected, its streams and
// buckets are bound, JetStream answers, and so do the accounts service and the ledger.
func (s *Server) readyz(c *fiber.Ctx) error {
	if !s.nc.IsConnected() {
		return newError(http.StatusServiceUnavailable, "not_ready", "not connected to NATS")
	}
	if s.cfg.Bound != nil && !s.cfg.Bound() {
		return newError(http.StatusServiceUnavailable, "not_ready", "waiting for the streams and buckets (made by `codeexec provision`)")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return newError(http.StatusServiceUnavailable, "not_ready", "NATS does not answer")
	}
	if _, err := s.dispatch.Result(ctx, "readiness-probe"); err != nil && !isNotFound(err) {
		return newError(http.StatusServiceUnavailable, "not_ready", "JetStream does not answer")
	}
	pings := []struct{ service, subject string }{{"accounts", subjects.AccountsPing}, {"ledger", subjects.LedgerPing}}
	errs := make([]error, len(pings))
	var wg sync.WaitGroup
	for i, p := range pings {
		wg.Go(func() {
			_, errs[i] = rpc.Call[messages.PingRequest, messages.PingReply](ctx, s.nc, p.subject, messages.PingRequest{V: messages.Version})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return newError(http.StatusServiceUnavailable, "not_ready", "the %s service does not answer", pings[i].service)
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// requireBound answers 503 not_ready on every /api route until the edge has bound its
// streams and buckets.
func (s *Server) requireBound(c *fiber.Ctx) error {
	if s.cfg.Bound != nil && !s.cfg.Bound() {
		return &Error{Status: http.StatusServiceUnavailable, Code: "not_ready",
			Message: "the edge is starting: it waits for its streams and buckets", RetryAfter: 1}
	}
	return c.Next()
}

func isNotFound(err error) bool { return errors.Is(err, dispatch.ErrNotFound) }
