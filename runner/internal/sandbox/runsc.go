package sandbox

import (
	"context"
	"os"
	"path/filepath"

	"github.com/docker/docker/api/types/container"

	"github.com/codeexec/codeexec/shared/messages"
)

// Under gVisor (runsc) the program runs on gVisor's own kernel, the Sentry, a user-space
// process of the container; the host kernel sees the Sentry, its file proxy (the gofer) and
// the stub processes of the ptrace platform, never the program. Five things differ, each
// found with Debian 12's runsc (20221219) on this host:
//
//   - It has no `update`: a running container's limits cannot change. A job whose limits
//     differ from a warm container's gets a fresh container made with them
//     (CanUpdateLimits, pool.Take).
//   - The host cgroup's pids limit counts the Sentry's threads and the stubs (38 host tasks
//     for an idle `sleep`, 377 for 63 forked sleepers), so a job's pids limit there stopped
//     the launcher's first pipeline (status 2: the shell could not fork). gVisor's kernel
//     enforces RLIMIT_NPROC per uid, threads included, and the program's uid is its own:
//     the job's pids limit is the program's RLIMIT_NPROC, and the host's pids limit only
//     bounds the Sentry (runscHostPids).
//   - At the memory limit, the host's OOM killer kills the Sentry (or a stub), which takes
//     the whole sandbox with it and the cgroup with its evidence. So the container is made
//     with the host cgroup's OOM killer disabled (cgroup v1): at its limit the sandbox
//     stops, the kernel notifies Docker (its "oom" event), and the runner reads the
//     cgroup's peak and CPU time before it ends the container (endStopped). Where the
//     host has cgroup v2 (no such switch), the sandbox dies at its limit: the oom event
//     still makes it memory_limit_exceeded, without a memory figure. (Linux 6.18 logs
//     once that cgroup v1's oom_control is deprecated; it still works.)
//   - gVisor mounts no cgroup file system in the container: the launcher reports -1 for
//     the OOM count, CPU time and memory peak, and the runner reads them on the host
//     (cgroupUsage): the Sentry's CPU time and memory, which include gVisor's own work for
//     the program.
//   - One large write to the container's stdout (a host pipe) loses what does not fit
//     the pipe's free room (1 MiB arrives as 64 KiB): the launcher relays the program's
//     output through pipes of gVisor's own (relayOutput). A compiler's output is not
//     relayed; compilers write in small pieces.
//
// What holds as under runc, and the tests check: the program runs under its own uid
// (setpriv), with no capability and no-new-privileges, and cannot read, write or signal
// the launcher. The oom_score_adj the launcher writes is accepted by gVisor and has no
// effect there (no OOM killer runs inside gVisor's kernel): the host's OOM killer is
// disabled for the container instead, as above. gVisor's procfs lets any uid read
// /proc/<pid>/environ and the names of another's fds (not the files): the launcher's
// environment is the one the program inherits.

// CanUpdateLimits reports whether a running container's memory, CPU and pids limits can be
// changed (Docker's update). Where they cannot (runsc), a job with other limits than a
// warm container's must run in a container created with its own.
func (s *Sandbox) CanUpdateLimits() bool { return s.runtime != RuntimeRunsc && s.oci == nil }

// relaysOutput reports whether the launcher passes the program's output on through pipes of
// its own (relayOutput): under runsc, whose host-pipe writes lose data.
func (s *Sandbox) relaysOutput() bool { return s.runtime == RuntimeRunsc }

// SameResources reports whether a and b set the same container limits: memory, CPU, pids.
func SameResources(a, b messages.Limits) bool {
	return a.MemoryBytes == b.MemoryBytes && a.CPUMillis == b.CPUMillis && a.Pids == b.Pids
}

// stopsAtOOM reports whether the containers are made with the host's OOM killer disabled:
// a container at its memory limit stops until the runner ends it.
func (s *Sandbox) stopsAtOOM() bool { return s.runtime == RuntimeRunsc }

// runscHostPids bounds the host tasks of a gVisor sandbox whose program may have pids
// tasks: the Sentry's and the gofer's threads (about 40 at rest) and up to about six per
// program task (a stub thread and the Sentry's thread that runs it, more while they fork),
// with room to spare, so that the program's RLIMIT_NPROC always strikes first.
func runscHostPids(pids int64) int64 { return 256 + 8*pids }

// applyRuntime adapts a container's resources and ulimits to the runtime (see above).
func (s *Sandbox) applyRuntime(hc *container.HostConfig, lim messages.Limits) {
	if s.runtime != RuntimeRunsc {
		return
	}
	host := runscHostPids(lim.Pids)
	hc.Resources.PidsLimit = &host
	disable := true
	hc.Resources.OomKillDisable = &disable
	// Measured: under RLIMIT_NPROC 64 a program started through setpriv forked 64 children,
	// one started as the uid by Docker 63: gVisor does not count the task that became the
	// uid by setuid. So the limit is one less, and the program's tasks, itself included,
	// are at most lim.Pids, as under the pids cgroup.
	nproc := max(lim.Pids-1, 1)
	hc.Resources.Ulimits = append(hc.Resources.Ulimits, &container.Ulimit{Name: "nproc", Soft: nproc, Hard: nproc})
}

// releaseOOM turns the host's OOM killer back on for container id before it is killed or
// removed, where the containers stop at their memory limit (stopsAtOOM): one that stopped
// there (even after its job, its leftovers' memory) then ends at once, where a kill through
// the runtime waits for the stopped Sentry (10 s, then dockerd kills it directly; a removal
// ran into its 30 s timeout after a fork bomb). Best effort: it needs the host's cgroup v1
// memory hierarchy.
func (s *Sandbox) releaseOOM(id string) {
	if !s.stopsAtOOM() || s.cgroupRoot == "" {
		return
	}
	for _, leaf := range s.cgroupLeaves(id) {
		if os.WriteFile(filepath.Join(s.cgroupRoot, "memory", leaf, "memory.oom_control"), []byte("0"), 0) == nil {
			return
		}
	}
}

// oomStop returns a channel closed when c stops at its memory limit, or nil (never) where
// the containers do not stop there (stopsAtOOM).
func (s *Sandbox) oomStop(c *Container) <-chan struct{} {
	if !s.stopsAtOOM() {
		return nil
	}
	return s.oom.notify(c.ID)
}

// endStopped ends a container that stopped at its memory limit: it reads the usage its
// cgroup kept, then lets the host's OOM killer end it, and kills it should that fail.
func (s *Sandbox) endStopped(ctx context.Context, c *Container) (usage, bool) {
	u, ok := s.usage(ctx, c.ID)
	c.streams.close()
	s.kill(context.WithoutCancel(ctx), c.ID) // releaseOOM first
	return u, ok
}
