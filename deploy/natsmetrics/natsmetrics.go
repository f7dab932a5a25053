// Package natsmetrics exports nats-server's own monitoring data (Varz, Jsz, Connz, Routez,
// the server's typed structures) to Prometheus under the names of nats-io's
// prometheus-nats-exporter (gnatsd_varz_*, gnatsd_connz_*, gnatsd_routez_*, jetstream_*),
// so that its public dashboards work on them too, plus codeexec_nats_* for what that
// exporter lacks (a server that does not answer, the JetStream meta group's health).
//
// A background loop reads every source on a short period and keeps the readings; a
// scrape only reads those, so it never waits on a server. The all-in-one reads its
// embedded server in process; `codeexec nats-exporter` reads a cluster's monitoring ports.
// It lives in the deploy module, which links nats-server anyway: the services never do.
package natsmetrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/shared/metrics"
)

// DefaultEvery is how often the servers are read.
const DefaultEvery = 5 * time.Second

// readTimeout bounds one read of one server.
const readTimeout = 4 * time.Second

// field is one exported number of a reading.
type field struct {
	desc  *prometheus.Desc
	value func(Reading) (float64, bool)
}

// Collector reads servers in the background and exports their last readings.
type Collector struct {
	sources []Source
	every   time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	readings map[string]Reading // by source name; absent: the last read failed
	failing  map[string]bool    // only the poll loop touches it

	server  []field // labels: server_id
	js      []field // labels: server_id, server_name, cluster
	up      *prometheus.Desc
	streams map[string]func(server.StreamDetail) float64
	sdescs  map[string]*prometheus.Desc
}

func varz(f func(*server.Varz) float64) func(Reading) (float64, bool) {
	return func(r Reading) (float64, bool) {
		if r.Varz == nil {
			return 0, false
		}
		return f(r.Varz), true
	}
}

func jsStats(f func(*server.JetStreamStats, *server.JetStreamConfig) float64) func(Reading) (float64, bool) {
	return func(r Reading) (float64, bool) {
		if r.Varz == nil || r.Varz.JetStream.Stats == nil || r.Varz.JetStream.Config == nil {
			return 0, false
		}
		return f(r.Varz.JetStream.Stats, r.Varz.JetStream.Config), true
	}
}

func jsz(f func(*server.JSInfo) float64) func(Reading) (float64, bool) {
	return func(r Reading) (float64, bool) {
		if r.Jsz == nil {
			return 0, false
		}
		return f(r.Jsz), true
	}
}

func connz(f func(*server.Connz) float64) func(Reading) (float64, bool) {
	return func(r Reading) (float64, bool) {
		if r.Connz == nil {
			return 0, false
		}
		return f(r.Connz), true
	}
}

// meta reads the JetStream meta group; a server with JetStream and no cluster is a group
// of one that leads itself.
func meta(f func(*server.MetaClusterInfo) float64) func(Reading) (float64, bool) {
	return func(r Reading) (float64, bool) {
		if r.Jsz == nil || r.Jsz.Disabled {
			return 0, false
		}
		m := r.Jsz.Meta
		if m == nil {
			m = &server.MetaClusterInfo{Size: 1, Leader: "self"}
		}
		return f(m), true
	}
}

// New returns a Collector of sources, read every every (0: DefaultEvery). Register it,
// then Run it.
func New(every time.Duration, log *slog.Logger, sources ...Source) *Collector {
	if every <= 0 {
		every = DefaultEvery
	}
	sl := []string{"server_id"}
	g := func(name, help string, v func(Reading) (float64, bool)) field {
		return field{prometheus.NewDesc(name, help, sl, nil), v}
	}
	jl := []string{"server_id", "server_name", "cluster"}
	j := func(name, help string, v func(Reading) (float64, bool)) field {
		return field{prometheus.NewDesc(name, help, jl, nil), v}
	}
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	c := &Collector{
		sources: sources, every: every, log: log,
		readings: map[string]Reading{}, failing: map[string]bool{},
		up: prometheus.NewDesc("codeexec_nats_server_up", "Whether the server answered its last monitoring read (1) or not (0).", sl, nil),
		server: []field{
			g("gnatsd_varz_connections", "Client connections.", varz(func(v *server.Varz) float64 { return float64(v.Connections) })),
			g("gnatsd_varz_total_connections", "Client connections since start.", varz(func(v *server.Varz) float64 { return float64(v.TotalConnections) })),
			g("gnatsd_varz_max_connections", "Client connections allowed.", varz(func(v *server.Varz) float64 { return float64(v.MaxConn) })),
			g("gnatsd_varz_slow_consumers", "Clients disconnected since start for being slow consumers.", varz(func(v *server.Varz) float64 { return float64(v.SlowConsumers) })),
			g("gnatsd_varz_mem", "Resident memory of the server, bytes.", varz(func(v *server.Varz) float64 { return float64(v.Mem) })),
			g("gnatsd_varz_cpu", "CPU use of the server, percent of one core.", varz(func(v *server.Varz) float64 { return v.CPU })),
			g("gnatsd_varz_subscriptions", "Subscriptions.", varz(func(v *server.Varz) float64 { return float64(v.Subscriptions) })),
			g("gnatsd_varz_routes", "Routes connected to other servers of the cluster.", varz(func(v *server.Varz) float64 { return float64(v.Routes) })),
			g("gnatsd_varz_remotes", "Route endpoints configured.", varz(func(v *server.Varz) float64 { return float64(v.Remotes) })),
			g("gnatsd_varz_leafnodes", "Leaf node connections.", varz(func(v *server.Varz) float64 { return float64(v.Leafs) })),
			g("gnatsd_varz_in_msgs", "Messages received since start.", varz(func(v *server.Varz) float64 { return float64(v.InMsgs) })),
			g("gnatsd_varz_out_msgs", "Messages sent since start.", varz(func(v *server.Varz) float64 { return float64(v.OutMsgs) })),
			g("gnatsd_varz_in_bytes", "Bytes received since start.", varz(func(v *server.Varz) float64 { return float64(v.InBytes) })),
			g("gnatsd_varz_out_bytes", "Bytes sent since start.", varz(func(v *server.Varz) float64 { return float64(v.OutBytes) })),
			g("gnatsd_varz_jetstream_stats_memory", "JetStream memory storage used, bytes.", jsStats(func(s *server.JetStreamStats, _ *server.JetStreamConfig) float64 { return float64(s.Memory) })),
			g("gnatsd_varz_jetstream_stats_storage", "JetStream file storage used, bytes.", jsStats(func(s *server.JetStreamStats, _ *server.JetStreamConfig) float64 { return float64(s.Store) })),
			g("gnatsd_varz_jetstream_stats_api_total", "JetStream API requests since start.", jsStats(func(s *server.JetStreamStats, _ *server.JetStreamConfig) float64 { return float64(s.API.Total) })),
			g("gnatsd_varz_jetstream_stats_api_errors", "JetStream API requests answered with an error since start.", jsStats(func(s *server.JetStreamStats, _ *server.JetStreamConfig) float64 { return float64(s.API.Errors) })),
			g("gnatsd_varz_jetstream_config_max_memory", "JetStream memory storage limit, bytes.", jsStats(func(_ *server.JetStreamStats, c *server.JetStreamConfig) float64 { return float64(c.MaxMemory) })),
			g("gnatsd_varz_jetstream_config_max_storage", "JetStream file storage limit, bytes.", jsStats(func(_ *server.JetStreamStats, c *server.JetStreamConfig) float64 { return float64(c.MaxStore) })),
			g("gnatsd_connz_num_connections", "Client connections listed.", connz(func(z *server.Connz) float64 { return float64(len(z.Conns)) })),
			g("gnatsd_connz_total", "Client connections.", connz(func(z *server.Connz) float64 { return float64(z.Total) })),
			g("gnatsd_connz_pending_bytes", "Bytes waiting to be sent to the clients listed, summed.", connz(func(z *server.Connz) float64 {
				sum := 0
				for _, ci := range z.Conns {
					sum += ci.Pending
				}
				return float64(sum)
			})),
			g("gnatsd_routez_num_routes", "Routes to other servers of the cluster.", func(r Reading) (float64, bool) {
				if r.Routez == nil {
					return 0, false
				}
				return float64(r.Routez.NumRoutes), true
			}),
			g("codeexec_nats_meta_cluster_size", "Servers of the JetStream meta group, as this server knows it.", meta(func(m *server.MetaClusterInfo) float64 { return float64(m.Size) })),
			g("codeexec_nats_meta_leader_known", "Whether this server knows a JetStream meta leader (1) or not (0: no quorum).", meta(func(m *server.MetaClusterInfo) float64 { return b(m.Leader != "") })),
			g("codeexec_nats_meta_peers_offline", "Peers of the JetStream meta group this server sees offline.", meta(func(m *server.MetaClusterInfo) float64 {
				n := 0
				for _, p := range m.Replicas {
					if p.Offline {
						n++
					}
				}
				return float64(n)
			})),
		},
		js: []field{
			j("jetstream_server_jetstream_disabled", "JetStream disabled (1) or not (0).", jsz(func(i *server.JSInfo) float64 { return b(i.Disabled) })),
			j("jetstream_server_total_streams", "Streams in JetStream.", jsz(func(i *server.JSInfo) float64 { return float64(i.Streams) })),
			j("jetstream_server_total_consumers", "Consumers in JetStream.", jsz(func(i *server.JSInfo) float64 { return float64(i.Consumers) })),
			j("jetstream_server_total_messages", "Messages stored in JetStream.", jsz(func(i *server.JSInfo) float64 { return float64(i.Messages) })),
			j("jetstream_server_total_message_bytes", "Bytes stored in JetStream.", jsz(func(i *server.JSInfo) float64 { return float64(i.Bytes) })),
			j("jetstream_server_max_memory", "JetStream memory storage limit, bytes.", jsz(func(i *server.JSInfo) float64 { return float64(i.Config.MaxMemory) })),
			j("jetstream_server_max_storage", "JetStream file storage limit, bytes.", jsz(func(i *server.JSInfo) float64 { return float64(i.Config.MaxStore) })),
		},
		streams: map[string]func(server.StreamDetail) float64{
			"jetstream_stream_total_messages": func(s server.StreamDetail) float64 { return float64(s.State.Msgs) },
			"jetstream_stream_total_bytes":    func(s server.StreamDetail) float64 { return float64(s.State.Bytes) },
			"jetstream_stream_consumer_count": func(s server.StreamDetail) float64 { return float64(s.State.Consumers) },
			"jetstream_stream_limit_bytes": func(s server.StreamDetail) float64 {
				if s.Config == nil {
					return -1
				}
				return float64(s.Config.MaxBytes)
			},
		},
		sdescs: map[string]*prometheus.Desc{},
	}
	helps := map[string]string{
		"jetstream_stream_total_messages": "Messages stored in the stream.",
		"jetstream_stream_total_bytes":    "Bytes stored in the stream.",
		"jetstream_stream_consumer_count": "Consumers of the stream.",
		"jetstream_stream_limit_bytes":    "The stream's byte limit (-1: none).",
	}
	for name := range c.streams {
		c.sdescs[name] = prometheus.NewDesc(name, helps[name], []string{"server_id", "account", "stream_name"}, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	for _, f := range append(append([]field{}, c.server...), c.js...) {
		ch <- f.desc
	}
	for _, d := range c.sdescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector from the last readings only.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	readings := make(map[string]Reading, len(c.readings))
	for k, v := range c.readings {
		readings[k] = v
	}
	c.mu.Unlock()
	for _, src := range c.sources {
		id := src.Name()
		r, ok := readings[id]
		up := 0.0
		if ok {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, id)
		if !ok {
			continue
		}
		for _, f := range c.server {
			if v, ok := f.value(r); ok {
				ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, v, id)
			}
		}
		if r.Jsz == nil {
			continue
		}
		name, cluster := id, ""
		if r.Varz != nil {
			name, cluster = r.Varz.Name, r.Varz.Cluster.Name
		}
		for _, f := range c.js {
			if v, ok := f.value(r); ok {
				ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, v, id, name, cluster)
			}
		}
		for _, acc := range r.Jsz.AccountDetails {
			for _, s := range acc.Streams {
				for metric, value := range c.streams {
					ch <- prometheus.MustNewConstMetric(c.sdescs[metric], prometheus.GaugeValue, value(s), id, acc.Name, s.Name)
				}
			}
		}
	}
}

// Run reads the sources every period until ctx ends.
func (c *Collector) Run(ctx context.Context) { metrics.Poll(ctx, c.every, c.Poll) }

// Poll reads every source once, one after the other.
func (c *Collector) Poll(ctx context.Context) {
	for _, src := range c.sources {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		r, err := src.Read(rctx)
		cancel()
		name := src.Name()
		c.mu.Lock()
		if err != nil {
			delete(c.readings, name)
		} else {
			c.readings[name] = r
		}
		c.mu.Unlock()
		switch {
		case err != nil && !c.failing[name] && ctx.Err() == nil:
			c.log.Warn("read nats-server monitoring; its series are left out until it answers", "server", name, "err", err)
			c.failing[name] = true
		case err == nil && c.failing[name]:
			c.log.Info("nats-server monitoring answers again", "server", name)
			c.failing[name] = false
		}
	}
}
