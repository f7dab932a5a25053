package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/docker/docker/client"
)

// Runtimes: the OCI runtime that starts a job's container. crun does what runc does for
// less CPU per container (a small C program instead of a Go one) and is the default where
// the daemon has it.
//
// runsc (gVisor) puts a user-space kernel between the program and the host: the program's
// system calls are served by gVisor's Sentry, a Go process of the container's, and only a
// small set of them reaches the host kernel. It is an operator's choice, never a fallback.
// What differs under it (runsc.go): it cannot update a running container's limits, the
// host's pids limit counts the Sentry's own threads, a memory-limited sandbox is stopped,
// not killed, at its limit, and the cgroup evidence is the host's.
const (
	RuntimeRunc  = "runc"
	RuntimeCrun  = "crun"
	RuntimeRunsc = "runsc"
)

// ChooseRuntime returns the runtime the containers are created with, given the operator's
// choice (CODEEXEC_RUNTIME; empty: crun where the daemon has it, else runc). crun missing
// from the daemon falls back to runc, which has the same isolation; runsc missing is an
// error (nothing else isolates as much), and so is anything else.
func ChooseRuntime(ctx context.Context, docker *client.Client, want string, log *slog.Logger) (string, error) {
	info, err := docker.Info(ctx)
	if err != nil {
		return "", infra("docker info", err)
	}
	have := make([]string, 0, len(info.Runtimes))
	for name := range info.Runtimes {
		have = append(have, name)
	}
	slices.Sort(have)
	switch {
	case want == "" || want == RuntimeCrun:
		if slices.Contains(have, RuntimeCrun) {
			return RuntimeCrun, nil
		}
		if want == RuntimeCrun && log != nil {
			log.Warn("the Docker daemon has no crun runtime; containers run with runc", "runtimes", strings.Join(have, ","))
		}
		return RuntimeRunc, nil
	case (want == RuntimeRunc || want == RuntimeRunsc) && slices.Contains(have, want):
		return want, nil
	case want == RuntimeRunsc:
		return "", fmt.Errorf("CODEEXEC_RUNTIME runsc: the Docker daemon has no such runtime (it has %s); "+
			"install gVisor's runsc and register it with dockerd with its --network=none argument (deploy/prepare-host does both), "+
			"or choose crun or runc", strings.Join(have, ", "))
	case want == RuntimeRunc:
		return "", fmt.Errorf("CODEEXEC_RUNTIME runc: the Docker daemon has no such runtime (it has %s)", strings.Join(have, ", "))
	default:
		return "", fmt.Errorf("CODEEXEC_RUNTIME %q: want crun, runc or runsc", want)
	}
}
