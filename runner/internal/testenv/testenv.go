// Package testenv gives the runner's tests the real Docker and the language table, and
// fails (never skips) when an image is missing.
package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/codeexec/codeexec/shared/languages"
)

// Docker returns a client of the local Docker Engine, failing the test when it is not
// reachable.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker.Ping(ctx); err != nil {
		t.Fatalf("docker is not reachable (is dockerd running? DOCKER_HOST=%q): %v", os.Getenv("DOCKER_HOST"), err)
	}
	t.Cleanup(func() { _ = docker.Close() })
	return docker
}

// Catalog returns the language table, CODEEXEC_LANGUAGES_FILE's when set.
func Catalog(t testing.TB) *languages.Catalog {
	t.Helper()
	c, err := languages.Load(os.Getenv("CODEEXEC_LANGUAGES_FILE"))
	if err != nil {
		t.Fatalf("language table: %v", err)
	}
	return c
}

// RequireImage fails the test when the image of lang is not on the Docker host.
func RequireImage(t testing.TB, docker *client.Client, c *languages.Catalog, lang string) {
	t.Helper()
	l, ok := c.Resolve(lang)
	if !ok {
		t.Fatalf("language %s is not in the table", lang)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker.ImageInspect(ctx, l.Image); err != nil {
		t.Fatalf("image %s of %s is missing: run `make images` (%v)", l.Image, lang, err)
	}
}
