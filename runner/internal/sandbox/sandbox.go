// Package sandbox runs one job in one fresh, locked-down container of a language's Docker
// image: no network, read-only root, a size-capped tmpfs work dir owned by the
// unprivileged user, all capabilities dropped, no-new-privileges, pids/memory/CPU limits,
// a wall-time kill, capped output and OOM detection. The container is made either through
// the Docker Engine SDK or, by default, by the OCI runtime run by the runner itself with the
// same settings (the direct engine, oci.go), which spares dockerd, containerd and a shim
// per container.
//
// A container's main process is a shell (launch.go), the launcher, that waits on its attached
// stdin for the job and runs the program; a compile step is exec'd into the container
// before. The launcher runs as root with six capabilities (launcherCaps) and the
// program under the container's own uid with none: the program can neither read, write nor
// signal the launcher, so the launcher's report of how the program ended is evidence the
// program cannot forge. Each live container has a uid of its own (uids.go), so the kernel's
// per-uid accounting never mixes two tenants. The files travel as a tar stream on the stdin
// of the job's first process, which unpacks them into /work. A container serves one job and
// is then removed, whatever happened.
package sandbox

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
)

// Labels on every container the runner creates.
const (
	LabelManaged = "org.codeexec.managed"
	LabelRunner  = "org.codeexec.runner"
	LabelHost    = "org.codeexec.host"
	LabelPID     = "org.codeexec.pid"
	// LabelLife tells one Sandbox's containers from those of an earlier life of the same
	// runner that had the same PID (a runner that is PID 1 of its own container).
	LabelLife     = "org.codeexec.life"
	LabelLanguage = "org.codeexec.language"
	LabelJob      = "org.codeexec.job"
	// LabelUID is the uid the container's programs run as (also reserved by its name).
	LabelUID = "org.codeexec.uid"
)

// Sandbox settings that are the same for every language.
const (
	// launcherUser is the launcher's identity: root in the container, with only the
	// capabilities of launcherCaps, none of which the program keeps.
	launcherUser = "0:0"
	// WorkDir is the job's tmpfs: the files are unpacked there and the program runs there.
	WorkDir      = "/work"
	workDirBytes = 64 << 20
	tmpDirBytes  = 16 << 20
	nofile       = 1024
	// createTimeout bounds a container create, which is not cancelled with its caller.
	createTimeout = 30 * time.Second
)

// launcherCaps are what the launcher needs: to unpack the job's files into the work dir
// as their owner, the container's uid (tar restores the owner and then the modes: chown,
// dac_override, fowner), to drop to that uid and gid for the program, and to kill what the
// program left behind before it reports (kill -9 -1). The program keeps none of them.
var launcherCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"}

// Container is a created and started container that has not served a job yet.
type Container struct {
	ID       string
	Language string
	// UID is the uid (and gid) the container's programs run as, no other live container's.
	UID int
	// Limits the container was created with (memory, CPU, pids); a job with other limits
	// updates them before it runs, or, where the runtime cannot (Sandbox.CanUpdateLimits),
	// runs in another container.
	Limits  messages.Limits
	Created time.Time

	// streams are the main process's stdin, stdout and stderr, attached before the start.
	streams *attachment
	// oci is what the direct engine keeps of the container (nil under Docker).
	oci *ociContainer
}

// Alive reports whether the container's launcher may still take a job: its attached
// streams are open. A container that died (or whose daemon went away) is not.
func (c *Container) Alive() bool { return c.streams != nil && c.streams.alive() }

// Ended is closed when the container's attached streams end: it died, or it was removed.
func (c *Container) Ended() <-chan struct{} { return c.streams.ended }

// Options configures a Sandbox.
type Options struct {
	// RunnerID labels every container, so that a runner finds its own.
	RunnerID string
	Log      *slog.Logger
	// OnContainerStart observes how long create+start took (for metrics); optional.
	OnContainerStart func(time.Duration)
	// OnContainerRemove observes how long a force-remove took (for metrics); optional.
	OnContainerRemove func(time.Duration)
	// CgroupRoot is the Docker host's cgroup file system as the runner sees it, for fast
	// usage figures; default /sys/fs/cgroup. "-" turns it off: Docker's stats API only.
	CgroupRoot string
	// UIDs is the range of uids the programs run as, one per live container; default
	// DefaultUIDs. No user of the Docker host may have one of them.
	UIDs UIDRange
	// Runtime is the OCI runtime of the containers (see ChooseRuntime); empty: the
	// daemon's default.
	Runtime string
	// CgroupParent is the parent cgroup of the containers (PrepareJobsCgroup); empty:
	// the daemon's default.
	CgroupParent string
	// Engine makes the containers (ChooseEngine): EngineDocker (or empty) through the
	// Docker daemon, EngineDirect with the OCI runtime Runtime itself (oci.go).
	Engine string
	// StateDir and ImageDir are the direct engine's files; default DefaultStateDir and
	// DefaultImageDir.
	StateDir, ImageDir string
}

// Sandbox creates containers and runs jobs in them.
type Sandbox struct {
	docker   *client.Client
	runnerID string
	host     string
	pid      int
	life     string
	log      *slog.Logger
	oom      *oomWatcher
	onStart  func(time.Duration)
	onRemove func(time.Duration)
	// cgroupRoot is where the Docker host's cgroups are read from; empty: ask Docker.
	cgroupRoot   string
	uids         UIDRange
	runtime      string
	cgroupParent string
	// oci, when set, makes the containers instead of Docker (the direct engine).
	oci *ociEngine
}

// New returns a Sandbox. Call Watch before running jobs, so that OOM kills are seen.
func New(docker *client.Client, o Options) (*Sandbox, error) {
	host, _ := os.Hostname()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := o.CgroupRoot
	switch root {
	case "":
		root = DefaultCgroupRoot
	case "-":
		root = ""
	}
	uids := o.UIDs
	if uids.Count <= 0 {
		uids = DefaultUIDs
	}
	s := &Sandbox{
		runtime:      o.Runtime,
		cgroupParent: o.CgroupParent,
		uids:         uids,
		cgroupRoot:   root,
		docker:       docker,
		runnerID:     o.RunnerID,
		host:         host,
		pid:          os.Getpid(),
		life:         rand.Text(),
		log:          log,
		oom:          newOOMWatcher(),
		onStart:      o.OnContainerStart,
		onRemove:     o.OnContainerRemove,
	}
	switch o.Engine {
	case "", EngineDocker:
	case EngineDirect:
		bin, err := runtimeBinary(o.Runtime)
		if err != nil {
			return nil, err
		}
		state, images := o.StateDir, o.ImageDir
		if state == "" {
			state = DefaultStateDir
		}
		if images == "" {
			images = DefaultImageDir
		}
		if s.oci, err = newOCIEngine(bin, state, newImageCache(docker, images)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("container engine %q: want %s or %s", o.Engine, EngineDirect, EngineDocker)
	}
	return s, nil
}

// Engine is how the containers are made: EngineDirect or EngineDocker.
func (s *Sandbox) Engine() string {
	if s.oci != nil {
		return EngineDirect
	}
	return EngineDocker
}

// Runtime is the OCI runtime the containers are created with; empty: the daemon's default.
func (s *Sandbox) Runtime() string { return s.runtime }

// Watch follows Docker's oom events for this runner's containers until ctx ends; under the
// direct engine there are none to follow, and it returns at once.
func (s *Sandbox) Watch(ctx context.Context) {
	if s.oci != nil {
		// The direct engine's containers have no Docker events: their cgroups are the
		// evidence (oomSeen).
		s.oom.once.Do(func() { close(s.oom.ready) })
		return
	}
	s.oom.run(ctx, s.docker, s.runnerID, s.log)
}

// WatchReady reports whether the OOM event subscription is established.
func (s *Sandbox) WatchReady() <-chan struct{} { return s.oom.ready }

// Create creates and starts a container for lang with the default limits lim. jobID, when
// not empty, is put in a label (a warm pool's containers do not know their job yet).
func (s *Sandbox) Create(ctx context.Context, lang *languages.Language, lim messages.Limits, jobID string) (*Container, error) {
	start := time.Now()
	labels := map[string]string{
		LabelManaged:  "true",
		LabelRunner:   s.runnerID,
		LabelHost:     s.host,
		LabelPID:      strconv.Itoa(s.pid),
		LabelLife:     s.life,
		LabelLanguage: lang.Name,
	}
	if jobID != "" {
		labels[LabelJob] = jobID
	}
	if s.oci != nil {
		c, err := s.ociCreate(ctx, lang, lim, labels)
		if err != nil {
			return nil, err
		}
		if s.onStart != nil {
			s.onStart(time.Since(start))
		}
		c.Created = time.Now()
		return c, nil
	}
	// No docker-init: the launcher is the container's PID 1, which the kernel shields from
	// the program's signals (a namespace's init gets none it has no handler for); it is
	// also another uid than the program's.
	init := false
	cfg := &container.Config{
		Image:           lang.Image,
		User:            launcherUser,
		Env:             []string{"HOME=" + WorkDir},
		Cmd:             launcher,
		OpenStdin:       true,
		StdinOnce:       true,
		AttachStdin:     true,
		AttachStdout:    true,
		AttachStderr:    true,
		Entrypoint:      []string{},
		WorkingDir:      WorkDir,
		Hostname:        "sandbox",
		NetworkDisabled: true,
		Labels:          labels,
	}
	hc := &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		CapAdd:         launcherCaps,
		SecurityOpt:    []string{"no-new-privileges"},
		Init:           &init,
		IpcMode:        "private",
		Runtime:        s.runtime,
		LogConfig:      container.LogConfig{Type: "none"},
		Resources:      resources(lim),
	}
	hc.Resources.CgroupParent = s.cgroupParent
	hc.Resources.Ulimits = []*container.Ulimit{
		{Name: "nofile", Soft: nofile, Hard: nofile},
		{Name: "fsize", Soft: workDirBytes, Hard: workDirBytes},
		{Name: "core", Soft: 0, Hard: 0},
	}
	s.applyRuntime(hc, lim)
	created, uid, err := s.createWithUID(ctx, cfg, hc)
	if err != nil {
		return nil, err
	}
	c := &Container{ID: created.ID, Language: lang.Name, Limits: lim, UID: uid}
	if err := ctx.Err(); err != nil {
		s.Remove(context.WithoutCancel(ctx), c)
		return nil, infra("create container", err)
	}
	// Attached before the start, so that nothing the launcher writes is missed.
	hj, err := s.docker.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		s.Remove(context.WithoutCancel(ctx), c)
		return nil, infra("attach container", err)
	}
	c.streams = newDockerAttachment(hj, nil, nil)
	if err := s.docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		s.Remove(context.WithoutCancel(ctx), c)
		return nil, infra("start container", err)
	}
	if s.onStart != nil {
		s.onStart(time.Since(start))
	}
	c.Created = time.Now()
	return c, nil
}

func resources(lim messages.Limits) container.Resources {
	pids := lim.Pids
	return container.Resources{
		Memory:     lim.MemoryBytes,
		MemorySwap: lim.MemoryBytes, // no swap: memory+swap = memory
		NanoCPUs:   lim.CPUMillis * 1_000_000,
		PidsLimit:  &pids,
	}
}

// update applies lim to a running container whose limits differ. Where the runtime cannot
// (CanUpdateLimits), such a container is refused: the job needs one created with its limits.
func (s *Sandbox) update(ctx context.Context, c *Container, lim messages.Limits) error {
	if SameResources(c.Limits, lim) {
		return nil
	}
	if !s.CanUpdateLimits() {
		return infraf("update container limits", "runtime %s cannot change a running container's limits: "+
			"the job needs a container created with them", s.runtime)
	}
	if _, err := s.docker.ContainerUpdate(ctx, c.ID, container.UpdateConfig{Resources: resources(lim)}); err != nil {
		return infra("update container limits", err)
	}
	c.Limits.MemoryBytes, c.Limits.CPUMillis, c.Limits.Pids = lim.MemoryBytes, lim.CPUMillis, lim.Pids
	return nil
}

// Remove force-removes a container this sandbox made; a container already gone is not an
// error.
func (s *Sandbox) Remove(ctx context.Context, c *Container) {
	if c.streams != nil {
		c.streams.close()
	}
	s.removeID(ctx, c.ID)
}

// removeID force-removes a container; a container already gone is not an error.
func (s *Sandbox) removeID(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.releaseOOM(id)
	start := time.Now()
	var err error
	if s.oci != nil {
		err = s.oci.remove(ctx, id)
	} else {
		err = s.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	if s.onRemove != nil && err == nil {
		s.onRemove(time.Since(start))
	}
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
		s.log.Warn("remove container", "container_id", short(id), "err", err)
	}
	s.oom.forget(id)
}

// kill sends SIGKILL to the container's init, which takes every process of the container
// with it. A container already stopped or gone is not an error.
func (s *Sandbox) kill(ctx context.Context, id string) {
	s.releaseOOM(id)
	if s.oci != nil {
		if err := s.oci.kill(ctx, id); err != nil && s.oci.exists(ctx, id) {
			s.log.Warn("kill container", "container_id", id, "err", err)
		}
		return
	}
	err := s.docker.ContainerKill(ctx, id, "KILL")
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) && !errdefs.IsNotModified(err) {
		s.log.Warn("kill container", "container_id", short(id), "err", err)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
