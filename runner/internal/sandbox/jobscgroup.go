package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/docker/docker/client"
)

// The jobs' cgroup: every container of the runner lives under one parent cgroup of its own,
// JobsCgroup, whose CPU weight is JobsCPUWeight times a host process's. On a busy host the
// programs then come before the platform's own work: the daemon creating and removing
// containers for the warm pool, a neighbour's build, the runner itself. Docker's default
// parent (/docker) weighs as much as one process, so that on a host with four busy processes
// every container together shares a fifth of the CPU, and a python hello world that takes
// 25 ms alone takes 60 to 140. Each container keeps its own CPU limit (its cpuMillis): the
// weight decides who goes first within the host, never how much one job may take. The
// platform is not starved either: weights are shares, so the runner, NATS and dockerd keep
// at least 1/(1+weight) of the CPU they ask for while jobs are busy.

// DefaultCgroupRoot is where the host's cgroups are mounted.
const DefaultCgroupRoot = "/sys/fs/cgroup"

// JobsCgroup is the parent cgroup of the runner's containers (cgroupfs driver).
const JobsCgroup = "codeexec-jobs"

// PrepareJobsCgroup creates the jobs' cgroup under root (the host's /sys/fs/cgroup as the
// runner sees it) with weight times a host process's CPU weight, and returns the parent to
// create containers under. It returns "" (Docker's default parent) when weight is 0, when
// the daemon's cgroup driver is systemd (its slices are systemd's to make), or when the
// runner cannot write the host's cgroups (it runs in a container without them, or not as
// root); the reason is logged, and jobs run as before, without the priority.
func PrepareJobsCgroup(ctx context.Context, docker *client.Client, root string, weight int, log *slog.Logger) (string, error) {
	if weight < 0 {
		return "", fmt.Errorf("CODEEXEC_JOBS_CPU_WEIGHT %d: want 0 (off) or more", weight)
	}
	if weight == 0 || root == "" {
		return "", nil
	}
	info, err := docker.Info(ctx)
	if err != nil {
		return "", infra("docker info", err)
	}
	if info.CgroupDriver != "cgroupfs" {
		log.Info("containers stay in the Docker daemon's default cgroup: the jobs' CPU weight needs the cgroupfs driver",
			"cgroup_driver", info.CgroupDriver)
		return "", nil
	}
	// cgroup v1: the weight is the cpu controller's shares (a process weighs 1024); v2: the
	// unified hierarchy's cpu.weight (a process weighs 100).
	dir, file, value := filepath.Join(root, "cpu", JobsCgroup), "cpu.shares", weight*1024
	if info.CgroupVersion == "2" {
		dir, file, value = filepath.Join(root, JobsCgroup), "cpu.weight", min(weight*100, 10000)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("containers stay in the Docker daemon's default cgroup: cannot make the jobs' cgroup", "dir", dir, "err", err)
		return "", nil
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.Itoa(value)), 0); err != nil {
		log.Warn("containers stay in the Docker daemon's default cgroup: cannot set the jobs' CPU weight", "dir", dir, "err", err)
		return "", nil
	}
	log.Info("containers run in the jobs' cgroup", "cgroup", "/"+JobsCgroup, file, value)
	return "/" + JobsCgroup, nil
}

// cgroupLeaves are where container id's cgroup may be, relative to a controller's
// hierarchy (v1) or the unified one (v2): under the jobs' cgroup, Docker's cgroupfs
// default, or its systemd scope.
func (s *Sandbox) cgroupLeaves(id string) []string {
	if s.oci != nil {
		return []string{s.ociCgroup(id)}
	}
	leaves := make([]string, 0, 3)
	if s.cgroupParent != "" {
		leaves = append(leaves, filepath.Join(s.cgroupParent, id))
	}
	return append(leaves, filepath.Join("docker", id), filepath.Join("system.slice", "docker-"+id+".scope"))
}
