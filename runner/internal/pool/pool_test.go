package pool_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/codeexec/codeexec/runner/internal/pool"
	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/runner/internal/testenv"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// startPool runs a pool of size warm python containers on the real Docker; cancel stops it
// (and waits for it).
func startPool(t *testing.T, size int) (p *pool.Pool, sb *sandbox.Sandbox, cancel func()) {
	t.Helper()
	docker := testenv.Docker(t)
	catalog := testenv.Catalog(t)
	testenv.RequireImage(t, docker, catalog, "python")
	py, _ := catalog.Resolve("python")
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	sb = newSandbox(t, docker, "pooltest-"+hex.EncodeToString(id))
	p = pool.New(sb, pool.Options{Max: size, Log: slog.New(slog.DiscardHandler)}, []pool.Language{{Lang: py, Limits: catalog.Defaults(py)}})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.Run(ctx) }()
	cancel = func() { stop(); wg.Wait() }
	t.Cleanup(func() { cancel(); _, _ = sb.RemoveOwn(context.Background()) })
	return p, sb, cancel
}

// pythonDefaults are the limits of python's warm containers.
func pythonDefaults(t *testing.T) messages.Limits {
	t.Helper()
	catalog := testenv.Catalog(t)
	py, _ := catalog.Resolve("python")
	return catalog.Defaults(py)
}

func TestPoolKeepsSizeWarmAndRemovesAllOnShutdown(t *testing.T) {
	const size = 2
	p, sb, cancel := startPool(t, size)

	count := func() int {
		ids, err := sb.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	waitWarm := func(n int) {
		t.Helper()
		waitfor.Eventually(t, 30*time.Second, fmt.Sprintf("%d warm", n), func() (bool, error) { return p.Warm("python") == n, nil })
	}
	waitWarm(size)

	// Taking refills; the taken containers are the caller's, never returned.
	var taken []*sandbox.Container
	t.Cleanup(func() { // before the pool stops (cleanups run last first), should the test fail
		for _, c := range taken {
			sb.Remove(context.Background(), c)
		}
	})
	for range 5 {
		c, _, err := p.Take(context.Background(), "python", "job", pythonDefaults(t))
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, c)
	}
	waitWarm(size)
	if got, want := count(), size+len(taken); got != want {
		t.Errorf("containers: got %d, want %d (warm %d + taken %d)", got, want, size, len(taken))
	}
	for _, c := range taken {
		sb.Remove(context.Background(), c)
	}
	taken = nil

	cancel()
	if n := count(); n != 0 {
		t.Errorf("%d containers after shutdown, want 0", n)
	}
}

// A warm container that dies (killed from outside, or its daemon restarted) is dropped and
// replaced; no job is given it.
func TestDeadWarmContainerIsReplaced(t *testing.T) {
	const size = 2
	p, sb, _ := startPool(t, size)
	waitfor.Eventually(t, 30*time.Second, "the pool warm", func() (bool, error) { return p.Warm("python") == size, nil })

	victims, err := sb.List(context.Background())
	if err != nil || len(victims) != size {
		t.Fatalf("list: %v %v", victims, err)
	}
	for _, v := range victims {
		sb.Kill(context.Background(), v)
	}
	// Whatever the pool holds at any moment, Take only hands out live containers; the
	// killed ones are removed and replaced.
	waitfor.Eventually(t, 30*time.Second, "the killed containers removed and replaced", func() (bool, error) {
		ids, err := sb.List(context.Background())
		if err != nil {
			return false, err
		}
		replaced := p.Warm("python") == size && len(ids) == size
		for _, v := range victims {
			replaced = replaced && !slices.Contains(ids, v)
		}
		return replaced, nil
	})
	c, warm, err := p.Take(context.Background(), "python", "job", pythonDefaults(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Remove(context.Background(), c)
	if !warm || !c.Alive() || slices.Contains(victims, c.ID) {
		t.Errorf("took %s (warm %v, alive %v); killed were %v", c.ID[:12], warm, c.Alive(), victims)
	}
}

// A language nobody takes from shrinks to its minimum (none), its warm containers removed;
// one that jobs take from grows back.
func TestPoolFollowsDemand(t *testing.T) {
	docker := testenv.Docker(t)
	catalog := testenv.Catalog(t)
	testenv.RequireImage(t, docker, catalog, "python")
	py, _ := catalog.Resolve("python")
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	sb := newSandbox(t, docker, "pooltest-"+hex.EncodeToString(id))
	const window = 3 * time.Second
	p := pool.New(sb, pool.Options{Max: 2, Window: window, Idle: func() float64 { return 1 }},
		[]pool.Language{{Lang: py, Limits: catalog.Defaults(py)}})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	t.Cleanup(func() { stop(); wg.Wait(); _, _ = sb.RemoveOwn(context.Background()) })
	containers := func() int {
		ids, err := sb.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}

	waitfor.Eventually(t, 30*time.Second, "2 warm before any demand is known", func() (bool, error) { return p.Warm("python") == 2, nil })
	waitfor.Eventually(t, 30*time.Second, "nothing warm once nobody used python for a window", func() (bool, error) {
		return p.Target("python") == 0 && p.Warm("python") == 0 && containers() == 0, nil
	})
	c, warm, err := p.Take(context.Background(), "python", "job", pythonDefaults(t))
	if err != nil {
		t.Fatal(err)
	}
	if warm {
		t.Error("took a warm container from an empty pool")
	}
	sb.Remove(context.Background(), c)
	p.Refill("python")
	waitfor.Eventually(t, 30*time.Second, "one warm again after a job", func() (bool, error) {
		return p.Target("python") == 1 && p.Warm("python") == 1, nil
	})
}

// A job with other limits than the warm containers' runs with its own: where the runtime
// can update a running container's limits (runc, crun), in a warm container (the sandbox
// updates it); where it cannot (runsc), in a container created with them, the warm ones
// left for jobs with the defaults.
func TestTakeWithOtherLimits(t *testing.T) {
	const size = 1
	p, sb, _ := startPool(t, size)
	waitfor.Eventually(t, 30*time.Second, "the pool warm", func() (bool, error) { return p.Warm("python") == size, nil })
	lim := pythonDefaults(t)
	lim.MemoryBytes /= 2
	lim.Pids /= 2
	c, warm, err := p.Take(context.Background(), "python", "job", lim)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Remove(context.Background(), c)
	if sb.CanUpdateLimits() {
		if !warm {
			t.Errorf("runtime %s updates limits: got a new container, want a warm one", sb.Runtime())
		}
		return
	}
	if warm || p.Warm("python") != size {
		t.Errorf("runtime %s: got warm %v with %d left warm, want a new container and the warm one kept", sb.Runtime(), warm, p.Warm("python"))
	}
	if !sandbox.SameResources(c.Limits, lim) {
		t.Errorf("container limits %+v, want the job's %+v", c.Limits, lim)
	}
	facts, err := sb.Facts(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if facts.MemoryBytes != lim.MemoryBytes {
		t.Errorf("container memory %d, want the job's %d", facts.MemoryBytes, lim.MemoryBytes)
	}
}

// newSandbox is a sandbox with the runtime and engine a runner would choose.
func newSandbox(t *testing.T, docker *client.Client, runnerID string) *sandbox.Sandbox {
	t.Helper()
	runtime := testenv.Runtime(t, docker)
	sb, err := sandbox.New(docker, sandbox.Options{RunnerID: runnerID, Log: slog.New(slog.DiscardHandler),
		Runtime: runtime, Engine: testenv.Engine(t, runtime)})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}
