package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
)

// The direct engine runs each job's container with the OCI runtime itself (crun or runc),
// as Docker would have, but without dockerd, containerd and the Go shim that containerd
// starts for every container: measured by `make bench`, those three cost about 250 ms of
// host CPU per container, where crun alone takes about 35. Docker still builds and keeps
// the language images; the runner unpacks each image's root file system once (imagefs.go)
// and every container mounts it read-only.
//
// A container is what Docker would make of the same settings: the same namespaces (mount,
// pid, ipc, uts, and a network namespace with no interface but its loopback),
// Docker's default seccomp profile, masked and read-only /proc paths, device rules and
// mounts, a read-only root, the launcher's six capabilities and no-new-privileges, the
// limits in a cgroup of its own under the jobs' cgroup, and the same tmpfs work dirs. Its
// stdin, stdout and stderr are pipes of the runner's, which the runtime hands to the
// launcher (`run --detach`: the runtime returns once the launcher started, and the
// container stays, its cgroup and evidence with it, until the runner deletes it).
//
// A bundle directory per container holds its config.json and labels.json. The directory,
// named after the uid the container runs its programs as ("codeexec-uid-<uid>"), is the
// uid's reservation: mkdir fails when another live container of the host has the uid, as
// Docker refuses a second container of one name.

// EngineDocker and EngineDirect are the ways a runner can make its containers
// (CODEEXEC_ENGINE).
const (
	EngineDocker = "docker"
	EngineDirect = "direct"
)

// Default places of the direct engine's files.
const (
	// DefaultStateDir holds the containers' bundles and the runtime's state: gone at a
	// reboot, as the containers are.
	DefaultStateDir = "/run/codeexec"
	// DefaultImageDir holds the unpacked images, kept across restarts.
	DefaultImageDir = "/var/lib/codeexec/images"
)

// ociEngine runs containers with an OCI runtime binary.
type ociEngine struct {
	bin     string // the runtime's binary
	root    string // the runtime's state (--root)
	bundles string
	images  *imageCache
	seccomp *specs.LinuxSeccomp // every container's (launcherSeccomp)
}

func newOCIEngine(bin, stateDir string, images *imageCache) (*ociEngine, error) {
	profile, err := launcherSeccomp()
	if err != nil {
		return nil, fmt.Errorf("direct engine: %w", err)
	}
	e := &ociEngine{bin: bin, root: filepath.Join(stateDir, "runtime"), bundles: filepath.Join(stateDir, "bundles"), images: images, seccomp: profile}
	for _, d := range []string{e.root, e.bundles} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("direct engine: %w", err)
		}
	}
	return e, nil
}

// ociContainer is what the direct engine keeps of a live container.
type ociContainer struct {
	bundle string
	env    []string // of its processes
}

// command is a call of the runtime binary on the engine's state.
func (e *ociEngine) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, e.bin, append([]string{"--root", e.root}, args...)...)
}

// runtime runs the runtime binary with args and returns its error with what it printed.
func (e *ociEngine) runtime(ctx context.Context, args ...string) error {
	out, err := e.command(ctx, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(e.bin), args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ociCreate makes, starts and attaches a container for lang with limits lim.
func (s *Sandbox) ociCreate(ctx context.Context, lang *languages.Language, lim messages.Limits, labels map[string]string) (*Container, error) {
	e := s.oci
	if err := ctx.Err(); err != nil {
		return nil, infra("create container", err)
	}
	img, err := e.images.get(ctx, lang.Image)
	if err != nil {
		return nil, infra("image root file system", err)
	}
	id, uid, bundle, err := e.reserve(s)
	if err != nil {
		return nil, err
	}
	c := &Container{ID: id, Language: lang.Name, Limits: lim, UID: uid, oci: &ociContainer{bundle: bundle}}
	fail := func(op string, err error) (*Container, error) {
		s.Remove(context.WithoutCancel(ctx), c)
		return nil, infra(op, err)
	}
	labels[LabelUID] = strconv.Itoa(uid)
	spec := s.ociSpec(img, lim, uid, id, labels)
	c.oci.env = spec.Process.Env
	if err := writeJSON(filepath.Join(bundle, "config.json"), spec); err != nil {
		return fail("container config", err)
	}
	if err := writeJSON(filepath.Join(bundle, "labels.json"), labels); err != nil {
		return fail("container labels", err)
	}
	p, err := newPipes(true)
	if err != nil {
		return fail("container pipes", err)
	}
	// The runtime's own complaints go to the container's stderr: they are the early output
	// an error reports.
	cmd := e.command(context.WithoutCancel(ctx), "run", "--detach", "--bundle", bundle, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.childStdin, p.childStdout, p.childStderr
	runErr := cmd.Run() // not cancelled with ctx: a runtime killed mid-way leaves a half-made container
	p.closeChildEnds()
	c.streams = newPipeAttachment(p.stdin, p.stdout, p.stderr, nil, nil)
	if runErr != nil {
		select {
		case <-c.streams.ended:
		case <-time.After(2 * time.Second): // a half-made container may hold the pipes
		}
		return fail("start container", fmt.Errorf("%s run: %w: %s", filepath.Base(e.bin), runErr, strings.TrimSpace(c.streams.earlyOutput())))
	}
	if err := ctx.Err(); err != nil {
		return fail("create container", err) // as under Docker: the caller went away
	}
	return c, nil
}

// reserve makes the bundle directory of a container whose programs run as a uid no other
// live container of the host has.
func (e *ociEngine) reserve(s *Sandbox) (id string, uid int, bundle string, err error) {
	for range uidAttempts {
		uid = s.randomUID()
		id = uidName(uid)
		bundle = filepath.Join(e.bundles, id)
		err := os.Mkdir(bundle, 0o700)
		switch {
		case err == nil:
			return id, uid, bundle, nil
		case errors.Is(err, os.ErrExist):
			continue // another live container has this uid
		default:
			return "", 0, "", infra("container bundle", err)
		}
	}
	return "", 0, "", infraf("create container", "no free uid in %d tries (range %d+%d)", uidAttempts, s.uids.First, s.uids.Count)
}

// remove deletes a container (killing what runs in it) and its bundle, which frees its uid.
func (e *ociEngine) remove(ctx context.Context, id string) error {
	err := e.runtime(ctx, "delete", "--force", id)
	if err != nil && e.exists(ctx, id) {
		return err
	}
	return os.RemoveAll(filepath.Join(e.bundles, id))
}

// ociState is what the runtime's `state` says of a container.
type ociState struct {
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

// state asks the runtime about container id.
func (e *ociEngine) state(ctx context.Context, id string) (ociState, error) {
	out, err := e.command(ctx, "state", id).Output()
	if err != nil {
		return ociState{}, fmt.Errorf("%s state %s: %w", filepath.Base(e.bin), id, err)
	}
	var st ociState
	if err := json.Unmarshal(out, &st); err != nil {
		return ociState{}, fmt.Errorf("%s state %s: %w", filepath.Base(e.bin), id, err)
	}
	return st, nil
}

// exists reports whether the runtime still knows container id.
func (e *ociEngine) exists(ctx context.Context, id string) bool {
	_, err := e.state(ctx, id)
	return err == nil
}

// kill sends SIGKILL to the container's init, which takes every process of the container
// with it; the container stays until it is deleted.
func (e *ociEngine) kill(ctx context.Context, id string) error {
	return e.runtime(ctx, "kill", id, "KILL")
}

// ociExec starts argv in container c as its uid, with no capability.
func (s *Sandbox) ociExec(ctx context.Context, c *Container, argv []string, stdin bool, stdout, stderr io.Writer) (*process, error) {
	e := s.oci
	proc := s.ociProcess(c, argv)
	f, err := os.CreateTemp(c.oci.bundle, "exec-*.json")
	if err != nil {
		return nil, fmt.Errorf("exec process: %w", err)
	}
	if err := json.NewEncoder(f).Encode(proc); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("exec process: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("exec process: %w", err)
	}
	p, err := newPipes(stdin)
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	cmd := e.command(context.WithoutCancel(ctx), "exec", "--process", f.Name(), c.ID)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.childStdin, p.childStdout, p.childStderr
	if err := cmd.Start(); err != nil {
		p.closeChildEnds()
		p.closeOwnEnds()
		os.Remove(f.Name())
		return nil, fmt.Errorf("exec: %w", err)
	}
	p.closeChildEnds()
	done := make(chan struct{})
	var code int
	go func() {
		defer close(done)
		_ = cmd.Wait()
		code = cmd.ProcessState.ExitCode()
		os.Remove(f.Name())
	}()
	exitCode := func(ctx context.Context) (int, error) {
		select {
		case <-done:
			return code, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return &process{attachment: newPipeAttachment(p.stdin, p.stdout, p.stderr, stdout, stderr), exitCode: exitCode}, nil
}

// bundleLabels reads the labels of every container bundle of the host.
func (e *ociEngine) bundleLabels() (map[string]map[string]string, error) {
	entries, err := os.ReadDir(e.bundles)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(entries))
	for _, d := range entries {
		labels := map[string]string{}
		b, err := os.ReadFile(filepath.Join(e.bundles, d.Name(), "labels.json"))
		if err == nil {
			_ = json.Unmarshal(b, &labels)
		}
		out[d.Name()] = labels
	}
	return out, nil
}

// oomKills reads how many processes the kernel's OOM killer took in a container's cgroup
// (cgroup v1 memory.oom_control, v2 memory.events), or -1.
func oomKills(root string, leaves []string) int64 {
	for _, leaf := range leaves {
		for _, f := range []string{filepath.Join(root, "memory", leaf, "memory.oom_control"), filepath.Join(root, leaf, "memory.events")} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for line := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						return n
					}
				}
			}
		}
	}
	return -1
}

// pipes are a process's stdin, stdout and stderr: the runner's ends and the child's.
type pipes struct {
	stdin, stdout, stderr                *os.File
	childStdin, childStdout, childStderr *os.File
}

// newPipes makes the pipes of a process; without stdin, the child reads /dev/null and the
// runner has no stdin end.
func newPipes(stdin bool) (*pipes, error) {
	p := &pipes{}
	var err error
	if stdin {
		if p.childStdin, p.stdin, err = os.Pipe(); err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
	} else {
		if p.childStdin, err = os.Open(os.DevNull); err != nil {
			return nil, err
		}
	}
	if p.stdout, p.childStdout, err = os.Pipe(); err != nil {
		p.closeChildEnds()
		p.closeOwnEnds()
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	if p.stderr, p.childStderr, err = os.Pipe(); err != nil {
		p.closeChildEnds()
		p.closeOwnEnds()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	return p, nil
}

// closeChildEnds closes the runner's copies of the child's ends, once the child has them.
func (p *pipes) closeChildEnds() {
	for _, f := range []*os.File{p.childStdin, p.childStdout, p.childStderr} {
		if f != nil {
			f.Close()
		}
	}
}

func (p *pipes) closeOwnEnds() {
	for _, f := range []*os.File{p.stdin, p.stdout, p.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
