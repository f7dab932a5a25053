package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/edge/internal/dispatch"
	"github.com/codeexec/codeexec/shared/messages"
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

// readyz answers 200 when NATS is connected and JetStream answers.
func (s *Server) readyz(c *fiber.Ctx) error {
	if !s.nc.IsConnected() {
		return newError(http.StatusServiceUnavailable, "not_ready", "not connected to NATS")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return newError(http.StatusServiceUnavailable, "not_ready", "NATS does not answer")
	}
	if _, err := s.dispatch.Result(ctx, "readiness-probe"); err != nil && !isNotFound(err) {
		return newError(http.StatusServiceUnavailable, "not_ready", "JetStream does not answer")
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

func isNotFound(err error) bool { return errors.Is(err, dispatch.ErrNotFound) }
