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

// BenchmarkExecute compares CodeExec's end-to-end latency, throughput and host CPU per job
// for a python hello world (HTTP → edge → NATS → runner with its warm pool → container →
// result) with a plain `docker run --rm` of the same image doing the same, measured in the
// same run, under three loads: lone requests (one client pausing between requests: the
// latency of one execution), one client back to back, and eight clients back to back (the
// throughput). CodeExec runs once per way of running its containers (sub-benchmarks
// api/<engine>-<runtime>, benchMeshes). Run it with `make bench`; read the
// p50/p90, jobs/s and cpu-ms/job metrics side by side (cpu-ms/job is the whole host's
// busy time per job; dockerd-, containerd- and codeexec-ms/job are those processes' part;
// shim-, runtime-, launcher-, program- and reexec-ms/job those of the short-lived processes, from
// the kernel's process accounting; rest-ms/job is what is left: the kernel's own work,
// other processes of the host).
func BenchmarkExecute(b *testing.B) {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	defer docker.Close()
	loads := []benchLoad{
		{"lone", 1, loneRequestPause},
		{"back-to-back", 1, 0},
		{"back-to-back", 8, 0},
	}
	// docker run --rm first, on a host with no mesh running; then one mesh per runtime, each
	// stopped (its containers removed) before the next starts.
	viaDockerRun := func(b *testing.B) {
		if out := dockerRunRm(b, docker, "codeexec/python:latest", "python3", "-c", helloPython); out != "hello world\n" {
			b.Fatalf("docker run: got %q", out)
		}
	}
	for _, load := range loads {
		name := "docker-run-rm/" + load.name + "/clients=" + strconv.Itoa(load.clients)
		b.Run(name, func(b *testing.B) { measure(b, load.clients, load.pause, viaDockerRun) })
	}
	for _, m := range benchMeshes(b, docker) {
		b.Run("api/"+m.engine+"-"+m.runtime, func(b *testing.B) { benchMesh(b, m.engine, m.runtime, loads) })
	}
}

// benchMesh measures CodeExec with the containers made by engine and run by runtime rt
// under each load, on a mesh of its own that lives as long as b.
func benchMesh(b *testing.B, engine, rt string, loads []benchLoad) {
	mesh := startMesh(b, b.TempDir(), func(c *config.Config) {
		c.FreeCreditMicros = 1_000_000_000
		c.RatePerSec, c.RateBurst, c.MaxConcurrent = 1_000_000, 1_000_000, 64 // measure the mesh, not the limits
		c.Languages = []string{"python"}
		c.RunnerSlots = 8
		c.PoolSize = 8
		c.Runtime = rt
		c.Engine = engine
	})
	user := registerUser(b, mesh.URL)
	viaAPI := func(b *testing.B) {
		status, a := execute(b, mesh.URL, user.APIKey, map[string]any{"language": "python", "code": helloPython, "saveMetric": false})
		if status != 200 || a.Result.Stdout != "hello world\n" {
			b.Fatalf("execute: got %d %+v", status, a)
		}
	}
	for _, load := range loads {
		name := load.name + "/clients=" + strconv.Itoa(load.clients)
		b.Run(name, func(b *testing.B) { measure(b, load.clients, load.pause, viaAPI) })
	}
}

// benchLoad is one way of sending requests: clients at once, each pausing between its own.
type benchLoad struct {
	name    string
	clients int
	pause   time.Duration
}

// benchMeshes are the ways of running containers measured: runc and crun run by the
// direct engine (the default), crun through Docker (the engine before it), and runsc
// (gVisor), through Docker only; each where the host has it.
func benchMeshes(b *testing.B, docker *client.Client) []struct{ engine, runtime string } {
	info, err := docker.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var out []struct{ engine, runtime string }
	for _, m := range []struct{ engine, runtime string }{
		{"direct", "runc"}, {"direct", "crun"}, {"docker", "crun"}, {"docker", "runsc"},
	} {
		if _, ok := info.Runtimes[m.runtime]; ok {
			out = append(out, m)
		}
	}
	return out
}

// loneRequestPause is the pause between the requests of the "lone" runs: long enough that
// the previous request's container is removed and the pool refilled, so each request is
// measured on its own, as a client sees it on a host that is not saturated. Back to back,
// every job's container churn (create, start and remove cost ~100 ms of CPU in dockerd,
// containerd and runc) overlaps the next jobs.
const loneRequestPause = 300 * time.Millisecond

// measure runs b.N calls of fn over the given number of concurrent clients, each pausing
// between its calls, and reports the latency percentiles and the throughput.
func measure(b *testing.B, clients int, pause time.Duration, fn func(*testing.B)) {
	fn(b) // warm up: images cached, pool filled, connections open
	time.Sleep(time.Second)
	b.ResetTimer()
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, b.N)
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	cpuBefore, cpuErr := readHostCPU()
	acct, acctErr := startProcessAccounting(b.TempDir())
	if acctErr != nil {
		b.Logf("no split of short-lived processes (shim, runtime, launcher, program): %v", acctErr)
	}
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
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var ended map[string]float64
	if acct != nil {
		byName, err := acct.stop()
		if err != nil {
			b.Fatal(err)
		}
		ended = endedPerJob(byName, b.N)
	}
	if cpuErr == nil {
		if after, err := readHostCPU(); err == nil {
			c := after.perJob(cpuBefore, b.N)
			b.ReportMetric(c.total, "cpu-ms/job")
			for _, p := range cpuParts {
				b.ReportMetric(c.parts[p], p+"-ms/job")
			}
			rest := c.rest
			for _, p := range endedParts {
				if ended != nil {
					b.ReportMetric(ended[p.part], p.part+"-ms/job")
					rest -= ended[p.part]
				}
			}
			b.ReportMetric(rest, "rest-ms/job")
			b.Logf("CPU by process over %d jobs: %s", b.N, after.topGrowth(cpuBefore, 8))
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.9), "p90-ms")
	if pause == 0 {
		b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "jobs/s")
	}
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
