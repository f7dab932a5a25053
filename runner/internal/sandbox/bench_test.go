package sandbox_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/messages"
)

// BenchmarkPythonHello compares a python hello world on a container made beforehand (what
// the warm pool hands out) with one whose container is created and started on the spot.
// Each iteration is one job; the container's removal is not counted (it runs in the
// background in the runner). It reports the median besides ns/op:
//
//	go test -run '^$' -bench PythonHello -benchtime 10x ./internal/sandbox
func BenchmarkPythonHello(b *testing.B) {
	h := newHarness(b, "python")
	l, _ := h.catalog.Resolve("python")
	def := h.catalog.Defaults(l)
	job := sandbox.Job{
		ID: "bench", Language: l, Stdin: "world\n", Limits: h.catalog.Effective(l, messages.Limits{}),
		Files: []messages.File{{Filename: "main.py", Code: "import sys\nprint('hello ' + sys.stdin.read().strip())\n", IsEntryPoint: true}},
	}
	ctx := context.Background()
	for _, mode := range []string{"warm", "cold"} {
		b.Run(mode, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				var c *sandbox.Container
				var err error
				if mode == "warm" {
					b.StopTimer()
					c, err = h.sb.Create(ctx, l, def, "")
					time.Sleep(200 * time.Millisecond) // as a pool's container would have
					b.StartTimer()
				}
				start := time.Now()
				if mode == "cold" {
					c, err = h.sb.Create(ctx, l, def, "")
				}
				if err != nil {
					b.Fatal(err)
				}
				out, err := h.sb.Run(ctx, c, job)
				took = append(took, time.Since(start))
				b.StopTimer()
				if err != nil || out.Status != messages.StatusSucceeded {
					b.Fatalf("run: %v %s", err, out.Status)
				}
				h.sb.Remove(ctx, c)
				b.StartTimer()
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(took[0].Microseconds())/1000, "min-ms")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
		})
	}
}
