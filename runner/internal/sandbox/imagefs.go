package sandbox

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// imageFS is a language image's root file system, unpacked for the direct engine, and the
// environment its image configures.
type imageFS struct {
	dir string
	env []string
}

// imageCache unpacks each image once, into a directory named after the image's id: a
// rebuilt image gets a new directory, found when the runner next starts. Directories are
// made under a temporary name and renamed once complete, so a crash mid-way leaves nothing
// that looks usable.
type imageCache struct {
	docker *client.Client
	dir    string

	mu     sync.Mutex
	images map[string]*imageEntry // by image reference
}

type imageEntry struct {
	once sync.Once
	fs   imageFS
	err  error
}

func newImageCache(docker *client.Client, dir string) *imageCache {
	return &imageCache{docker: docker, dir: dir, images: map[string]*imageEntry{}}
}

// get returns image's root file system, unpacking it on the first call.
func (c *imageCache) get(ctx context.Context, image string) (imageFS, error) {
	c.mu.Lock()
	e, ok := c.images[image]
	if !ok {
		e = &imageEntry{}
		c.images[image] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.fs, e.err = c.unpack(context.WithoutCancel(ctx), image) })
	if e.err != nil {
		// A failure is not kept: the next container tries again.
		c.mu.Lock()
		if c.images[image] == e {
			delete(c.images, image)
		}
		c.mu.Unlock()
	}
	return e.fs, e.err
}

// unpack exports image through a created (never started) container into the cache.
func (c *imageCache) unpack(ctx context.Context, image string) (imageFS, error) {
	ins, err := c.docker.ImageInspect(ctx, image)
	if err != nil {
		return imageFS{}, fmt.Errorf("inspect image %s: %w", image, err)
	}
	var env []string
	if ins.Config != nil {
		env = ins.Config.Env
	}
	dir := filepath.Join(c.dir, strings.TrimPrefix(ins.ID, "sha256:"))
	if _, err := os.Stat(dir); err == nil {
		return imageFS{dir: dir, env: env}, nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return imageFS{}, fmt.Errorf("image cache: %w", err)
	}
	tmp := dir + ".tmp-" + rand.Text()
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return imageFS{}, fmt.Errorf("image cache: %w", err)
	}
	defer os.RemoveAll(tmp) // left only on failure: renamed otherwise
	created, err := c.docker.ContainerCreate(ctx, &container.Config{Image: ins.ID, Cmd: []string{"true"}, Entrypoint: []string{}, Labels: map[string]string{LabelManaged: "export"}}, nil, nil, nil, "")
	if err != nil {
		return imageFS{}, fmt.Errorf("create container to export %s: %w", image, err)
	}
	defer c.docker.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
	export, err := c.docker.ContainerExport(ctx, created.ID)
	if err != nil {
		return imageFS{}, fmt.Errorf("export %s: %w", image, err)
	}
	defer export.Close()
	if err := untar(ctx, export, tmp); err != nil {
		return imageFS{}, fmt.Errorf("unpack %s: %w", image, err)
	}
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
		if _, statErr := os.Stat(dir); statErr != nil { // another runner's rename came first
			return imageFS{}, fmt.Errorf("image cache: %w", err)
		}
	}
	return imageFS{dir: dir, env: env}, nil
}

// untar unpacks a tar stream into dir with tar itself, which restores owners, modes,
// links and special files as the image had them.
func untar(ctx context.Context, r io.Reader, dir string) error {
	cmd := exec.CommandContext(ctx, "tar", "-x", "--numeric-owner", "--same-permissions", "-f", "-", "-C", dir)
	cmd.Stdin = r
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
