package wallet_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codeexec/codeexec/ledger/internal/testenv"
	"github.com/codeexec/codeexec/ledger/internal/wallet"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const price = 10_000

// newStores returns n stores on one fresh database, with the wallets of accounts opened.
func newStores(t *testing.T, n int, credit int64, now func() time.Time, accounts ...string) (*mongo.Database, []*wallet.Store) {
	t.Helper()
	db := testenv.Mongo(t)
	var stores []*wallet.Store
	for range n {
		// Each Store stands for one ledger process: its own head cache and locks.
		s := wallet.NewStore(db, wallet.Options{FreeCreditMicros: credit, Now: now})
		if err := s.EnsureIndexes(t.Context()); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	for _, a := range accounts {
		if _, err := stores[0].Open(t.Context(), a); err != nil {
			t.Fatalf("open %s: %v", a, err)
		}
	}
	return db, stores
}

func verify(t *testing.T, s *wallet.Store, account string) wallet.Summary {
	t.Helper()
	sum, err := s.Verify(t.Context(), account)
	if err != nil {
		t.Fatalf("verify %s: %v", account, err)
	}
	return sum
}

// FerretDB reports a duplicate on _id and on a unique secondary index alike, as
// mongo.IsDuplicateKeyError, without naming the index: the store tells them apart by
// reading the slot it tried.
func TestDuplicateKeyErrorsOnFerretDB(t *testing.T) {
	db, stores := newStores(t, 1, 0, nil)
	_ = stores
	c := db.Collection(wallet.EntriesCollection)
	ctx := t.Context()
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a:1"}, {Key: "ref", Value: "r1"}}); err != nil {
		t.Fatal(err)
	}
	_, errID := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a:1"}, {Key: "ref", Value: "r2"}})
	_, errRef := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a:2"}, {Key: "ref", Value: "r1"}})
	for name, err := range map[string]error{"_id": errID, "ref": errRef} {
		if !mongo.IsDuplicateKeyError(err) {
			t.Errorf("duplicate %s: got %v, want a duplicate key error", name, err)
		}
	}
	t.Logf("duplicate _id: %v; duplicate ref: %v", errID, errRef)

	// 50 concurrent inserts of one ref: exactly one wins.
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("b:%d", i)}, {Key: "ref", Value: "same"}})
			if err == nil {
				ok.Add(1)
			} else if !mongo.IsDuplicateKeyError(err) {
				t.Errorf("insert: %v", err)
			}
		})
	}
	wg.Wait()
	if got := ok.Load(); got != 1 {
		t.Fatalf("concurrent inserts of one ref: got %d successes, want 1", got)
	}
}

// Two "processes" (stores with their own caches and locks) hold on one account at once:
// the chain lets exactly the affordable number through and never goes below zero.
func TestHoldsAcrossProcessesNeverOverspend(t *testing.T) {
	const n = 10
	_, stores := newStores(t, 2, n*price, nil, "alice")
	ctx := t.Context()
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 * n {
		wg.Go(func() {
			s := stores[i%2]
			_, err := s.Hold(ctx, "alice", fmt.Sprintf("job-%d", i), price, false)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, wallet.ErrInsufficientFunds):
				refused.Add(1)
			default:
				t.Errorf("hold %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != n || refused.Load() != 3*n {
		t.Fatalf("got %d holds and %d refusals, want %d and %d", ok.Load(), refused.Load(), n, 3*n)
	}
	sum := verify(t, stores[0], "alice")
	if sum.AvailableMicros != 0 || sum.HeldMicros != n*price {
		t.Fatalf("got available %d held %d, want 0 and %d", sum.AvailableMicros, sum.HeldMicros, n*price)
	}
	es, err := stores[1].Entries(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.AvailableMicros < 0 {
			t.Fatalf("entry %s: available %d below zero", e.ID, e.AvailableMicros)
		}
	}
}

// Hold is the publisher's reserve and the runner's pre-run check: an open hold comes back
// as it is, a closed one is never replaced, and every refusal writes nothing.
func TestHold(t *testing.T) {
	hold := func(account, job string, p int64) func(*testing.T, *wallet.Store) {
		return func(t *testing.T, s *wallet.Store) {
			t.Helper()
			if _, err := s.Hold(t.Context(), account, job, p, false); err != nil {
				t.Fatalf("setup hold %s/%s: %v", account, job, err)
			}
		}
	}
	closeJob := func(job string, charge bool, direct int64) func(*testing.T, *wallet.Store) {
		return func(t *testing.T, s *wallet.Store) {
			t.Helper()
			if _, err := s.Close(t.Context(), job, "bob", charge, direct, wallet.ReasonResult); err != nil {
				t.Fatalf("setup close %s: %v", job, err)
			}
		}
	}
	expireAll := func(t *testing.T, s *wallet.Store) {
		t.Helper()
		if n, err := s.ExpireHolds(t.Context(), time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("setup expire: %d %v", n, err)
		}
	}
	tests := []struct {
		name        string
		setup       []func(*testing.T, *wallet.Store)
		dropRefs    bool // lose the refs copies (a crash right after an insert)
		account     string
		price       int64
		want        error // nil: a hold of job-1
		wantCreated bool
	}{
		{name: "new hold", account: "bob", price: price, wantCreated: true},
		{name: "open hold returned as it is", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price)},
			account: "bob", price: 5 * price},
		{name: "open hold without refs copies", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price)},
			dropRefs: true, account: "bob", price: price},
		{name: "no wallet", account: "nobody", price: price, want: wallet.ErrNoWallet},
		{name: "insufficient funds", account: "bob", price: 4 * price, want: wallet.ErrInsufficientFunds},
		{name: "someone else's open hold", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price)},
			account: "mallory", price: price, want: wallet.ErrConflict},
		{name: "charged", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price), closeJob("job-1", true, 0)},
			account: "bob", price: price, want: wallet.ErrSettled},
		{name: "released", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price), closeJob("job-1", false, 0)},
			account: "bob", price: price, want: wallet.ErrSettled},
		{name: "expired by the sweeper", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price), expireAll},
			account: "bob", price: price, want: wallet.ErrSettled},
		{name: "charged without a hold", setup: []func(*testing.T, *wallet.Store){closeJob("job-1", true, price)},
			account: "bob", price: price, want: wallet.ErrSettled},
		{name: "charged, refs copies lost", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price), closeJob("job-1", true, 0)},
			dropRefs: true, account: "bob", price: price, want: wallet.ErrSettled},
		{name: "someone else's charged job", setup: []func(*testing.T, *wallet.Store){hold("bob", "job-1", price), closeJob("job-1", true, 0)},
			account: "mallory", price: price, want: wallet.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, stores := newStores(t, 1, 3*price, nil, "bob", "mallory")
			s, ctx := stores[0], t.Context()
			for _, f := range tt.setup {
				f(t, s)
			}
			if tt.dropRefs {
				if _, err := db.Collection(wallet.RefsCollection).DeleteMany(ctx, bson.D{}); err != nil {
					t.Fatal(err)
				}
				s = wallet.NewStore(db, wallet.Options{FreeCreditMicros: 3 * price}) // a new process
			}
			before := snapshot(t, db, tt.account)
			r, err := s.Hold(ctx, tt.account, "job-1", tt.price, false)
			if !errors.Is(err, tt.want) {
				t.Fatalf("hold: got %v, want %v", err, tt.want)
			}
			after := snapshot(t, db, tt.account)
			if tt.want != nil || !tt.wantCreated {
				if after != before {
					t.Fatalf("a hold that created nothing wrote: before %+v, after %+v", before, after)
				}
			}
			if tt.want != nil {
				return
			}
			if r.Created != tt.wantCreated || r.Hold.JobID != "job-1" || r.Hold.Account != tt.account || r.Hold.HeldMicros != price {
				t.Fatalf("hold: got %+v, want job-1 of %s holding %d, created %v", r.Hold, tt.account, price, tt.wantCreated)
			}
			if r.Balance.AvailableMicros != 2*price || r.Balance.HeldMicros != price {
				t.Fatalf("balance: got %+v, want %d available and %d held", r.Balance, 2*price, price)
			}
			if r.HeldSince.IsZero() {
				t.Fatal("HeldSince is zero")
			}
			verify(t, s, tt.account)
		})
	}
}

// state counts what a refused operation must not write. The refs copies are left out:
// a read may repair a missing one.
type state struct {
	entries, markers int64
}

func snapshot(t *testing.T, db *mongo.Database, account string) state {
	t.Helper()
	ctx := t.Context()
	var st state
	var err error
	for _, c := range []struct {
		n    *int64
		coll string
		f    bson.D
	}{{&st.entries, wallet.EntriesCollection, bson.D{{Key: "account", Value: account}}},
		{&st.markers, wallet.HoldsCollection, bson.D{}}} {
		if *c.n, err = db.Collection(c.coll).CountDocuments(ctx, c.f); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// A repeated hold answers when the sweeper's clock started, not when it was asked again.
func TestHoldKeepsItsStart(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	_, stores := newStores(t, 1, 3*price, now, "bob")
	s, ctx := stores[0], t.Context()
	r, err := s.Hold(ctx, "bob", "job-1", price, false)
	if err != nil || !r.HeldSince.Equal(t0) {
		t.Fatalf("first hold: since %v (%v), want %v", r.HeldSince, err, t0)
	}
	clock.Store(t0.Add(7 * time.Minute).UnixNano())
	r, err = s.Hold(ctx, "bob", "job-1", price, false)
	if err != nil || r.Created || !r.HeldSince.Equal(t0) {
		t.Fatalf("repeated hold: since %v created %v (%v), want %v and not created", r.HeldSince, r.Created, err, t0)
	}
}

// A charge and a release (late result versus sweeper), from two processes, many times:
// one close entry.
func TestCloseOnceUnderRaces(t *testing.T) {
	_, stores := newStores(t, 2, 10*price, nil, "carol")
	ctx := t.Context()
	for j := range 5 {
		job := fmt.Sprintf("job-%d", j)
		if _, err := stores[0].Hold(ctx, "carol", job, price, false); err != nil {
			t.Fatal(err)
		}
		var created atomic.Int64
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				st, err := stores[i%2].Close(ctx, job, "carol", i%3 != 0, price, "race")
				if err != nil {
					t.Errorf("close %s: %v", job, err)
				}
				if st.Created {
					created.Add(1)
				}
			})
		}
		wg.Wait()
		if created.Load() != 1 {
			t.Fatalf("%s: got %d close entries created, want 1", job, created.Load())
		}
	}
	sum := verify(t, stores[0], "carol")
	if sum.HeldMicros != 0 {
		t.Fatalf("held after closes: got %d, want 0", sum.HeldMicros)
	}
	if open, err := stores[0].OpenHolds(ctx); err != nil || open != 0 {
		t.Fatalf("open holds: got %d (%v), want 0", open, err)
	}
}

// The refs copies are a cache: without them (a crash after the entry's insert) every
// operation stays idempotent through the entries' unique ref index.
func TestIdempotentWithoutRefCopies(t *testing.T) {
	db, stores := newStores(t, 1, 3*price, nil, "dave")
	ctx := t.Context()
	if _, err := stores[0].Hold(ctx, "dave", "job-1", price, false); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := stores[0].Credit(ctx, "dave", 5, "gift"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(wallet.RefsCollection).DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	// A new process: empty caches.
	s := wallet.NewStore(db, wallet.Options{FreeCreditMicros: 3 * price})
	if r, err := s.Hold(ctx, "dave", "job-1", price, false); err != nil || r.Created {
		t.Fatalf("repeated hold: created %v err %v, want the old one", r.Created, err)
	}
	if _, _, created, err := s.Credit(ctx, "dave", 5, "gift"); err != nil || created {
		t.Fatalf("repeated credit: created %v err %v, want the old one", created, err)
	}
	st, err := s.Close(ctx, "job-1", "dave", true, 0, wallet.ReasonResult)
	if err != nil || !st.Created || st.ChargedMicros != price {
		t.Fatalf("charge: %+v %v", st, err)
	}
	if _, err := db.Collection(wallet.RefsCollection).DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Close(ctx, "job-1", "dave", false, 0, wallet.ReasonInternalError); err != nil || st.Created {
		t.Fatalf("second close: %+v %v, want the first", st, err)
	}
	sum := verify(t, s, "dave")
	if want := int64(3*price - price + 5); sum.AvailableMicros != want || sum.HeldMicros != 0 {
		t.Fatalf("got available %d held %d, want %d and 0", sum.AvailableMicros, sum.HeldMicros, want)
	}
}

func TestExpireHolds(t *testing.T) {
	var clock atomic.Int64
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	_, stores := newStores(t, 1, 5*price, now, "erin")
	s, ctx := stores[0], t.Context()
	for _, job := range []string{"old-1", "old-2"} {
		if _, err := s.Hold(ctx, "erin", job, price, false); err != nil {
			t.Fatal(err)
		}
	}
	clock.Store(start.Add(10 * time.Minute).UnixNano())
	if _, err := s.Hold(ctx, "erin", "young", price, false); err != nil {
		t.Fatal(err)
	}
	// old-2's result arrived in time.
	if _, err := s.Close(ctx, "old-2", "erin", true, 0, wallet.ReasonResult); err != nil {
		t.Fatal(err)
	}
	n, err := s.ExpireHolds(ctx, start.Add(5*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("expire: got %d (%v), want 1", n, err)
	}
	if n, err := s.ExpireHolds(ctx, start.Add(5*time.Minute)); err != nil || n != 0 {
		t.Fatalf("second expire: got %d (%v), want 0", n, err)
	}
	// old-1's late result finds it released.
	st, err := s.Close(ctx, "old-1", "erin", true, 0, wallet.ReasonResult)
	if err != nil || st.Created || st.Entry.Kind != wallet.KindRelease || st.ChargedMicros != 0 {
		t.Fatalf("late result: %+v %v, want the earlier release", st, err)
	}
	sum := verify(t, s, "erin")
	if sum.AvailableMicros != 3*price || sum.HeldMicros != price {
		t.Fatalf("got available %d held %d, want %d and %d", sum.AvailableMicros, sum.HeldMicros, 3*price, price)
	}
	if open, err := s.OpenHolds(ctx); err != nil || open != 1 {
		t.Fatalf("open holds: got %d (%v), want 1", open, err)
	}
	if at, ok, err := s.OldestHold(ctx); err != nil || !ok || !at.Equal(start.Add(10*time.Minute)) {
		t.Fatalf("oldest hold: got %s %v (%v), want young's, taken at %s", at, ok, err, start.Add(10*time.Minute))
	}
	if _, err := s.Close(ctx, "young", "erin", true, 0, wallet.ReasonResult); err != nil {
		t.Fatal(err)
	}
	if at, ok, err := s.OldestHold(ctx); err != nil || ok {
		t.Fatalf("oldest hold with none open: got %s %v (%v), want none", at, ok, err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	db, stores := newStores(t, 1, price, nil, "frank")
	ctx := t.Context()
	if _, _, _, err := stores[0].Credit(ctx, "frank", 7, "ref-1"); err != nil {
		t.Fatal(err)
	}
	verify(t, stores[0], "frank")
	// Changed behind the ledger's back (update is what the ledger never does).
	if _, err := db.Collection(wallet.EntriesCollection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: wallet.EntryID("frank", 2)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "amountMicros", Value: 7000}}}}); err != nil {
		t.Fatal(err)
	}
	_, err := stores[0].Verify(ctx, "frank")
	var mm *wallet.MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("verify after tampering: got %v, want a MismatchError", err)
	}
	_, problems, err := stores[0].VerifyAll(ctx)
	if err != nil || len(problems) != 1 {
		t.Fatalf("verify all: got %v (%v), want one account's mismatch", problems, err)
	}
}

// A job charged without a hold pays what the wallet has, never more: the balance never
// goes below zero, the shortfall is recorded as unpaid, and a second close changes nothing.
func TestDirectChargeWithoutHold(t *testing.T) {
	tests := []struct {
		name        string
		open        bool
		credit      int64
		price       int64
		charge      bool
		wantCharged int64
		wantUnpaid  int64
		wantEntry   bool
	}{
		{name: "covered", open: true, credit: 3 * price, price: price, charge: true, wantCharged: price, wantEntry: true},
		{name: "exactly covered", open: true, credit: price, price: price, charge: true, wantCharged: price, wantEntry: true},
		{name: "partly covered", open: true, credit: price, price: 3 * price, charge: true, wantCharged: price, wantUnpaid: 2 * price, wantEntry: true},
		{name: "empty wallet", open: true, credit: 0, price: price, charge: true, wantUnpaid: price, wantEntry: true},
		{name: "no wallet", price: price, charge: true, wantUnpaid: price},
		{name: "internal error", open: true, credit: price, price: price},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var accounts []string
			if tt.open {
				accounts = append(accounts, "gina")
			}
			db, stores := newStores(t, 2, tt.credit, nil, accounts...)
			ctx := t.Context()
			for i := range 3 { // redeliveries, on two processes
				st, err := stores[i%2].Close(ctx, "internal-1", "gina", tt.charge, tt.price, wallet.ReasonResult)
				if err != nil {
					t.Fatalf("close %d: %v", i, err)
				}
				if st.ChargedMicros != tt.wantCharged || st.UnpaidMicros != tt.wantUnpaid {
					t.Fatalf("close %d: charged %d unpaid %d, want %d and %d", i, st.ChargedMicros, st.UnpaidMicros, tt.wantCharged, tt.wantUnpaid)
				}
				if want := tt.wantEntry && i == 0; st.Created != want {
					t.Fatalf("close %d: created %v, want %v", i, st.Created, want)
				}
				if st.NoWallet != !tt.open {
					t.Fatalf("close %d: NoWallet %v, want %v", i, st.NoWallet, !tt.open)
				}
			}
			if !tt.open {
				if n := snapshot(t, db, "gina"); n.entries != 0 {
					t.Fatalf("no wallet: %d entries written, want none", n.entries)
				}
				return
			}
			sum := verify(t, stores[0], "gina")
			if want := tt.credit - tt.wantCharged; sum.AvailableMicros != want || sum.HeldMicros != 0 {
				t.Fatalf("wallet: available %d held %d, want %d and 0", sum.AvailableMicros, sum.HeldMicros, want)
			}
		})
	}
}

func TestCredit(t *testing.T) {
	tests := []struct {
		name    string
		signup  int64
		account string
		amount  int64
		want    error
	}{
		{name: "one micro-dollar", signup: price, account: "hank", amount: 1},
		{name: "the largest credit", signup: price, account: "hank", amount: wallet.MaxCreditMicros},
		{name: "zero", signup: price, account: "hank", amount: 0, want: wallet.ErrInvalid},
		{name: "negative", signup: price, account: "hank", amount: -5, want: wallet.ErrInvalid},
		{name: "over the largest credit", signup: price, account: "hank", amount: wallet.MaxCreditMicros + 1, want: wallet.ErrInvalid},
		{name: "max int64", signup: price, account: "hank", amount: math.MaxInt64, want: wallet.ErrInvalid},
		{name: "balance overflow", signup: math.MaxInt64 - 5, account: "hank", amount: 10, want: wallet.ErrOverflow},
		{name: "no wallet", signup: price, account: "nobody", amount: 1, want: wallet.ErrNoWallet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, stores := newStores(t, 1, tt.signup, nil, "hank")
			s, ctx := stores[0], t.Context()
			before := snapshot(t, db, tt.account)
			_, bal, created, err := s.Credit(ctx, tt.account, tt.amount, "ref-1")
			if !errors.Is(err, tt.want) {
				t.Fatalf("credit %d: got %v, want %v", tt.amount, err, tt.want)
			}
			if tt.want != nil {
				if after := snapshot(t, db, tt.account); after != before {
					t.Fatalf("a refused credit wrote: before %+v, after %+v", before, after)
				}
				return
			}
			if !created || bal.AvailableMicros != tt.signup+tt.amount {
				t.Fatalf("credit: created %v balance %d, want a new credit and %d", created, bal.AvailableMicros, tt.signup+tt.amount)
			}
			verify(t, s, tt.account)
		})
	}
}

// A reference longer than an error message should quote is cut.
func TestConflictQuotesAShortExcerpt(t *testing.T) {
	_, stores := newStores(t, 1, price, nil, "ivan")
	s, ctx := stores[0], t.Context()
	ref := strings.Repeat("r", wallet.MaxIDBytes)
	if _, _, _, err := s.Credit(ctx, "ivan", 1, ref); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := s.Credit(ctx, "ivan", 2, ref)
	if !errors.Is(err, wallet.ErrConflict) || strings.Contains(err.Error(), ref) || len(err.Error()) > 200 {
		t.Fatalf("conflict: got %q, want ErrConflict quoting at most 64 bytes of the reference", err)
	}
}
