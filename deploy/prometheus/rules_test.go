// Package prometheus holds no code: its test checks the alert rules and the Grafana
// dashboard shipped beside it with Prometheus's own rule-file and PromQL parsers.
package prometheus

import (
	"slices"
	"strings"
	"testing"

	"github.com/codeexec/codeexec/deploy/internal/opsfiles"
)

// TestAlertRulesLoad parses alerts.yml as Prometheus loads a rule file (rulefmt, PromQL
// included) and checks that it covers what an operator must hear of.
func TestAlertRulesLoad(t *testing.T) {
	groups, err := opsfiles.Rules("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Alert == "" {
				t.Errorf("group %s: a rule that is no alert (%q)", g.Name, r.Record)
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
		}
	}
	for _, want := range []string{
		"CodeExecJobsWaitTooLong",     // queue age over a threshold
		"CodeExecNoLiveRunner",        // no live runner for a language in a region
		"CodeExecBillingLag",          // billing lag
		"CodeExecDeadLetters",         // dead letters
		"CodeExecRunnerContainerLeak", // runner container leaks
		"CodeExecComponentDown",       // a component down
		"CodeExecNATSServerDown",
	} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts %v: want %s among them", alerts, want)
		}
	}
}

// TestDashboardQueriesParse parses every query of the Grafana dashboard as PromQL and
// checks its rows.
func TestDashboardQueriesParse(t *testing.T) {
	exprs, rows, err := opsfiles.DashboardExprs("../grafana/codeexec-mesh.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Traffic", "Queues", "Runners", "Money", "NATS"}; !slices.Equal(rows, want) {
		t.Errorf("rows: got %v, want %v", rows, want)
	}
	if len(exprs) < 20 {
		t.Errorf("got %d queries, want a dashboard", len(exprs))
	}
	for panel, expr := range exprs {
		names, err := opsfiles.MetricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", panel, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", panel, expr)
		}
	}
	// The parser must refuse what is not PromQL, or the check above proves nothing.
	if _, err := opsfiles.MetricNames("sum by (a (rate(x[5m]))"); err == nil || !strings.Contains(err.Error(), "parse") {
		t.Errorf("a broken expression: got %v, want a parse error", err)
	}
}
