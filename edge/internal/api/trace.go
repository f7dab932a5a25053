package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/trace"
)

// traceLocal is where traceRequest leaves the request's trace.Parent.
const traceLocal = "codeexec.traceparent"

// traceRequest gives every request a W3C traceparent: the caller's, continued with a span
// of the edge's own, or a new trace when the caller sent none (or an invalid one). The
// answer carries it back in the traceparent header, a job carries it to the runner and
// the ledger, and the logs carry its trace id.
func (s *Server) traceRequest(c *fiber.Ctx) error {
	p := trace.FromRequest(c.Get(trace.Header))
	c.Locals(traceLocal, p)
	c.Set(trace.Header, p.String())
	return c.Next()
}

// traceOf is the request's traceparent (see traceRequest).
func traceOf(c *fiber.Ctx) trace.Parent {
	p, ok := c.Locals(traceLocal).(trace.Parent)
	if !ok {
		return trace.New()
	}
	return p
}
