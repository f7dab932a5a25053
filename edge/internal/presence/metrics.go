package presence

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codeexec/codeexec/shared/subjects"
)

// servedBy counts the live, not draining runners of one region and language.
type servedBy struct{ region, language string }

// live counts, for every region and language a runner served within the last hour, its
// live runners that are not draining (0 once the last one went).
func (t *Tracker) live() map[servedBy]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	out := map[servedBy]int{}
	for _, s := range t.runners {
		if now.Sub(s.at) > forget {
			continue
		}
		up := !s.hb.Draining && now.Sub(s.at) <= Expiry
		for _, l := range s.hb.Languages {
			if !subjects.Token(s.hb.Region) || !subjects.Token(l) {
				continue // a label value must be a name, nothing a heartbeat could smuggle
			}
			k := servedBy{s.hb.Region, l}
			if up {
				out[k]++
			} else if _, ok := out[k]; !ok {
				out[k] = 0
			}
		}
	}
	return out
}

var runnersLiveDesc = prometheus.NewDesc("codeexec_edge_runners_live",
	"Live, not draining runners by region and language, as this edge hears their heartbeats; 0 for an hour after the last one went.",
	[]string{"region", "language"}, nil)

// Describe implements prometheus.Collector.
func (t *Tracker) Describe(ch chan<- *prometheus.Desc) { ch <- runnersLiveDesc }

// Collect implements prometheus.Collector.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	for k, n := range t.live() {
		ch <- prometheus.MustNewConstMetric(runnersLiveDesc, prometheus.GaugeValue, float64(n), k.region, k.language)
	}
}
