package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// The shape of BenchmarkLedgerCapacity.
const (
	benchUsers      = 100
	benchLanguage   = "python"
	benchFreeCredit = 1_000_000_000_000 // $1,000,000 each: no reserve is ever refused

	latencySamples = 300 // reserves timed one after the other, per latency phase
	driverWorkers  = 16  // concurrent driver goroutines of the sustained phase and the fills

	firstLatencyEntries = 1_000
	finalLatencyEntries = 50_000

	defaultSustainedWindow = 60 * time.Second
	backlogLogEvery        = 5 * time.Second

	// The charges phase publishes the results of as many jobs as the sustained phase
	// settled in burstSeconds, within [minBurstJobs, maxBurstJobs]: a slow ledger
	// charges its burst in about a minute.
	burstSeconds = 60
	minBurstJobs = 200
	maxBurstJobs = 2000

	// largeFillTimeCap and largeFillEndsBy (counted from the start of the run) bound the
	// fill towards finalLatencyEntries on a slow ledger, so that the run ends within about
	// 15 minutes; the entries reached are reported as entries@final.
	largeFillTimeCap = 6 * time.Minute
	largeFillEndsBy  = 12 * time.Minute
	// fillMaxBacklog holds the fills' drivers while the ledger has this many results to
	// settle, so that the drain after a fill stays short.
	fillMaxBacklog = 200
	drainTimeout   = 10 * time.Minute

	// clockTicksPerSecond is USER_HZ, the unit of the times in /proc/<pid>/stat on Linux.
	clockTicksPerSecond = 100
)

// BenchmarkLedgerCapacity measures the money path as an internal publisher drives it, with
// no Docker and no runner: the all-in-one binary runs only the ledger, on its embedded NATS
// and embedded FerretDB (SQLite), and the benchmark plays the edge and the runner over
// NATS. One job is a ledger.reserve followed by its succeeded result on the results stream,
// which the ledger's billing consumer charges. It reports the reserve latency of one client
// at ~1,000 and ~50,000 wallet entries, the sustained end-to-end rate of 16 drivers with the
// consumer's backlog and the CPU per job, and the charge rate of a burst of results. It
// ends by proving the money: every balance is the free credit minus the prices reserved,
// and ledger-check finds every chain consistent (and counts the entries the run made).
//
// On a slow ledger the run stays within about 15 minutes: the burst is sized to a minute
// of the sustained rate (burst-jobs), and the fill towards 50,000 entries stops at its time
// limit; entries@final says where the second latency was then measured.
//
// One run is the measurement: run it with -benchtime 1x (make bench does).
// CODEEXEC_BENCH_LEDGER_SECONDS sets the sustained window (default 60);
// CODEEXEC_BENCH_LEDGER_PROFILE=file writes a CPU profile of the all-in-one over it.
func BenchmarkLedgerCapacity(b *testing.B) {
	ctx, runStart := b.Context(), time.Now()
	window := sustainedWindow(b)
	dataDir := b.TempDir()
	aio := startLedgerOnly(b, dataDir)
	d := newLedgerDriver(b, ctx, natsOf(b, aio.natsURL))
	b.ReportMetric(0, "ns/op") // the run's length says nothing: the metrics below do

	d.fillTo(b, ctx, firstLatencyEntries, runStart.Add(largeFillEndsBy))
	b.ReportMetric(float64(d.entries()), "entries@1k")
	p50at1k, p99at1k := d.reserveLatency(b, ctx, latencySamples)
	b.ReportMetric(ms(p50at1k), "reserve-p50-ms@1k")
	b.ReportMetric(ms(p99at1k), "reserve-p99-ms@1k")

	e2eRate := d.sustain(b, ctx, aio, window)
	d.waitDrained(b, ctx, "the sustained phase's backlog drains")

	d.chargeBurst(b, ctx, int(min(max(e2eRate*burstSeconds, minBurstJobs), maxBurstJobs)))

	reached := d.fillTo(b, ctx, finalLatencyEntries, earlier(time.Now().Add(largeFillTimeCap), runStart.Add(largeFillEndsBy)))
	b.ReportMetric(float64(reached), "entries@final")
	p50at50k, p99at50k := d.reserveLatency(b, ctx, latencySamples)
	b.ReportMetric(ms(p50at50k), "reserve-p50-ms@50k")
	b.ReportMetric(ms(p99at50k), "reserve-p99-ms@50k")
	b.ReportMetric(float64(p50at50k)/float64(p50at1k), "reserve-p50-ratio-50k/1k")

	d.waitDrained(b, ctx, "every result is settled")
	d.checkBalances(b, ctx)
	if err := aio.stop(time.Minute); err != nil {
		b.Fatal(err)
	}
	checkLedgerChains(b, ctx, dataDir, d.entries())
}

func sustainedWindow(b *testing.B) time.Duration {
	v := os.Getenv("CODEEXEC_BENCH_LEDGER_SECONDS")
	if v == "" {
		return defaultSustainedWindow
	}
	secs, err := strconv.Atoi(v)
	if err != nil || secs < 1 {
		b.Fatalf("CODEEXEC_BENCH_LEDGER_SECONDS %q: want a whole number of seconds, at least 1", v)
	}
	return time.Duration(secs) * time.Second
}

// builtBinary is a Go command built once per test binary.
type builtBinary struct {
	pkg  string
	once sync.Once
	path string
	err  error
}

var (
	allInOneBinary    = &builtBinary{pkg: "github.com/codeexec/codeexec/deploy/cmd/codeexec"}
	ledgerCheckBinary = &builtBinary{pkg: "github.com/codeexec/codeexec/ledger/cmd/ledger-check"}
)

func (bb *builtBinary) build(t testing.TB) string {
	t.Helper()
	bb.once.Do(func() {
		dir, err := os.MkdirTemp("", "codeexec-bench-bin-")
		if err != nil {
			bb.err = err
			return
		}
		bb.path = filepath.Join(dir, filepath.Base(bb.pkg))
		if out, err := exec.Command("go", "build", "-o", bb.path, bb.pkg).CombinedOutput(); err != nil {
			bb.err = &buildError{out: string(out), err: err}
		}
	})
	if bb.err != nil {
		t.Fatalf("go build %s: %v", bb.pkg, bb.err)
	}
	return bb.path
}

// environWithout returns the process's environment without the variables starting with prefix.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// allInOneProc is the all-in-one binary running as a subprocess.
type allInOneProc struct {
	cmd        *exec.Cmd
	logs       *procLog
	natsURL    string
	metricsURL string // its metrics listener, which also serves Go's profiles
	exited     chan struct{}
	err        error // of Wait, once exited is closed
}

// profileSustained writes a CPU profile of the all-in-one over most of the sustained
// window to the file CODEEXEC_BENCH_LEDGER_PROFILE names, when it is set; the returned
// func waits for it.
func (p *allInOneProc) profileSustained(b *testing.B, window time.Duration) (wait func()) {
	path := os.Getenv("CODEEXEC_BENCH_LEDGER_PROFILE")
	if path == "" {
		return func() {}
	}
	seconds := max(int((window-2*time.Second)/time.Second), 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.metricsURL, seconds))
		if err != nil {
			b.Errorf("profile the all-in-one: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			b.Errorf("profile the all-in-one: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			b.Errorf("profile the all-in-one: %v", err)
			return
		}
		b.Logf("CPU profile of the all-in-one over %d s of the sustained phase: %s", seconds, path)
	}()
	return func() { <-done }
}

// startLedgerOnly starts the all-in-one running only the ledger on dataDir, with its NATS
// on a free loopback port, and waits until the ledger answers.
func startLedgerOnly(b *testing.B, dataDir string) *allInOneProc {
	b.Helper()
	bin := allInOneBinary.build(b)
	natsAddr, metricsAddr := freeLoopbackAddr(b), freeLoopbackAddr(b)
	cmd := exec.Command(bin)
	cmd.Env = append(environWithout("CODEEXEC_"),
		"CODEEXEC_SERVICES=ledger",
		"CODEEXEC_DATA_DIR="+dataDir,
		"CODEEXEC_NATS_LISTEN="+natsAddr,
		"CODEEXEC_METRICS_ADDR="+metricsAddr,
		"CODEEXEC_PPROF=1",
		"CODEEXEC_FREE_CREDIT_MICROS="+strconv.FormatInt(benchFreeCredit, 10),
		"CODEEXEC_LEDGER_HOLD_TTL=24h", // a slow drain must not let the sweeper release holds
		"CODEEXEC_LOG_LEVEL=warn",
	)
	p := &allInOneProc{cmd: cmd, logs: &procLog{}, natsURL: "nats://" + natsAddr,
		metricsURL: "http://" + metricsAddr, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the all-in-one: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	b.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if b.Failed() {
			b.Logf("all-in-one logs:\n%s", p.logs.String())
		}
	})
	waitfor.Eventually(b, 2*time.Minute, "the all-in-one's NATS accepts clients", func() (bool, error) {
		if err := p.exitError(); err != nil {
			return false, err
		}
		c, err := net.DialTimeout("tcp", natsAddr, time.Second)
		if err != nil {
			return false, nil
		}
		return true, c.Close()
	})
	nc, err := nats.Connect(p.natsURL)
	if err != nil {
		b.Fatalf("connect to the all-in-one's NATS: %v", err)
	}
	defer nc.Close()
	waitfor.Eventually(b, 2*time.Minute, "the ledger answers "+subjects.Wallet, func() (bool, error) {
		if err := p.exitError(); err != nil {
			return false, err
		}
		// A request for no user is refused (invalid_input) and writes nothing: a refusal
		// is an answer.
		_, err := rpc.CallWithin[messages.WalletRequest, messages.WalletReply](context.Background(), nc,
			subjects.Wallet, messages.WalletRequest{V: messages.Version}, time.Second)
		var refusal *rpc.Error
		return errors.As(err, &refusal) || err == nil, nil
	})
	return p
}

// freeLoopbackAddr returns a loopback address whose port was free a moment ago.
func freeLoopbackAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// exitError is an error once the process has exited, nil while it runs.
func (p *allInOneProc) exitError() error {
	select {
	case <-p.exited:
		return fmt.Errorf("the all-in-one exited (%v); logs:\n%s", p.err, p.logs.String())
	default:
		return nil
	}
}

// cpuTime is the CPU (user and system) the process has used, from /proc/<pid>/stat.
func (p *allInOneProc) cpuTime() (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read the all-in-one's CPU time: %w", err)
	}
	// The command name (2nd field) may hold spaces: count the fields after its ')'.
	_, rest, ok := strings.Cut(string(raw), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return 0, fmt.Errorf("read the all-in-one's CPU time: unexpected /proc stat %q", raw)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15 of stat
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read the all-in-one's CPU time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}

// stop sends SIGTERM and waits for a clean exit.
func (p *allInOneProc) stop(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the all-in-one: %w", err)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		return fmt.Errorf("the all-in-one still runs %s after SIGTERM", timeout)
	}
	if p.err != nil {
		return fmt.Errorf("the all-in-one exited after SIGTERM with %w; logs:\n%s", p.err, p.logs.String())
	}
	return nil
}

// driverCPUTime is the CPU (user and system) this process has used.
func driverCPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// benchJob is a job whose hold the ledger granted.
type benchJob struct {
	id          string
	user        int // index in ledgerDriver.users
	priceMicros int64
}

// ledgerDriver plays the edge (reserve) and the runner (result) for many users.
type ledgerDriver struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	charges jetstream.Consumer
	users   []string
	spent   []atomic.Int64 // per user: the prices of its granted reserves
	runTag  string         // makes this run's job ids unique
	nextJob atomic.Int64
	// published counts the jobs whose result the stream acknowledged.
	published atomic.Int64
}

// newLedgerDriver opens benchUsers wallets and finds the ledger's charges consumer.
func newLedgerDriver(b *testing.B, ctx context.Context, js jetstream.JetStream) *ledgerDriver {
	b.Helper()
	tag := make([]byte, 4)
	_, _ = rand.Read(tag)
	d := &ledgerDriver{nc: js.Conn(), js: js, spent: make([]atomic.Int64, benchUsers), runTag: hex.EncodeToString(tag)}
	for i := range benchUsers {
		user := fmt.Sprintf("bench-user-%03d", i)
		w, err := rpc.Call[messages.OpenWalletRequest, messages.WalletReply](ctx, d.nc, subjects.WalletOpen,
			messages.OpenWalletRequest{V: messages.Version, UserID: user})
		if err != nil {
			b.Fatalf("open the wallet of %s: %v", user, err)
		}
		if w.BalanceMicros != benchFreeCredit {
			b.Fatalf("new wallet of %s: got balance %d, want the free credit %d", user, w.BalanceMicros, benchFreeCredit)
		}
		d.users = append(d.users, user)
	}
	waitfor.Eventually(b, time.Minute, "the ledger's charges consumer exists", func() (bool, error) {
		c, err := js.Consumer(ctx, subjects.ResultsStream, subjects.ChargesConsumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false, nil
		}
		d.charges = c
		return err == nil, err
	})
	return d
}

// entries is the number of wallet entries once every published result is settled: one
// signup per user, a hold and a charge per job.
func (d *ledgerDriver) entries() int64 { return int64(len(d.users)) + 2*d.published.Load() }

// reserve asks the ledger to hold the price of a new job of the next user.
func (d *ledgerDriver) reserve(ctx context.Context) (benchJob, error) {
	n := d.nextJob.Add(1)
	j := benchJob{id: fmt.Sprintf("bench-%s-%07d", d.runTag, n), user: int(n % int64(len(d.users)))}
	req := messages.ReserveRequest{V: messages.Version, UserID: d.users[j.user], JobID: j.id, Language: benchLanguage}
	var reply messages.ReserveReply
	var err error
	// A reserve that failed without a refusal may have held: asking again for the same job
	// returns its hold (reserve is idempotent per job), so the money stays known.
	for range 3 {
		reply, err = rpc.Call[messages.ReserveRequest, messages.ReserveReply](ctx, d.nc, subjects.Reserve, req)
		if !errors.Is(err, rpc.ErrTimeout) && !rpc.IsCode(err, rpc.CodeInternal) && !rpc.IsCode(err, rpc.CodeShuttingDown) {
			break
		}
	}
	if err != nil {
		return j, fmt.Errorf("reserve job %s of %s: %w", j.id, req.UserID, err)
	}
	j.priceMicros = reply.PriceMicros
	d.spent[j.user].Add(reply.PriceMicros)
	return j, nil
}

// result is what a runner publishes for j once its program succeeded.
func (d *ledgerDriver) result(j benchJob) ([]byte, error) {
	exit := 0
	finished := time.Now().UTC()
	data, err := json.Marshal(messages.Result{
		V: messages.Version, JobID: j.id, UserID: d.users[j.user], Language: benchLanguage, Region: "local",
		RunnerID: "bench-driver", Status: messages.StatusSucceeded, Stdout: "hello world\n", ExitCode: &exit,
		WallTimeMs: 20, CPUTimeMs: 15, MemoryBytes: 8 << 20, PriceMicros: j.priceMicros, Attempt: 1,
		StartedAt: finished.Add(-20 * time.Millisecond), FinishedAt: finished,
	})
	if err != nil {
		return nil, fmt.Errorf("encode the result of %s: %w", j.id, err)
	}
	return data, nil
}

// publishResult stores j's result on the results stream, once (by its msg id).
func (d *ledgerDriver) publishResult(ctx context.Context, j benchJob) error {
	data, err := d.result(j)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := d.js.Publish(ctx, subjects.Results(j.id), data, jetstream.WithMsgID(subjects.ResultMsgID(j.id))); err != nil {
		return fmt.Errorf("publish the result of %s: %w", j.id, err)
	}
	d.published.Add(1)
	return nil
}

// runJob reserves a job and publishes its result.
func (d *ledgerDriver) runJob(ctx context.Context) error {
	j, err := d.reserve(ctx)
	if err != nil {
		return err
	}
	return d.publishResult(ctx, j)
}

// drive calls job on workers goroutines while more reports true, and returns the first
// error (which stops the others).
func drive(ctx context.Context, workers int, more func() bool, job func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && more() {
				if err := job(ctx); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// backlog is the number of results the ledger has not settled yet: not delivered to it, or
// delivered and not acknowledged.
func (d *ledgerDriver) backlog(ctx context.Context) (int64, error) {
	info, err := d.charges.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the charges consumer: %w", err)
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}

// waitDrained waits until the ledger has settled every result published, logging the
// backlog as it goes.
func (d *ledgerDriver) waitDrained(b *testing.B, ctx context.Context, what string) {
	b.Helper()
	lastLog := time.Now()
	waitfor.Eventually(b, drainTimeout, what, func() (bool, error) {
		n, err := d.backlog(ctx)
		if err == nil && n > 0 && time.Since(lastLog) > 10*time.Second {
			b.Logf("draining: %d results to settle", n)
			lastLog = time.Now()
		}
		return n == 0, err
	})
}

// watchBacklog reads the backlog every interval into the returned value, calling each(n)
// after each read, until the returned stop is called.
func (d *ledgerDriver) watchBacklog(ctx context.Context, interval time.Duration, each func(int64)) (*atomic.Int64, func()) {
	var last atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if n, err := d.backlog(ctx); err == nil {
					last.Store(n)
					each(n)
				}
			}
		}
	}()
	return &last, func() { cancel(); <-done }
}

// fillTo runs jobs on driverWorkers goroutines until the entries will number target, or
// until deadline, holding the drivers while the backlog exceeds fillMaxBacklog; then it
// waits for the backlog to drain. It returns the entries reached.
func (d *ledgerDriver) fillTo(b *testing.B, ctx context.Context, target int64, deadline time.Time) int64 {
	b.Helper()
	start, startEntries := time.Now(), d.entries()
	lastLog := start
	var mu sync.Mutex
	updated := make(chan struct{}) // closed and made again at each reading of the backlog
	backlog, stopWatch := d.watchBacklog(ctx, 250*time.Millisecond, func(n int64) {
		mu.Lock()
		close(updated)
		updated = make(chan struct{})
		mu.Unlock()
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			settledEntries := d.entries() - 2*n
			b.Logf("fill: %d entries settled (%.1f jobs/s), backlog %d, %s left",
				settledEntries, float64(settledEntries-startEntries)/2/time.Since(start).Seconds(), n,
				time.Until(deadline).Round(time.Second))
		}
	})
	more := func() bool {
		for backlog.Load() > fillMaxBacklog && time.Now().Before(deadline) && ctx.Err() == nil {
			mu.Lock()
			next := updated
			mu.Unlock()
			select { // the next reading of the backlog
			case <-next:
			case <-ctx.Done():
			case <-time.After(time.Until(deadline)):
			}
		}
		return d.entries() < target && time.Now().Before(deadline)
	}
	err := drive(ctx, driverWorkers, more, d.runJob)
	stopWatch()
	if err != nil {
		b.Fatalf("fill to %d entries: %v", target, err)
	}
	d.waitDrained(b, ctx, fmt.Sprintf("the fill to %d entries drains", target))
	reached := d.entries()
	if reached < target {
		b.Logf("fill stopped at its time limit: %d entries of %d", reached, target)
	}
	b.Logf("fill: %d entries in %s", reached, time.Since(start).Round(time.Second))
	return reached
}

// reserveLatency times n reserves made one after the other by one client, each followed
// (untimed) by its result, and returns the median and the 99th percentile.
func (d *ledgerDriver) reserveLatency(b *testing.B, ctx context.Context, n int) (p50, p99 time.Duration) {
	b.Helper()
	startEntries := d.entries()
	latencies := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		j, err := d.reserve(ctx)
		latencies = append(latencies, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if err := d.publishResult(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(latencies)
	p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
	b.Logf("reserve latency from %d entries: p50 %s, p99 %s", startEntries, p50, p99)
	return p50, p99
}

// percentile of sorted durations, by the nearest rank below.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p*float64(len(sorted)-1))]
}

// sustain runs jobs on driverWorkers goroutines for window, reports the rates, the backlog
// and the CPU per job, and returns the end-to-end rate (jobs settled per second).
func (d *ledgerDriver) sustain(b *testing.B, ctx context.Context, aio *allInOneProc, window time.Duration) float64 {
	b.Helper()
	backlogStart, err := d.backlog(ctx)
	if err != nil {
		b.Fatal(err)
	}
	aioCPUStart, err := aio.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	driverCPUStart, err := driverCPUTime()
	if err != nil {
		b.Fatal(err)
	}
	publishedStart, start := d.published.Load(), time.Now()
	b.Logf("sustained: %d drivers for %s from %d entries, backlog %d", driverWorkers, window, d.entries(), backlogStart)
	_, stopWatch := d.watchBacklog(ctx, backlogLogEvery, func(n int64) {
		b.Logf("sustained: %s in, %d results published, backlog %d",
			time.Since(start).Round(time.Second), d.published.Load()-publishedStart, n)
	})
	profiled := aio.profileSustained(b, window)
	end := start.Add(window)
	err = drive(ctx, driverWorkers, func() bool { return time.Now().Before(end) }, d.runJob)
	stopWatch()
	profiled()
	if err != nil {
		b.Fatalf("sustained phase: %v", err)
	}
	elapsed := time.Since(start) // the window and the jobs in flight at its end
	backlogEnd, err := d.backlog(ctx)
	if err != nil {
		b.Fatal(err)
	}
	aioCPUEnd, err := aio.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	driverCPUEnd, err := driverCPUTime()
	if err != nil {
		b.Fatal(err)
	}
	published := d.published.Load() - publishedStart
	settled := published - (backlogEnd - backlogStart)
	b.Logf("sustained: %d published, %d settled in %s, backlog %d → %d",
		published, settled, elapsed.Round(time.Millisecond), backlogStart, backlogEnd)
	secs := elapsed.Seconds()
	e2eRate := float64(settled) / secs
	b.ReportMetric(e2eRate, "e2e-jobs/s")
	b.ReportMetric(float64(published)/secs, "published-jobs/s")
	b.ReportMetric(float64(backlogStart), "backlog-start")
	b.ReportMetric(float64(backlogEnd), "backlog-end")
	b.ReportMetric(float64(backlogEnd-backlogStart)/secs, "backlog-growth/s")
	if settled > 0 {
		b.ReportMetric(ms(aioCPUEnd-aioCPUStart)/float64(settled), "aio-cpu-ms/job")
	}
	if published > 0 {
		b.ReportMetric(ms(driverCPUEnd-driverCPUStart)/float64(published), "driver-cpu-ms/job")
	}
	return e2eRate
}

// chargeBurst reserves n jobs, then publishes all their results at once and reports how
// fast the ledger charges them (from the first publish until the backlog is 0).
func (d *ledgerDriver) chargeBurst(b *testing.B, ctx context.Context, n int) {
	b.Helper()
	jobs := make(chan benchJob, n)
	var claimed atomic.Int64
	err := drive(ctx, driverWorkers, func() bool { return claimed.Add(1) <= int64(n) }, func(ctx context.Context) error {
		j, err := d.reserve(ctx)
		if err == nil {
			jobs <- j
		}
		return err
	})
	if err != nil {
		b.Fatalf("reserve the burst's jobs: %v", err)
	}
	close(jobs)
	b.Logf("charges: %d jobs reserved; publishing their results at once", len(jobs))

	start := time.Now()
	var futures []jetstream.PubAckFuture
	for j := range jobs {
		data, err := d.result(j)
		if err != nil {
			b.Fatal(err)
		}
		f, err := d.js.PublishAsync(subjects.Results(j.id), data, jetstream.WithMsgID(subjects.ResultMsgID(j.id)))
		if err != nil {
			b.Fatalf("publish the result of %s: %v", j.id, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatalf("publish the result of %s: %v", subjects.JobIDFromResult(f.Msg().Subject), err)
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
	}
	d.published.Add(int64(len(futures)))
	published := time.Since(start)
	d.waitDrained(b, ctx, "the burst is charged")
	elapsed := time.Since(start)
	b.Logf("charges: %d results published in %s, all charged in %s", len(futures),
		published.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	b.ReportMetric(float64(len(futures)), "burst-jobs")
	b.ReportMetric(float64(len(futures))/elapsed.Seconds(), "charges/s")
}

// checkBalances asks the ledger for every wallet: each must be the free credit minus the
// prices of its reserves, all charged, none held.
func (d *ledgerDriver) checkBalances(b *testing.B, ctx context.Context) {
	b.Helper()
	for i, user := range d.users {
		w, err := rpc.Call[messages.WalletRequest, messages.WalletReply](ctx, d.nc, subjects.Wallet,
			messages.WalletRequest{V: messages.Version, UserID: user})
		if err != nil {
			b.Fatalf("wallet of %s: %v", user, err)
		}
		want := benchFreeCredit - d.spent[i].Load()
		if w.BalanceMicros != want || w.HeldMicros != 0 {
			b.Errorf("wallet of %s: got balance %d held %d, want %d held 0", user, w.BalanceMicros, w.HeldMicros, want)
		}
	}
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("balances: all %d wallets are the free credit minus their reserves", len(d.users))
}

// checkLedgerChains runs ledger-check over the stopped all-in-one's database (its embedded
// FerretDB started again on dataDir) and fails unless every chain is consistent and the
// chains hold wantEntries entries in all.
func checkLedgerChains(b *testing.B, ctx context.Context, dataDir string, wantEntries int64) {
	b.Helper()
	bin := ledgerCheckBinary.build(b)
	m, err := embedded.StartMongo(ctx, dataDir, nil)
	if err != nil {
		b.Fatalf("start FerretDB over the all-in-one's data: %v", err)
	}
	defer m.Shutdown()
	cmd := exec.CommandContext(ctx, bin, "-v")
	// The all-in-one and ledger-check both use the default database name.
	cmd.Env = append(environWithout("CODEEXEC_"), "CODEEXEC_MONGO_URI="+m.URI)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("ledger-check: %v\n%s", err, out)
	}
	var entries int64
	var last string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		last = sc.Text()
		for _, field := range strings.Fields(last) {
			if v, ok := strings.CutPrefix(field, "entries="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					b.Fatalf("ledger-check line %q: %v", last, err)
				}
				entries += n
			}
		}
	}
	b.Logf("ledger-check: %s; %d entries", last, entries)
	if entries != wantEntries {
		b.Fatalf("ledger-check counted %d entries, want %d (a signup per user, a hold and a charge per job)", entries, wantEntries)
	}
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
