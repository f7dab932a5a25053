package sandbox

import (
	"context"
	"encoding/json"
	"time"

	"github.com/docker/docker/api/types/container"
)

// usage is what the container's cgroup measured.
type usage struct {
	cpu time.Duration
	// peakMemory is the cgroup's peak (cgroup v1 max_usage_in_bytes); on cgroup v2, whose
	// Docker 20.10 stats carry no peak, the current usage.
	peakMemory int64
}

// usage takes one-shot stats of a running container. ok is false when Docker could not
// tell (the container is gone): the figures are then reported as zero, never guessed.
func (s *Sandbox) usage(ctx context.Context, id string) (u usage, ok bool) {
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
	return u, st.Read.After(time.Time{}) && (u.cpu > 0 || u.peakMemory > 0)
}
