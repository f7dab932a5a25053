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
// id, and every managed container made on this host by a process that is no longer alive
// (a runner that crashed, or this process's earlier life). Containers of live runners on
// the same host are left alone. It returns how many it removed.
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
		mine := c.Labels[LabelRunner] == s.runnerID
		orphan := c.Labels[LabelHost] == s.host && !processAlive(c.Labels[LabelPID])
		if mine || orphan {
			s.Remove(ctx, c.ID)
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
