package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Kill kills the processes of container id, one of this sandbox's; the container stays
// until it is removed (Remove, or a sweep).
func (s *Sandbox) Kill(ctx context.Context, id string) { s.kill(ctx, id) }

// ContainerFacts is what the engine that made a container says of it.
type ContainerFacts struct {
	Runtime      string
	Pid          int // the launcher's, on the host
	CgroupParent string
	MemoryBytes  int64 // the memory limit
}

// Facts asks the engine that made c (Docker, or the runtime itself under the direct
// engine) what c runs with.
func (s *Sandbox) Facts(ctx context.Context, c *Container) (ContainerFacts, error) {
	if s.oci == nil {
		ins, err := s.docker.ContainerInspect(ctx, c.ID)
		if err != nil {
			return ContainerFacts{}, err
		}
		return ContainerFacts{Runtime: ins.HostConfig.Runtime, Pid: ins.State.Pid, CgroupParent: ins.HostConfig.CgroupParent,
			MemoryBytes: ins.HostConfig.Memory}, nil
	}
	st, err := s.oci.state(ctx, c.ID)
	if err != nil {
		return ContainerFacts{}, err
	}
	if st.Status != "running" {
		return ContainerFacts{}, fmt.Errorf("container %s is %s", c.ID, st.Status)
	}
	var spec struct {
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
			Resources   struct {
				Memory struct {
					Limit int64 `json:"limit"`
				} `json:"memory"`
			} `json:"resources"`
		} `json:"linux"`
	}
	cfg, err := os.ReadFile(filepath.Join(c.oci.bundle, "config.json"))
	if err != nil {
		return ContainerFacts{}, err
	}
	if err := json.Unmarshal(cfg, &spec); err != nil {
		return ContainerFacts{}, err
	}
	return ContainerFacts{Runtime: filepath.Base(s.oci.bin), Pid: st.Pid, CgroupParent: filepath.Dir(spec.Linux.CgroupsPath),
		MemoryBytes: spec.Linux.Resources.Memory.Limit}, nil
}
