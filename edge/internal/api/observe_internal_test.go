package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestObserveLabelsThePageRouteApartFromUnmatchedRequests: the playground's page is the
// route "/", and a request no route matches is "unmatched", though both end in the
// middleware mounted at "/".
func TestObserveLabelsThePageRouteApartFromUnmatchedRequests(t *testing.T) {
	s := &Server{m: &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests"}, []string{"route", "method", "status"}),
		latency:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "latency"}, []string{"route", "method"}),
	}}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(s.observe)
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("page") })
	for _, path := range []string{"/", "/nope"} {
		res, err := app.Test(httptest.NewRequest(http.MethodGet, path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	for _, c := range []struct{ route, status string }{{"/", "200"}, {"unmatched", "404"}} {
		if got := testutil.ToFloat64(s.m.requests.WithLabelValues(c.route, "GET", c.status)); got != 1 {
			t.Errorf("requests{route=%q,status=%s}: got %v, want 1", c.route, c.status, got)
		}
	}
}
