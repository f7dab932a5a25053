// Package opsfiles reads the operator files shipped in deploy/ (the Prometheus alert rules
// and the Grafana dashboard) with Prometheus's own parsers, for the tests that hold them
// to what the mesh exports. Only tests import it: the binaries never link Prometheus.
package opsfiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var promql = parser.NewParser(parser.Options{})

// Rules parses and validates a rule file as Prometheus does when it loads it.
func Rules(path string) (*rulefmt.RuleGroups, error) {
	groups, errs := rulefmt.ParseFile(path, false, model.LegacyValidation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, fmt.Errorf("rules %s: %w", path, errors.Join(errs...))
	}
	return groups, nil
}

// RuleExprs are the expressions of every rule of a rule file, by rule name.
func RuleExprs(path string) (map[string]string, error) {
	groups, err := Rules(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out[r.Alert+r.Record] = r.Expr
		}
	}
	return out, nil
}

// dashboard is the part of a Grafana dashboard that holds queries.
type dashboard struct {
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Panels  []panel  `json:"panels"` // a collapsed row's
	Targets []target `json:"targets"`
}

type target struct {
	Expr string `json:"expr"`
}

// DashboardExprs are the PromQL expressions of every panel of a Grafana dashboard, by
// panel title (with the query's index when a panel has several), and the titles of its
// rows in order.
func DashboardExprs(path string) (exprs map[string]string, rows []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read dashboard: %w", err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, nil, fmt.Errorf("decode dashboard %s: %w", path, err)
	}
	exprs = map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				rows = append(rows, p.Title)
			}
			for i, t := range p.Targets {
				exprs[fmt.Sprintf("%s #%d", p.Title, i+1)] = t.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return exprs, rows, nil
}

// MetricNames are the metric names an expression selects, sorted.
func MetricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" && !slices.Contains(names, vs.Name) {
			names = append(names, vs.Name)
		}
		return nil
	})
	slices.Sort(names)
	return names, nil
}
