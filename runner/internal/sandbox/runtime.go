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
// the daemon has it; runsc (gVisor) puts a user-space kernel between the program and the
// host, for operators who want more isolation than namespaces and seccomp, at a cost.
const (
	RuntimeRunc  = "runc"
	RuntimeCrun  = "crun"
	RuntimeRunsc = "runsc"
)

// ChooseRuntime returns the runtime the containers are created with, given the operator's
// choice (CODEEXEC_RUNTIME; empty: crun where the daemon has it, else runc). crun missing
// from the daemon falls back to runc, which has the same isolation; any other runtime the
// daemon lacks (runsc, say) is an error: an operator who asked for a user-space kernel does
// not get less.
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
	case slices.Contains(have, want):
		return want, nil
	default:
		return "", fmt.Errorf("CODEEXEC_RUNTIME %q: the Docker daemon has no such runtime (it has %s); register it (dockerd --add-runtime %s=/usr/bin/%s)",
			want, strings.Join(have, ", "), want, want)
	}
}
