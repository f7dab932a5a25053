package sandbox

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// RemoveLeftovers removes containers a runner left behind: every container of this runner
// id (its earlier life, even in another PID namespace or on a renamed host), and every
// managed container made on this host by a process that is no longer alive (a runner that
// crashed). Containers of other live runners on the same host are left alone, even one
// that (misconfigured) shares this id. It returns how many it removed.
func (s *Sandbox) RemoveLeftovers(ctx context.Context) (int, error) {
	list, err := s.docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true")),
	})
	if err != nil {
		return 0, infra("list leftover containers", err)
	}
	n := 0
	for _, c := range list {
		sameHost := c.Labels[LabelHost] == s.host
		otherLive := sameHost && c.Labels[LabelPID] != strconv.Itoa(s.pid) && processAlive(c.Labels[LabelPID])
		mine := c.Labels[LabelRunner] == s.runnerID
		orphan := sameHost && !processAlive(c.Labels[LabelPID])
		if mine && !otherLive || orphan {
			s.removeID(ctx, c.ID)
			n++
		}
	}
	return n, nil
}

// List returns the ids of this runner's containers.
func (s *Sandbox) List(ctx context.Context) ([]string, error) {
	list, err := s.docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelRunner+"="+s.runnerID)),
	})
	if err != nil {
		return nil, infra("list containers", err)
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return ids, nil
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
