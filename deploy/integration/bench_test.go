package integration

import (
	"context"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/codeexec/codeexec/shared/config"
)

const helloPython = `print("hello world")`

// BenchmarkExecute compares CodeExec's end-to-end latency and throughput for a python hello
// world (HTTP → edge → NATS → runner with its warm pool → container → result) with a plain
// `docker run --rm` of the same image doing the same, measured in the same run. Run it with
// `make bench`; read the p50/p90 and jobs/s metrics side by side.
func BenchmarkExecute(b *testing.B) {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	defer docker.Close()
	mesh := startMesh(b, b.TempDir(), func(c *config.Config) {
		c.FreeCreditMicros = 1_000_000_000
		c.RatePerSec, c.RateBurst, c.MaxConcurrent = 1_000_000, 1_000_000, 64 // measure the mesh, not the limits
		c.Languages = []string{"python"}
		c.RunnerSlots = 8
		c.PoolSize = 8
	})
	user := registerUser(b, mesh.URL)
	viaAPI := func(b *testing.B) {
		status, a := execute(b, mesh.URL, user.APIKey, map[string]any{"language": "python", "code": helloPython, "saveMetric": false})
		if status != 200 || a.Result.Stdout != "hello world\n" {
			b.Fatalf("execute: got %d %+v", status, a)
		}
	}
	viaDockerRun := func(b *testing.B) {
		if out := dockerRunRm(b, docker, "codeexec/python:latest", "python3", "-c", helloPython); out != "hello world\n" {
			b.Fatalf("docker run: got %q", out)
		}
	}
	for _, clients := range []int{1, 8} {
		for _, tc := range []struct {
			name string
			run  func(*testing.B)
		}{{"api", viaAPI}, {"docker-run-rm", viaDockerRun}} {
			b.Run(tc.name+"/clients="+strconv.Itoa(clients), func(b *testing.B) { measure(b, clients, tc.run) })
		}
	}
}

// measure runs b.N calls of fn over the given number of concurrent clients and reports the
// latency percentiles and the throughput.
func measure(b *testing.B, clients int, fn func(*testing.B)) {
	fn(b) // warm up: images cached, pool filled, connections open
	b.ResetTimer()
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, b.N)
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				t0 := time.Now()
				fn(b)
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.9), "p90-ms")
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "jobs/s")
}

// dockerRunRm does what `docker run --rm --network none IMAGE CMD…` does, through the
// Engine API: create, attach, start, wait, with the daemon removing the container.
func dockerRunRm(b *testing.B, docker *client.Client, image string, cmd ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := docker.ContainerCreate(ctx, &container.Config{Image: image, Cmd: cmd, AttachStdout: true, AttachStderr: true},
		&container.HostConfig{AutoRemove: true, NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		b.Fatalf("create: %v", err)
	}
	att, err := docker.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		b.Fatalf("attach: %v", err)
	}
	defer att.Close()
	waitC, errC := docker.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		b.Fatalf("start: %v", err)
	}
	var stdout strings.Builder
	if _, err := stdcopy.StdCopy(&stdout, io.Discard, att.Reader); err != nil {
		b.Fatalf("read output: %v", err)
	}
	out := stdout.String()
	select {
	case <-waitC:
	case err := <-errC:
		b.Fatalf("wait: %v", err)
	}
	return out
}
