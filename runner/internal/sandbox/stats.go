package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// usage is what the container's cgroup measured.
type usage struct {
	cpu time.Duration
	// peakMemory is the cgroup's peak (cgroup v1 max_usage_in_bytes, v2 memory.peak); where
	// no peak is kept (Docker's stats on cgroup v2), the current usage.
	peakMemory int64
}

// usage measures a running container. It reads the container's cgroup files when the
// runner shares the Docker host's /sys/fs/cgroup (microseconds), else asks Docker for
// one-shot stats — which on dockerd 20.10 waits for the daemon's next one-second stats
// tick, 0.5 s on average. ok is false when neither could tell (the container is gone): the
// figures are then reported as zero, never guessed.
func (s *Sandbox) usage(ctx context.Context, id string) (u usage, ok bool) {
	if u, err := cgroupUsage(s.cgroupRoot, s.cgroupLeaves(id)); err == nil {
		return u, true
	}
	if s.oci != nil {
		return u, false // nothing else knows
	}
	return s.dockerUsage(ctx, id)
}

func (s *Sandbox) dockerUsage(ctx context.Context, id string) (u usage, ok bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	resp, err := s.docker.ContainerStatsOneShot(ctx, id)
	if err != nil {
		s.log.Warn("container stats", "container_id", short(id), "err", err)
		return u, false
	}
	defer resp.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		s.log.Warn("decode container stats", "container_id", short(id), "err", err)
		return u, false
	}
	u.cpu = time.Duration(st.CPUStats.CPUUsage.TotalUsage)
	u.peakMemory = int64(st.MemoryStats.MaxUsage)
	if u.peakMemory == 0 {
		u.peakMemory = int64(st.MemoryStats.Usage)
	}
	return u, u.cpu > 0 || u.peakMemory > 0
}

var errNoCgroup = errors.New("container cgroup not found")

// cgroupUsage reads a container's cgroup under root (normally /sys/fs/cgroup), the first of
// its possible leaves (Sandbox.cgroupLeaves) that exists, on cgroup v1 and v2.
func cgroupUsage(root string, leaves []string) (usage, error) {
	if root == "" {
		return usage{}, errNoCgroup
	}
	for _, leaf := range leaves {
		// cgroup v1: one hierarchy per controller.
		mem, err := readInt(filepath.Join(root, "memory", leaf, "memory.max_usage_in_bytes"))
		if err == nil {
			cpu, err := readInt(filepath.Join(root, "cpuacct", leaf, "cpuacct.usage"))
			if err != nil {
				return usage{}, err
			}
			return usage{cpu: time.Duration(cpu), peakMemory: mem}, nil
		}
		// cgroup v2: one unified hierarchy.
		dir := filepath.Join(root, leaf)
		if mem, err = readInt(filepath.Join(dir, "memory.peak")); err == nil {
			stat, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
			if err != nil {
				return usage{}, err
			}
			for _, line := range strings.Split(string(stat), "\n") {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					us, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						return usage{}, err
					}
					return usage{cpu: time.Duration(us) * time.Microsecond, peakMemory: mem}, nil
				}
			}
		}
	}
	return usage{}, errNoCgroup
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// resetPeak restarts the container's memory peak, so that the run step's peak does not
// include the compiler's. Best effort: it needs write access to the host's cgroup files
// (cgroup v1 max_usage_in_bytes; v2 memory.peak from Linux 6.12). It reports whether the
// peak was reset.
func resetPeak(root string, leaves []string) bool {
	if root == "" {
		return false
	}
	for _, leaf := range leaves {
		for _, f := range []string{filepath.Join(root, "memory", leaf, "memory.max_usage_in_bytes"), filepath.Join(root, leaf, "memory.peak")} {
			if err := os.WriteFile(f, []byte("0"), 0); err == nil {
				return true
			}
		}
	}
	return false
}
