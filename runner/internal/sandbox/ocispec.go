package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/codeexec/codeexec/shared/messages"
)

// ociVersion is the runtime specification the configuration follows: the one Debian 12's
// crun (1.8) and runc (1.1) read.
const ociVersion = "1.0.2"

// cpuPeriod is the CFS period of the containers' CPU limit, Docker's.
const cpuPeriod = 100_000

// ociSpec is the OCI configuration of a direct-engine container: what Docker gives every
// container (baseSpec), Docker's default seccomp profile (made once, launcherSeccomp), and
// what Sandbox.Create asks of Docker.
func (s *Sandbox) ociSpec(img imageFS, lim messages.Limits, uid int, id string, labels map[string]string) *specs.Spec {
	spec := baseSpec()
	spec.Root = &specs.Root{Path: img.dir, Readonly: true}
	spec.Hostname = "sandbox"
	spec.Annotations = labels
	zero := 0
	spec.Process = &specs.Process{
		User:            specs.User{UID: 0, GID: 0},
		Args:            launcher,
		Env:             containerEnv(img.env),
		Cwd:             WorkDir,
		Capabilities:    launcherCapabilities(),
		Rlimits:         rlimits(),
		NoNewPrivileges: true,
		OOMScoreAdj:     &zero,
	}
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: WorkDir, Type: "tmpfs", Source: "tmpfs",
			Options: []string{"rw", "exec", "nodev", fmt.Sprintf("size=%d", workDirBytes), fmt.Sprintf("uid=%d", uid), fmt.Sprintf("gid=%d", uid), "mode=0700"}},
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"rw", "exec", "nosuid", "nodev", fmt.Sprintf("size=%d", tmpDirBytes), fmt.Sprintf("uid=%d", uid), fmt.Sprintf("gid=%d", uid), "mode=0700"}},
	)
	spec.Linux.CgroupsPath = s.ociCgroup(id)
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &lim.MemoryBytes, Swap: &lim.MemoryBytes}
	period := uint64(cpuPeriod)
	quota := lim.CPUMillis * cpuPeriod / 1000
	spec.Linux.Resources.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: lim.Pids}
	spec.Linux.Seccomp = s.oci.seccomp
	return &spec
}

// launcherCapabilities are the launcher's capabilities (launcherCaps), in the OCI's names.
func launcherCapabilities() *specs.LinuxCapabilities {
	caps := make([]string, len(launcherCaps))
	for i, c := range launcherCaps {
		caps[i] = "CAP_" + c
	}
	return &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
}

// launcherSeccomp is Docker's default seccomp profile for a container with the launcher's
// capabilities (which decide a few of its rules): the same for every container, so it is
// made once, when the engine starts.
func launcherSeccomp() (*specs.LinuxSeccomp, error) {
	spec := baseSpec()
	spec.Process = &specs.Process{Capabilities: launcherCapabilities()}
	profile, err := seccomp.GetDefaultProfile(&spec)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	return profile, nil
}

// ociProcess is a process exec'd into a direct-engine container: argv as uid, in the work
// dir, with no capability and no way to gain one.
func (s *Sandbox) ociProcess(c *Container, argv []string) *specs.Process {
	zero := 0
	return &specs.Process{
		User:            specs.User{UID: uint32(c.UID), GID: uint32(c.UID)},
		Args:            argv,
		Env:             c.oci.env,
		Cwd:             WorkDir,
		Capabilities:    &specs.LinuxCapabilities{},
		Rlimits:         rlimits(),
		NoNewPrivileges: true,
		OOMScoreAdj:     &zero,
	}
}

// ociCgroup is a container's cgroup, under the jobs' cgroup (or a cgroup of the runner's
// own where it has none).
func (s *Sandbox) ociCgroup(id string) string {
	parent := s.cgroupParent
	if parent == "" {
		parent = "/codeexec"
	}
	return filepath.Join(parent, id)
}

// rlimits are the containers' resource limits of a process, as Create gives Docker.
func rlimits() []specs.POSIXRlimit {
	return []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: nofile, Hard: nofile},
		{Type: "RLIMIT_FSIZE", Soft: workDirBytes, Hard: workDirBytes},
		{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
	}
}

// containerEnv is the image's environment with the sandbox's: HOME is the work dir, as
// Create asks of Docker, and HOSTNAME the container's, as Docker sets it.
func containerEnv(image []string) []string {
	env := []string{"HOSTNAME=sandbox"}
	for _, kv := range image {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "HOSTNAME=") {
			env = append(env, kv)
		}
	}
	if !hasPath(env) {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return append(env, "HOME="+WorkDir)
}

func hasPath(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return true
		}
	}
	return false
}

// baseSpec is what Docker's daemon gives every container, whatever its settings (Docker's
// oci.DefaultLinuxSpec, with its 64 MiB /dev/shm): new mount, network, uts, pid and ipc
// namespaces; /proc, /dev, /sys (read-only) and the container's cgroups (read-only); the
// /proc and /sys files that tell of the host masked, and /proc's kernel knobs read-only; and
// no device but the harmless ones.
func baseSpec() specs.Spec {
	noDev := []string{"nosuid", "noexec", "nodev"}
	char := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}
	}
	pts := char(136, 0)
	pts.Minor = nil // any
	return specs.Spec{
		Version: ociVersion,
		Root:    &specs.Root{},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: noDev},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: append([]string{"ro"}, noDev...)},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: append([]string{"ro"}, noDev...)},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: noDev},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: append([]string{"mode=1777", "size=65536k"}, noDev...)},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
			},
			MaskedPaths: []string{
				"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
				"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Resources: &specs.LinuxResources{
				// Deny every device, then allow null, zero, full, random, urandom, tty,
				// console, ptmx and the container's own pseudo-terminals.
				Devices: []specs.LinuxDeviceCgroup{
					{Allow: false, Access: "rwm"},
					char(1, 3), char(1, 5), char(1, 7), char(1, 8), char(1, 9),
					char(5, 0), char(5, 1), char(5, 2), pts,
				},
			},
		},
	}
}
