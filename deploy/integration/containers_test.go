package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// A runner makes its containers through Docker or, by default, with the OCI runtime itself
// (the direct engine, runner/internal/sandbox/oci.go): these helpers see both.

// Where a direct-engine runner keeps its containers' bundles (sandbox.DefaultStateDir), and
// the jobs' cgroup they live under (sandbox.JobsCgroup).
const (
	directBundles = "/run/codeexec/bundles"
	jobsCgroup    = "/sys/fs/cgroup/pids/codeexec-jobs"
)

// runnerContainer is a container of a runner, whichever engine made it.
type runnerContainer struct {
	ID     string
	Labels map[string]string
	State  string // "running" or not
	direct bool
}

// containersOf lists the containers labelled with runner id (running or not).
func containersOf(t *testing.T, d *client.Client, id string) []runnerContainer {
	t.Helper()
	list, err := d.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", "org.codeexec.runner="+id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []runnerContainer
	for _, c := range list {
		out = append(out, runnerContainer{ID: c.ID, Labels: c.Labels, State: c.State})
	}
	bundles, err := os.ReadDir(directBundles)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, b := range bundles {
		labels := map[string]string{}
		raw, err := os.ReadFile(filepath.Join(directBundles, b.Name(), "labels.json"))
		if err != nil || json.Unmarshal(raw, &labels) != nil || labels["org.codeexec.runner"] != id {
			continue
		}
		state := "exited"
		if len(directProcs(b.Name())) > 0 {
			state = "running"
		}
		out = append(out, runnerContainer{ID: b.Name(), Labels: labels, State: state, direct: true})
	}
	return out
}

// directProcs are the pids in a direct-engine container's cgroup.
func directProcs(id string) []string {
	raw, err := os.ReadFile(filepath.Join(jobsCgroup, id, "cgroup.procs"))
	if err != nil {
		return nil
	}
	return strings.Fields(string(raw))
}

// containerRuns reports whether container c has a process whose command line holds text.
func containerRuns(t *testing.T, d *client.Client, c runnerContainer, text string) bool {
	t.Helper()
	if c.direct {
		for _, pid := range directProcs(c.ID) {
			cmdline, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
			if err == nil && strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), text) {
				return true
			}
		}
		return false
	}
	top, err := d.ContainerTop(context.Background(), c.ID, []string{"-eo", "pid,args"})
	if err != nil {
		return false // it ended meanwhile
	}
	for _, p := range top.Processes {
		if strings.Contains(strings.Join(p, " "), text) {
			return true
		}
	}
	return false
}
