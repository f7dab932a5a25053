package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codeexec/codeexec/ledger"
	"github.com/codeexec/codeexec/ledger/internal/records"
	"github.com/codeexec/codeexec/ledger/internal/testenv"
	"github.com/codeexec/codeexec/ledger/internal/wallet"
	"github.com/codeexec/codeexec/shared/embedded/embeddedtest"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const price = 10_000

func testConfig(credit int64) ledger.Config {
	return ledger.Config{
		Region:           "local",
		FreeCreditMicros: credit,
		PriceMicros:      price,
		LanguagePrices:   map[string]int64{"java": 2 * price},
		SweepInterval:    time.Hour,
		NakDelay:         200 * time.Millisecond,
	}
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("LEDGER_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// start runs a ledger Service until the returned stop is called (or the test ends).
func start(t *testing.T, cfg ledger.Config, nc *nats.Conn, db *mongo.Database, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	svc, err := ledger.New(cfg, nc, db, reg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("ledger Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("ledger Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	waitServing(t, nc)
	return stop
}

func waitServing(t *testing.T, nc *nats.Conn) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "ledger answering", func() (bool, error) {
		_, err := rpc.Call[messages.WalletRequest, messages.WalletReply](t.Context(), nc, subjects.Wallet,
			messages.WalletRequest{V: messages.Version, UserID: "probe"})
		return err == nil, nil
	})
}

func reserve(ctx context.Context, nc *nats.Conn, user, job, lang string) (messages.ReserveReply, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return rpc.Call[messages.ReserveRequest, messages.ReserveReply](ctx, nc, subjects.Reserve,
		messages.ReserveRequest{V: messages.Version, UserID: user, JobID: job, Language: lang})
}

// openWallets opens users' wallets as accounts does at registration.
func openWallets(t *testing.T, nc *nats.Conn, users ...string) {
	t.Helper()
	for _, u := range users {
		if _, err := rpc.Call[messages.OpenWalletRequest, messages.WalletReply](t.Context(), nc, subjects.WalletOpen,
			messages.OpenWalletRequest{V: messages.Version, UserID: u}); err != nil {
			t.Fatalf("open wallet of %s: %v", u, err)
		}
	}
}

func walletOf(t *testing.T, nc *nats.Conn, user string) messages.WalletReply {
	t.Helper()
	w, err := rpc.Call[messages.WalletRequest, messages.WalletReply](t.Context(), nc, subjects.Wallet,
		messages.WalletRequest{V: messages.Version, UserID: user})
	if err != nil {
		t.Fatalf("wallet of %s: %v", user, err)
	}
	return w
}

func verify(t *testing.T, db *mongo.Database, user string) wallet.Summary {
	t.Helper()
	sum, err := wallet.NewStore(db, wallet.Options{}).Verify(t.Context(), user)
	if err != nil {
		t.Fatalf("verify %s: %v", user, err)
	}
	return sum
}

func result(user, job string, status messages.Status) messages.Result {
	exit := 0
	return messages.Result{V: messages.Version, JobID: job, UserID: user, Language: "python", Region: "local",
		RunnerID: "runner-1", Status: status, ExitCode: &exit, Stdout: "hi\n", WallTimeMs: 42, CPUTimeMs: 31,
		MemoryBytes: 9 << 20, PriceMicros: price, SaveMetric: true,
		Files: []messages.File{{Filename: "main.py", Code: "print('hi')", IsEntryPoint: true}}}
}

func publish(t *testing.T, js jetstream.JetStream, res messages.Result, msgID string) {
	t.Helper()
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), subjects.Results(res.JobID), data, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatalf("publish result of %s: %v", res.JobID, err)
	}
}

// waitSettled waits until the charges consumer has nothing pending or unacked and n
// execution records exist.
func waitSettled(t *testing.T, js jetstream.JetStream, db *mongo.Database, n int64) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d results settled", n), func() (bool, error) {
		got, err := db.Collection(records.Collection).CountDocuments(t.Context(), bson.D{})
		if err != nil || got < n {
			return false, err
		}
		cons, err := js.Consumer(t.Context(), subjects.ResultsStream, subjects.ChargesConsumer)
		if err != nil {
			return false, err
		}
		info, err := cons.Info(t.Context())
		if err != nil {
			return false, err
		}
		return info.NumPending == 0 && info.NumAckPending == 0, nil
	})
}

// A wallet that holds exactly N executions, 4N concurrent reserves over NATS, answered by
// two ledger processes on one database: exactly N succeed, the balance ends at zero and
// never went below.
func TestConcurrentReservesNeverOverspend(t *testing.T) {
	const n = 10
	srv, nc, _ := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	cfg := testConfig(n * price)
	start(t, cfg, embeddedtest.Connect(t, srv, "ledger-a"), db, prometheus.NewRegistry())
	start(t, cfg, embeddedtest.Connect(t, srv, "ledger-b"), db, prometheus.NewRegistry())

	if _, err := rpc.Call[messages.OpenWalletRequest, messages.WalletReply](t.Context(), nc, subjects.WalletOpen,
		messages.OpenWalletRequest{V: messages.Version, UserID: "alice"}); err != nil {
		t.Fatal(err)
	}
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for i := range 4 * n {
		wg.Go(func() {
			_, err := reserve(t.Context(), nc, "alice", fmt.Sprintf("job-%02d", i), "python")
			switch {
			case err == nil:
				ok.Add(1)
			case rpc.IsCode(err, rpc.CodeInsufficientFunds):
				refused.Add(1)
			default:
				t.Errorf("reserve %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d concurrent reserves over 2 ledgers: %d ok, %d insufficient_funds in %s", 4*n, ok.Load(), refused.Load(), time.Since(began))
	if ok.Load() != n || refused.Load() != 3*n {
		t.Fatalf("got %d ok and %d refused, want %d and %d", ok.Load(), refused.Load(), n, 3*n)
	}
	w := walletOf(t, nc, "alice")
	if w.BalanceMicros != 0 || w.HeldMicros != n*price {
		t.Fatalf("wallet: got balance %d held %d, want 0 and %d", w.BalanceMicros, w.HeldMicros, n*price)
	}
	es, err := wallet.NewStore(db, wallet.Options{}).Entries(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.AvailableMicros < 0 {
			t.Fatalf("entry %s: available %d below zero", e.ID, e.AvailableMicros)
		}
	}
	if len(es) != n+1 {
		t.Fatalf("entries: got %d, want the signup credit and %d holds", len(es), n)
	}
	verify(t, db, "alice")

	// A repeated reserve of a held job is the same hold, even with nothing left.
	if r, err := reserve(t.Context(), nc, "alice", "job-00", "python"); err == nil && r.PriceMicros != price {
		t.Fatalf("repeated reserve: got price %d, want %d", r.PriceMicros, price)
	}
}

// Reserve is the publisher's reservation and the runner's pre-run check: an open hold
// comes back as it is with the time it has left on the ledger's clock; a closed one, a
// user with no wallet and someone else's job are refused, and nothing is written.
func TestReserve(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := newManualClock(t0)
	srv, nc, _ := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	cfg := testConfig(2 * price)
	cfg.HoldTTL = 15 * time.Minute
	cfg.Now = clock.Now
	start(t, cfg, embeddedtest.Connect(t, srv, "ledger"), db, prometheus.NewRegistry())
	store := wallet.NewStore(db, wallet.Options{Now: cfg.Now}) // another ledger process
	at := func(d time.Duration) { clock.Set(t0.Add(d)) }
	held := func(t *testing.T, user, job string) {
		t.Helper()
		if _, err := reserve(t.Context(), nc, user, job, "python"); err != nil {
			t.Fatalf("reserve %s for %s: %v", job, user, err)
		}
	}
	closed := func(t *testing.T, user, job string, charge bool) {
		t.Helper()
		if _, err := store.Close(t.Context(), job, user, charge, price, wallet.ReasonResult); err != nil {
			t.Fatalf("close %s: %v", job, err)
		}
	}
	tests := []struct {
		name          string
		user          string
		setup         func(t *testing.T, user, job string)
		now           time.Duration // the ledger's clock when reserve is asked again
		wantCode      string        // "": the job's hold
		wantRemaining time.Duration
		wantBalance   int64
	}{
		{name: "new hold", user: "u-new", setup: func(*testing.T, string, string) {}, wantRemaining: 15 * time.Minute, wantBalance: price},
		{name: "open hold as it is", user: "u-open", setup: held, now: 5 * time.Minute,
			wantRemaining: 10 * time.Minute, wantBalance: price},
		{name: "open hold past its TTL, not swept yet", user: "u-late", setup: held, now: 20 * time.Minute, wantBalance: price},
		{name: "no wallet", user: "u-ghost", setup: func(*testing.T, string, string) {}, wantCode: rpc.CodeNotFound},
		{name: "someone else's job", user: "u-other", setup: func(t *testing.T, _, job string) { held(t, "u-owner", job) },
			wantCode: rpc.CodeConflict},
		{name: "charged", user: "u-charged", setup: func(t *testing.T, u, job string) { held(t, u, job); closed(t, u, job, true) },
			wantCode: rpc.CodeHoldClosed},
		{name: "released", user: "u-released", setup: func(t *testing.T, u, job string) { held(t, u, job); closed(t, u, job, false) },
			wantCode: rpc.CodeHoldClosed},
		{name: "expired", user: "u-expired", setup: func(t *testing.T, u, job string) {
			at(-time.Hour) // older than the other cases' holds, so the sweep takes it alone
			held(t, u, job)
			if n, err := store.ExpireHolds(t.Context(), t0.Add(-time.Minute)); err != nil || n != 1 {
				t.Fatalf("expire: %d %v", n, err)
			}
		}, wantCode: rpc.CodeHoldClosed},
		{name: "charged without a hold", user: "u-direct", setup: func(t *testing.T, u, job string) { closed(t, u, job, true) },
			wantCode: rpc.CodeHoldClosed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := fmt.Sprintf("job-%d", i)
			at(0)
			if tt.user != "u-ghost" {
				openWallets(t, nc, tt.user, "u-owner")
			}
			tt.setup(t, tt.user, job)
			at(tt.now)
			before, err := store.Entries(t.Context(), tt.user)
			if err != nil {
				t.Fatal(err)
			}
			r, err := reserve(t.Context(), nc, tt.user, job, "python")
			if tt.wantCode != "" {
				if !rpc.IsCode(err, tt.wantCode) {
					t.Fatalf("reserve: got %v, want %s", err, tt.wantCode)
				}
				if after, err := store.Entries(t.Context(), tt.user); err != nil || len(after) != len(before) {
					t.Fatalf("refused reserve: %d entries before, %d after (%v)", len(before), len(after), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("reserve: %v", err)
			}
			want := messages.ReserveReply{V: messages.Version, PriceMicros: price, BalanceMicros: tt.wantBalance,
				HoldRemainingMs: tt.wantRemaining.Milliseconds()}
			if r != want {
				t.Fatalf("reserve: got %+v, want %+v", r, want)
			}
			if sum := verify(t, db, tt.user); sum.HeldMicros != price {
				t.Fatalf("held: got %d, want one hold of %d", sum.HeldMicros, price)
			}
		})
	}
	_, err := reserve(t.Context(), nc, "u-ghost", "job-x", "python")
	if e := (*rpc.Error)(nil); !errors.As(err, &e) || e.Message != "no wallet for this user" {
		t.Fatalf("reserve with no wallet: got %v, want the message %q", err, "no wallet for this user")
	}
	if n, err := store.OpenHolds(t.Context()); err != nil || n != 4 {
		t.Fatalf("open holds: got %d (%v), want 4 (new, open, late and the owner's)", n, err)
	}
}

// Measures one reserve round trip (NATS request, ledger, FerretDB) with a warm wallet.
func TestReserveLatency(t *testing.T) {
	const n = 50
	srv, nc, _ := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	start(t, testConfig(100*price), embeddedtest.Connect(t, srv, "ledger"), db, prometheus.NewRegistry())
	walletOf(t, nc, "lat")
	began := time.Now()
	for i := range n {
		r, err := reserve(t.Context(), nc, "lat", fmt.Sprintf("lat-%d", i), "java")
		if err != nil {
			t.Fatal(err)
		}
		if r.PriceMicros != 2*price {
			t.Fatalf("java price: got %d, want %d", r.PriceMicros, 2*price)
		}
	}
	t.Logf("reserve round trip on FerretDB: %s average over %d", time.Since(began)/n, n)
	verify(t, db, "lat")
}

// Results published several times (new Nats-Msg-Ids defeat the stream's dedupe), a ledger
// restart in the middle, a second ledger joining: one charge per job, internal errors
// released, one record per job.
func TestChargesExactlyOnceAcrossReplaysAndRestarts(t *testing.T) {
	const jobs = 20
	srv, nc, js := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(jobs * price)
	ledgerConn := embeddedtest.Connect(t, srv, "ledger-a")
	stop := start(t, cfg, ledgerConn, db, reg)
	openWallets(t, nc, "bob")

	status := func(i int) messages.Status {
		if i%5 == 0 {
			return messages.StatusInternalError
		}
		return []messages.Status{messages.StatusSucceeded, messages.StatusRuntimeError, messages.StatusTimeLimit, messages.StatusCompileError}[i%4]
	}
	for i := range jobs {
		if _, err := reserve(t.Context(), nc, "bob", fmt.Sprintf("job-%02d", i), "python"); err != nil {
			t.Fatal(err)
		}
	}
	var pub sync.WaitGroup
	pub.Go(func() {
		for round := range 3 {
			for i := range jobs {
				job := fmt.Sprintf("job-%02d", i)
				publish(t, js, result("bob", job, status(i)), fmt.Sprintf("res-%s-%d", job, round))
			}
		}
	})
	time.Sleep(50 * time.Millisecond)
	stop() // mid-stream
	stop = start(t, cfg, embeddedtest.Connect(t, srv, "ledger-a2"), db, reg)
	start(t, cfg, embeddedtest.Connect(t, srv, "ledger-b"), db, reg)
	pub.Wait()
	for i := range jobs { // and once more after everything
		job := fmt.Sprintf("job-%02d", i)
		publish(t, js, result("bob", job, status(i)), "late-"+job)
	}
	waitSettled(t, js, db, jobs)

	charged, released := 0, 0
	for i := range jobs {
		if status(i).Chargeable() {
			charged++
		} else {
			released++
		}
	}
	es, err := wallet.NewStore(db, wallet.Options{}).Entries(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	closes := map[string]int{}
	for _, e := range es {
		if e.Kind == wallet.KindCharge || e.Kind == wallet.KindRelease {
			closes[e.JobID]++
		}
	}
	for i := range jobs {
		if job := fmt.Sprintf("job-%02d", i); closes[job] != 1 {
			t.Errorf("%s: got %d close entries, want 1", job, closes[job])
		}
	}
	sum := verify(t, db, "bob")
	if want := int64(jobs*price - charged*price); sum.AvailableMicros != want || sum.HeldMicros != 0 {
		t.Fatalf("wallet: got available %d held %d, want %d and 0", sum.AvailableMicros, sum.HeldMicros, want)
	}
	if got := testutil.ToFloat64(metric(t, reg, "codeexec_ledger_revenue_micros_total")); got != float64(charged*price) {
		t.Errorf("revenue metric: got %v, want %d", got, charged*price)
	}
	if got := sumCounter(t, reg, "codeexec_ledger_charges_total"); got != float64(charged) {
		t.Errorf("charges metric: got %v, want %d", got, charged)
	}
	if got := sumCounter(t, reg, "codeexec_ledger_releases_total"); got != float64(released) {
		t.Errorf("releases metric: got %v, want %d", got, released)
	}
	rs := records.NewStore(db)
	for i := range jobs {
		r, ok, err := rs.Get(t.Context(), fmt.Sprintf("job-%02d", i))
		if err != nil || !ok {
			t.Fatalf("record of job %d: %v %v", i, ok, err)
		}
		want := int64(price)
		if !status(i).Chargeable() {
			want = 0
		}
		if r.PriceMicros != want || r.Status != status(i) || r.UserID != "bob" {
			t.Errorf("record %s: price %d status %s user %s, want %d %s bob", r.JobID, r.PriceMicros, r.Status, r.UserID, want, status(i))
		}
	}
}

func TestInternalErrorIsNotCharged(t *testing.T) {
	srv, nc, js := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	start(t, testConfig(price), embeddedtest.Connect(t, srv, "ledger"), db, prometheus.NewRegistry())
	openWallets(t, nc, "carol")

	if _, err := reserve(t.Context(), nc, "carol", "job-ie", "python"); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(t.Context(), nc, "carol", "job-2", "python"); !rpc.IsCode(err, rpc.CodeInsufficientFunds) {
		t.Fatalf("second reserve while the first holds everything: got %v, want insufficient_funds", err)
	}
	res := result("carol", "job-ie", messages.StatusInternalError)
	res.SaveMetric, res.Files, res.Stdout = false, nil, ""
	publish(t, js, res, "res-job-ie")
	waitSettled(t, js, db, 1)
	w := walletOf(t, nc, "carol")
	if w.BalanceMicros != price || w.HeldMicros != 0 {
		t.Fatalf("wallet: got balance %d held %d, want %d and 0", w.BalanceMicros, w.HeldMicros, price)
	}
	r, _, err := records.NewStore(db).Get(t.Context(), "job-ie")
	if err != nil || r.PriceMicros != 0 || r.Files != nil {
		t.Fatalf("record: %+v %v, want price 0 and no code (saveMetric false)", r, err)
	}
	verify(t, db, "carol")
}

// A ledger killed after it charged a job and before it wrote the job's record leaves the
// result unacked; when the result comes again, the next life writes the record and does
// not charge a second time.
func TestChargeWithoutItsRecordIsRecordedWhenTheResultComesAgain(t *testing.T) {
	srv, nc, js := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	start(t, testConfig(2*price), embeddedtest.Connect(t, srv, "ledger"), db, prometheus.NewRegistry())
	openWallets(t, nc, "erin")
	if _, err := reserve(t.Context(), nc, "erin", "job-cut", "python"); err != nil {
		t.Fatal(err)
	}
	// What the killed life got done: the charge, not the record.
	st, err := wallet.NewStore(db, wallet.Options{}).Close(t.Context(), "job-cut", "erin", true, price, wallet.ReasonResult)
	if err != nil || !st.Created {
		t.Fatalf("charge: %+v %v", st, err)
	}
	publish(t, js, result("erin", "job-cut", messages.StatusSucceeded), "res-job-cut")
	waitSettled(t, js, db, 1)
	r, ok, err := records.NewStore(db).Get(t.Context(), "job-cut")
	if err != nil || !ok || r.PriceMicros != price {
		t.Fatalf("record: %+v found %v %v, want one at the price charged", r, ok, err)
	}
	if w := walletOf(t, nc, "erin"); w.BalanceMicros != price || w.HeldMicros != 0 {
		t.Fatalf("wallet: got balance %d held %d, want %d (charged once) and 0", w.BalanceMicros, w.HeldMicros, price)
	}
	verify(t, db, "erin")
}

// A hold whose job never finishes is released after the TTL (on an injected clock); its
// late result then finds the job closed and charges nothing.
func TestExpiredHoldIsReleasedAndLateResultNotCharged(t *testing.T) {
	cfg := testConfig(3 * price)
	cfg.HoldTTL = 15 * time.Minute
	cfg.SweepInterval = 20 * time.Millisecond
	l := startClocked(t, cfg)
	openWallets(t, l.nc, "dave")

	if _, err := reserve(t.Context(), l.nc, "dave", "stuck", "python"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a few sweeps before the TTL: nothing released
	if w := walletOf(t, l.nc, "dave"); w.HeldMicros != price {
		t.Fatalf("held before the TTL: got %d, want %d", w.HeldMicros, price)
	}
	l.clock.Set(l.t0.Add(16 * time.Minute))
	testenv.Eventually(t, 10*time.Second, "hold released", func() (bool, error) {
		return walletOf(t, l.nc, "dave").HeldMicros == 0, nil
	})
	testenv.Eventually(t, 5*time.Second, "holds_expired_total 1", func() (bool, error) {
		return testutil.ToFloat64(metric(t, l.reg, "codeexec_ledger_holds_expired_total")) == 1, nil
	})
	publish(t, l.js, result("dave", "stuck", messages.StatusSucceeded), "res-stuck")
	waitSettled(t, l.js, l.db, 1)
	w := walletOf(t, l.nc, "dave")
	if w.BalanceMicros != 3*price || w.HeldMicros != 0 {
		t.Fatalf("wallet after the late result: got %d held %d, want %d and 0", w.BalanceMicros, w.HeldMicros, 3*price)
	}
	if r, _, _ := records.NewStore(l.db).Get(t.Context(), "stuck"); r.PriceMicros != 0 {
		t.Fatalf("record of the late result: price %d, want 0", r.PriceMicros)
	}
	if got := testutil.ToFloat64(metric(t, l.reg, "codeexec_ledger_holds_outstanding")); got != 0 {
		t.Fatalf("holds_outstanding: got %v, want 0", got)
	}
	verify(t, l.db, "dave")
}

// A job that ran with no hold (an internal publisher that did not reserve) pays what its
// wallet has, never more: a wallet holding less than the price ends at zero, never below,
// charged once though the result comes twice; the shortfall is counted as unpaid.
func TestResultWithoutReserveNeverGoesBelowZero(t *testing.T) {
	srv, nc, js := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	reg := prometheus.NewRegistry()
	start(t, testConfig(price), embeddedtest.Connect(t, srv, "ledger"), db, reg)
	openWallets(t, nc, "erin")
	// A poison message is terminated, not retried forever, and does not block the rest.
	if _, err := js.Publish(t.Context(), subjects.Results("garbage"), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	res := result("erin", "internal-1", messages.StatusSucceeded)
	res.PriceMicros = 25_000
	publish(t, js, res, "res-internal-1")
	publish(t, js, res, "again")
	// A user who has no wallet: nothing can be written, all of it is unpaid.
	publish(t, js, result("ghost", "internal-2", messages.StatusSucceeded), "res-internal-2")
	publish(t, js, result("ghost", "internal-2", messages.StatusSucceeded), "again-internal-2")
	waitSettled(t, js, db, 2)

	w := walletOf(t, nc, "erin")
	if w.BalanceMicros != 0 || w.HeldMicros != 0 {
		t.Fatalf("wallet: got balance %d held %d, want 0 and 0", w.BalanceMicros, w.HeldMicros)
	}
	es, err := wallet.NewStore(db, wallet.Options{}).Entries(t.Context(), "erin")
	if err != nil {
		t.Fatal(err)
	}
	charges := 0
	for _, e := range es {
		if e.AvailableMicros < 0 {
			t.Fatalf("entry %s: available %d below zero", e.ID, e.AvailableMicros)
		}
		if e.Kind == wallet.KindCharge {
			charges++
			if e.ChargedMicros() != price || e.UnpaidMicros != 25_000-price {
				t.Fatalf("charge: took %d left %d unpaid, want %d and %d", e.ChargedMicros(), e.UnpaidMicros, price, 25_000-price)
			}
		}
	}
	if charges != 1 {
		t.Fatalf("got %d charges, want 1", charges)
	}
	verify(t, db, "erin")
	if ghost, err := wallet.NewStore(db, wallet.Options{}).Entries(t.Context(), "ghost"); err != nil || len(ghost) != 0 {
		t.Fatalf("user with no wallet: %d entries (%v), want none", len(ghost), err)
	}
	r, _, err := records.NewStore(db).Get(t.Context(), "internal-1")
	if err != nil || r.PriceMicros != price || len(r.Files) != 1 || r.Stdout != "hi\n" {
		t.Fatalf("record: %+v %v, want price %d (what was paid) with code and output (saveMetric)", r, err, price)
	}
	if r, _, err := records.NewStore(db).Get(t.Context(), "internal-2"); err != nil || r.PriceMicros != 0 {
		t.Fatalf("record of the user with no wallet: %+v %v, want price 0", r, err)
	}
	if got, want := testutil.ToFloat64(metric(t, reg, "codeexec_ledger_unpaid_micros_total")), float64(25_000-price+price); got != want {
		t.Fatalf("unpaid metric: got %v, want %v", got, want)
	}
}

func TestCreditIsIdempotentPerReference(t *testing.T) {
	srv, nc, _ := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	start(t, testConfig(price), embeddedtest.Connect(t, srv, "ledger"), db, prometheus.NewRegistry())
	openWallets(t, nc, "frank")
	credit := func(user string, amount int64, ref string) (messages.CreditReply, error) {
		return rpc.Call[messages.CreditRequest, messages.CreditReply](t.Context(), nc, subjects.Credit,
			messages.CreditRequest{V: messages.Version, UserID: user, AmountMicros: amount, Reference: ref})
	}
	r, err := credit("frank", 5_000_000, "invoice-1")
	if err != nil || r.Duplicate || r.BalanceMicros != price+5_000_000 {
		t.Fatalf("credit: %+v %v", r, err)
	}
	r, err = credit("frank", 5_000_000, "invoice-1")
	if err != nil || !r.Duplicate || r.BalanceMicros != price+5_000_000 {
		t.Fatalf("repeated credit: %+v %v, want a duplicate and the same balance", r, err)
	}
	if _, err := credit("frank", 1, "invoice-1"); !rpc.IsCode(err, rpc.CodeConflict) {
		t.Fatalf("reference reused with another amount: got %v, want conflict", err)
	}
	if _, err := credit("frank", -5, "invoice-2"); !rpc.IsCode(err, rpc.CodeInvalidInput) {
		t.Fatalf("negative credit: got %v, want invalid_input", err)
	}
	verify(t, db, "frank")
}

// Admin credits are bounded, never overflow a balance, and need a wallet; a refusal
// changes nothing.
func TestCreditRefusals(t *testing.T) {
	srv, nc, _ := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	start(t, testConfig(price), embeddedtest.Connect(t, srv, "ledger"), db, prometheus.NewRegistry())
	openWallets(t, nc, "gus")
	tests := []struct {
		name     string
		user     string
		amount   int64
		wantCode string
	}{
		{name: "max int64", user: "gus", amount: math.MaxInt64, wantCode: rpc.CodeInvalidInput},
		{name: "over $1,000,000", user: "gus", amount: messages.MaxCreditMicros + 1, wantCode: rpc.CodeInvalidInput},
		{name: "zero", user: "gus", amount: 0, wantCode: rpc.CodeInvalidInput},
		{name: "negative", user: "gus", amount: -1, wantCode: rpc.CodeInvalidInput},
		{name: "no wallet", user: "nobody", amount: 1, wantCode: rpc.CodeNotFound},
		{name: "$1,000,000", user: "gus", amount: messages.MaxCreditMicros},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := walletOf(t, nc, "gus")
			r, err := rpc.Call[messages.CreditRequest, messages.CreditReply](t.Context(), nc, subjects.Credit,
				messages.CreditRequest{V: messages.Version, UserID: tt.user, AmountMicros: tt.amount, Reference: fmt.Sprintf("ref-%d", i)})
			after := walletOf(t, nc, "gus")
			if tt.wantCode != "" {
				if !rpc.IsCode(err, tt.wantCode) {
					t.Fatalf("credit %d: got %v, want %s", tt.amount, err, tt.wantCode)
				}
				if after != before {
					t.Fatalf("refused credit changed the wallet: %+v, then %+v", before, after)
				}
				return
			}
			if err != nil || r.BalanceMicros != before.BalanceMicros+tt.amount {
				t.Fatalf("credit: %+v %v, want balance %d", r, err, before.BalanceMicros+tt.amount)
			}
		})
	}
	if es, err := wallet.NewStore(db, wallet.Options{}).Entries(t.Context(), "nobody"); err != nil || len(es) != 0 {
		t.Fatalf("credit for a user with no wallet wrote %d entries (%v)", len(es), err)
	}
	verify(t, db, "gus")
}

// Usage answers a page whose records hold more output than MaxUsageReplyBytes in a reply
// within it (fitPage's own test goes past the NATS payload), and refuses pages too deep
// to skip to. The records stay small enough for FerretDB to read them quickly.
func TestUsagePages(t *testing.T) {
	srv, nc, _ := embeddedtest.NATS(t)
	db := testenv.Mongo(t)
	start(t, testConfig(price), embeddedtest.Connect(t, srv, "ledger"), db, prometheus.NewRegistry())
	rs := records.NewStore(db)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 3
	out := strings.Repeat("o", 700<<10) // 3 × 700 KiB: two records of it fit in no reply
	for i := range n {
		res := result("hugo", fmt.Sprintf("big-%d", i), messages.StatusSucceeded)
		res.Stdout, res.Stderr = out, "tail"
		if _, err := rs.Insert(t.Context(), records.FromResult(res, price, "local", t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	usage := func(page, pageSize int) (messages.UsageReply, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		return rpc.Call[messages.UsageRequest, messages.UsageReply](ctx, nc, subjects.Usage,
			messages.UsageRequest{V: messages.Version, UserID: "hugo", Page: page, PageSize: pageSize})
	}
	tests := []struct {
		name           string
		page, pageSize int
		wantCode       string
		wantRecords    int
		wantTruncated  int
	}{
		{name: "page over the reply limit", page: 1, pageSize: 20, wantRecords: n, wantTruncated: n - 1},
		{name: "second page", page: 2, pageSize: 2, wantRecords: 1},
		{name: "max int64 page", page: math.MaxInt64, pageSize: 20, wantCode: rpc.CodeInvalidInput},
		{name: "page past the deepest offset", page: messages.MaxUsageOffset/20 + 2, pageSize: 20, wantCode: rpc.CodeInvalidInput},
		{name: "negative page", page: -1, pageSize: 20, wantCode: rpc.CodeInvalidInput},
		{name: "pageSize over 100", page: 1, pageSize: 101, wantCode: rpc.CodeInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := usage(tt.page, tt.pageSize)
			if tt.wantCode != "" {
				if !rpc.IsCode(err, tt.wantCode) {
					t.Fatalf("usage: got %v, want %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("usage: %v", err)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > messages.MaxUsageReplyBytes {
				t.Fatalf("reply is %d bytes, over %d", len(b), messages.MaxUsageReplyBytes)
			}
			if len(r.Records) != tt.wantRecords || r.More || r.Totals.Executions != n {
				t.Fatalf("got %d records (more %v, %d executions), want %d of %d", len(r.Records), r.More, r.Totals.Executions, tt.wantRecords, n)
			}
			truncated := 0
			for _, rec := range r.Records {
				if !strings.HasPrefix(out, rec.Stdout) || rec.PriceMicros != price {
					t.Fatalf("record %s: %d bytes of stdout, not a prefix of the output", rec.JobID, len(rec.Stdout))
				}
				if rec.Truncated {
					truncated++
				} else if rec.Stdout != out || rec.Stderr != "tail" || len(rec.Files) != 1 {
					t.Fatalf("record %s: cut but not marked truncated", rec.JobID)
				}
			}
			if truncated != tt.wantTruncated {
				t.Fatalf("got %d truncated records, want %d", truncated, tt.wantTruncated)
			}
		})
	}
}

func metric(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return gathered{reg: reg, name: name}
}

// gathered adapts one metric family of a registry for testutil.ToFloat64.
type gathered struct {
	reg  *prometheus.Registry
	name string
}

func (g gathered) Describe(chan<- *prometheus.Desc) {}
func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.UntypedValue, v)
		}
	}
}

func sumCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// A hold reserved with RecordsOwner (as the edge reserves) whose job has no owner record in
// the job index after the orphan grace was never queued: its claim is taken as abandoned,
// so no runner can run it, and its hold released. A job whose owner was recorded, one a
// runner claimed, and one reserved without the promise keep their holds; one its edge
// abandoned (claim abandoned, result not in yet) is released too.
func TestOrphanedHoldIsGivenUpAndReleased(t *testing.T) {
	cfg := testConfig(10 * price)
	cfg.OrphanGrace = 45 * time.Second
	cfg.OrphanInterval = 20 * time.Millisecond
	l := startClocked(t, cfg)
	index, err := l.js.KeyValue(t.Context(), subjects.JobIndexBucket)
	if err != nil {
		t.Fatal(err)
	}
	openWallets(t, l.nc, "olga")
	reserveRecorded := func(job string) {
		t.Helper()
		if _, err := rpc.Call[messages.ReserveRequest, messages.ReserveReply](t.Context(), l.nc, subjects.Reserve,
			messages.ReserveRequest{V: messages.Version, UserID: "olga", JobID: job, Language: "python", RecordsOwner: true}); err != nil {
			t.Fatalf("reserve %s: %v", job, err)
		}
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := index.Create(t.Context(), key, []byte(value)); err != nil {
			t.Fatalf("create %s in the job index: %v", key, err)
		}
	}
	reserveRecorded("queued")
	put("queued", `{"userId":"olga"}`)
	reserveRecorded("claimed")
	put(subjects.JobRunningKey("claimed"), "runner-1")
	if _, err := reserve(t.Context(), l.nc, "olga", "unpromised", "python"); err != nil {
		t.Fatal(err)
	}
	reserveRecorded("abandoned")
	put(subjects.JobRunningKey("abandoned"), subjects.AbandonedClaim)
	reserveRecorded("orphan")

	// A few sweeps within the grace release nothing. After the reserves, the orphan
	// sweeper is what reads the clock, once a pass (the expiry sweeper's interval is an hour).
	reads := l.clock.reads.Load()
	testenv.Eventually(t, 10*time.Second, "three sweeps of orphaned holds within the grace", func() (bool, error) {
		return l.clock.reads.Load() >= reads+3, nil
	})
	if w := walletOf(t, l.nc, "olga"); w.HeldMicros != 5*price {
		t.Fatalf("held within the grace: got %d, want %d", w.HeldMicros, 5*price)
	}
	l.clock.Set(l.t0.Add(46 * time.Second))
	testenv.Eventually(t, 10*time.Second, "the orphaned and abandoned holds released", func() (bool, error) {
		return walletOf(t, l.nc, "olga").HeldMicros == 3*price, nil
	})
	testenv.Eventually(t, 5*time.Second, "releases_total 2", func() (bool, error) {
		return sumCounter(t, l.reg, "codeexec_ledger_releases_total") == 2, nil
	})
	e, err := index.Get(t.Context(), subjects.JobRunningKey("orphan"))
	if err != nil || string(e.Value()) != subjects.AbandonedClaim {
		t.Fatalf("claim of the orphaned job: %v %v, want %q", e, err, subjects.AbandonedClaim)
	}
	// A runner that gets the job late is refused the hold (and, before that, the claim).
	if _, err := reserve(t.Context(), l.nc, "olga", "orphan", "python"); !rpc.IsCode(err, rpc.CodeHoldClosed) {
		t.Fatalf("reserve of the released job: %v, want %s", err, rpc.CodeHoldClosed)
	}
	// The claimed job's result charges it once; the late internal_error of the abandoned
	// one releases nothing twice.
	publish(t, l.js, result("olga", "claimed", messages.StatusSucceeded), "res-claimed")
	publish(t, l.js, result("olga", "abandoned", messages.StatusInternalError), "res-abandoned")
	waitSettled(t, l.js, l.db, 2)
	if w := walletOf(t, l.nc, "olga"); w.BalanceMicros != 7*price || w.HeldMicros != 2*price {
		t.Fatalf("wallet: got %d held %d, want %d held %d", w.BalanceMicros, w.HeldMicros, 7*price, 2*price)
	}
	sum := verify(t, l.db, "olga")
	if sum.AvailableMicros != 7*price || sum.HeldMicros != 2*price {
		t.Fatalf("entries sum to %+v, want %d available and %d held", sum, 7*price, 2*price)
	}
}

// manualClock stands where it was set: the ledger's clock (Config.Now) in tests of holds'
// ages. reads counts the calls of Now.
type manualClock struct{ ns, reads atomic.Int64 }

func newManualClock(at time.Time) *manualClock {
	c := &manualClock{}
	c.Set(at)
	return c
}

func (c *manualClock) Now() time.Time {
	c.reads.Add(1)
	return time.Unix(0, c.ns.Load()).UTC()
}

func (c *manualClock) Set(at time.Time) { c.ns.Store(at.UnixNano()) }

// clockedLedger is a ledger on a fresh embedded NATS and database whose clock stands at t0
// until the test moves it.
type clockedLedger struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	db    *mongo.Database
	reg   *prometheus.Registry
	clock *manualClock
	t0    time.Time
}

// startClocked starts a ledger with cfg on a manual clock (cfg.Now is replaced).
func startClocked(t *testing.T, cfg ledger.Config) clockedLedger {
	t.Helper()
	l := clockedLedger{t0: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), db: testenv.Mongo(t), reg: prometheus.NewRegistry()}
	l.clock = newManualClock(l.t0)
	cfg.Now = l.clock.Now
	srv, nc, js := embeddedtest.NATS(t)
	l.nc, l.js = nc, js
	start(t, cfg, embeddedtest.Connect(t, srv, "ledger"), l.db, l.reg)
	return l
}
