package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// ChooseEngine returns how the containers of runtime are made, given the operator's choice
// (CODEEXEC_ENGINE; empty: direct where it can be). The direct engine (oci.go) needs the
// runtime's binary on the runner's PATH and a runner that is root on the host (and not
// its PID namespace's init); it runs
// crun and runc, not runsc, which stays with Docker. Asked for and impossible, it is an
// error; chosen by default and impossible, Docker makes the containers.
func ChooseEngine(want, runtime string, log *slog.Logger) (string, error) {
	switch want {
	case EngineDocker:
		return EngineDocker, nil
	case "", EngineDirect:
	default:
		return "", fmt.Errorf("CODEEXEC_ENGINE %q: want %s or %s", want, EngineDirect, EngineDocker)
	}
	why := ""
	if _, err := runtimeBinary(runtime); err != nil {
		why = err.Error()
	} else if os.Geteuid() != 0 {
		why = "the runner is not root"
	} else if os.Getpid() == 1 {
		// The runtime detaches each launcher, which its PID namespace's init then inherits:
		// a runner that is that init would never reap them.
		why = "the runner is its PID namespace's init"
	}
	switch {
	case why == "":
		return EngineDirect, nil
	case want == EngineDirect:
		return "", fmt.Errorf("CODEEXEC_ENGINE direct: %s", why)
	default:
		if log != nil {
			log.Info("containers are made through the Docker daemon", "why", why)
		}
		return EngineDocker, nil
	}
}

// runtimeBinary finds the binary of an OCI runtime the direct engine can drive.
func runtimeBinary(runtime string) (string, error) {
	if runtime != RuntimeCrun && runtime != RuntimeRunc {
		return "", fmt.Errorf("the direct engine runs %s or %s, not %q", RuntimeCrun, RuntimeRunc, runtime)
	}
	bin, err := exec.LookPath(runtime)
	if err != nil {
		return "", fmt.Errorf("runtime %s: %w", runtime, err)
	}
	return bin, nil
}

// oomSeen reports whether the kernel's OOM killer struck container id: under the direct
// engine, from its cgroup's own count (kept until the container is deleted); under Docker,
// from its oom events, waiting at most d for one.
func (s *Sandbox) oomSeen(ctx context.Context, id string, d time.Duration) bool {
	if s.oci != nil {
		return oomKills(s.cgroupRoot, s.cgroupLeaves(id)) > 0
	}
	return s.oom.wait(ctx, id, d)
}
