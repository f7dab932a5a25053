package sandbox

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// RemoveLeftovers removes containers a runner left behind: every container of this runner
// id made by an earlier life (even in another PID namespace or on a renamed host), and every
// managed container made on this host by a process that is no longer alive (a runner that
// crashed). Containers of other live runners on the same host are left alone, even one
// that (misconfigured) shares this id, and so are this Sandbox's own: it is safe to call
// while jobs run. A runner killed while the daemon was creating a container for it leaves
// that container to appear after its next life has started, so the runner calls this on
// start, from time to time and on exit. It returns how many it removed.
func (s *Sandbox) RemoveLeftovers(ctx context.Context) (int, error) {
	return s.removeWhere(ctx, func(labels map[string]string) bool {
		if labels[LabelLife] == s.life {
			return false
		}
		sameHost := labels[LabelHost] == s.host
		otherLive := sameHost && labels[LabelPID] != strconv.Itoa(s.pid) && processAlive(labels[LabelPID])
		mine := labels[LabelRunner] == s.runnerID
		orphan := sameHost && !processAlive(labels[LabelPID])
		return mine && !otherLive || orphan
	})
}

// RemoveOwn removes every container this Sandbox made that is still there: none should be,
// once the runner has drained, so it is the last sweep on exit. It returns how many it removed.
func (s *Sandbox) RemoveOwn(ctx context.Context) (int, error) {
	return s.removeWhere(ctx, func(labels map[string]string) bool { return labels[LabelLife] == s.life })
}

// removeWhere removes the managed containers whose labels match.
func (s *Sandbox) removeWhere(ctx context.Context, match func(labels map[string]string) bool) (int, error) {
	all, err := s.managed(ctx, LabelManaged+"=true")
	if err != nil {
		return 0, err
	}
	n := 0
	for id, labels := range all {
		if match(labels) {
			s.removeID(ctx, id)
			n++
		}
	}
	return n, nil
}

// List returns the ids of this runner's containers.
func (s *Sandbox) List(ctx context.Context) ([]string, error) {
	all, err := s.managed(ctx, LabelRunner+"="+s.runnerID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	return ids, nil
}

// managed returns the labels of the host's containers, by id, that carry label ("k=v"):
// the bundles' under the direct engine, Docker's containers' otherwise.
func (s *Sandbox) managed(ctx context.Context, label string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if s.oci != nil {
		all, err := s.oci.bundleLabels()
		if err != nil {
			return nil, infra("list containers", err)
		}
		k, v, _ := strings.Cut(label, "=")
		for id, labels := range all {
			if labels[k] == v {
				out[id] = labels
			}
		}
		return out, nil
	}
	list, err := s.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, infra("list containers", err)
	}
	for _, c := range list {
		out[c.ID] = c.Labels
	}
	return out, nil
}

func processAlive(pidLabel string) bool {
	pid, err := strconv.Atoi(pidLabel)
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
