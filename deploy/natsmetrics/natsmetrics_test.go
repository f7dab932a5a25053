package natsmetrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/codeexec/codeexec/deploy/natsmetrics"
)

// TestInProcessAndMonitorPortAgree reads one real server both ways, in process and from
// its monitoring port, and finds the same series with the values the server holds.
func TestInProcessAndMonitorPortAgree(t *testing.T) {
	s, err := server.NewServer(&server.Options{ServerName: "metrics-test", Host: "127.0.0.1", Port: -1,
		HTTPHost: "127.0.0.1", HTTPPort: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "orders.1", []byte("one")); err != nil {
		t.Fatal(err)
	}

	monitor, err := natsmetrics.Monitor(fmt.Sprintf("http://%s", s.MonitorAddr()), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []natsmetrics.Source{natsmetrics.InProcess(s), monitor} {
		t.Run(fmt.Sprintf("%T", src), func(t *testing.T) {
			c := natsmetrics.New(time.Hour, slog.New(slog.DiscardHandler), src)
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			if v, ok := gather(t, reg)["codeexec_nats_server_up"]; !ok || v != 0 {
				t.Fatalf("up before the first read: got %v (exported %v), want 0", v, ok)
			}
			c.Poll(context.Background())
			got := gather(t, reg)
			for name, want := range map[string]float64{
				"codeexec_nats_server_up":                 1,
				"gnatsd_varz_connections":                 1,
				"gnatsd_connz_total":                      1,
				"jetstream_server_total_streams":          1,
				"jetstream_server_total_messages":         1,
				"jetstream_stream_total_messages":         1,
				"jetstream_stream_limit_bytes":            1 << 20,
				"gnatsd_varz_slow_consumers":              0,
				"gnatsd_routez_num_routes":                0,
				"gnatsd_varz_jetstream_config_max_memory": float64(s.JetStreamConfig().MaxMemory),
			} {
				if v, ok := got[name]; !ok || v != want {
					t.Errorf("%s: got %v (exported %v), want %v", name, v, ok, want)
				}
			}
			if got["gnatsd_varz_mem"] <= 0 || got["gnatsd_varz_jetstream_stats_storage"] <= 0 {
				t.Errorf("memory %v and storage %v: want both above 0", got["gnatsd_varz_mem"], got["gnatsd_varz_jetstream_stats_storage"])
			}
		})
	}

	t.Run("a server that does not answer", func(t *testing.T) {
		gone, err := natsmetrics.Monitor("http://127.0.0.1:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		c := natsmetrics.New(time.Hour, slog.New(slog.DiscardHandler), gone)
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		c.Poll(context.Background())
		got := gather(t, reg)
		if v, ok := got["codeexec_nats_server_up"]; !ok || v != 0 {
			t.Errorf("up: got %v (exported %v), want 0", v, ok)
		}
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		if !slices.Equal(names, []string{"codeexec_nats_server_up"}) {
			t.Errorf("series of a server that does not answer: got %v, want only codeexec_nats_server_up", names)
		}
	})
}

// gather sums each family's samples (one server: one sample, or one per stream).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] += value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}
