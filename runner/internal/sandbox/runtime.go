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
// runsc (gVisor) is not supported yet: with Debian 12's runsc (20221219) the sandbox's
// tests fail. It has no `update` (the per-job limits), the launcher stops with status 2
// before the program (its privilege drop and OOM-score write), and the cgroup evidence
// differs. ChooseRuntime refuses it rather than run jobs that would fail.
const (
	RuntimeRunc  = "runc"
	RuntimeCrun  = "crun"
	RuntimeRunsc = "runsc"
)

// ChooseRuntime returns the runtime the containers are created with, given the operator's
// choice (CODEEXEC_RUNTIME; empty: crun where the daemon has it, else runc). crun missing
// from the daemon falls back to runc, which has the same isolation; anything else is an
// error.
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
	case want == RuntimeRunsc:
		return "", fmt.Errorf("CODEEXEC_RUNTIME %q: not supported yet (see runner/internal/sandbox/runtime.go); use crun or runc", want)
	case want == RuntimeRunc && slices.Contains(have, want):
		return want, nil
	case want == RuntimeRunc:
		return "", fmt.Errorf("CODEEXEC_RUNTIME runc: the Docker daemon has no such runtime (it has %s)", strings.Join(have, ", "))
	default:
		return "", fmt.Errorf("CODEEXEC_RUNTIME %q: want crun or runc", want)
	}
}
