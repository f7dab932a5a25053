package wallet_test

import (
	"errors"
	"fmt"
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

func newStores(t *testing.T, n int, credit int64, now func() time.Time) (*mongo.Database, []*wallet.Store) {
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
	_, stores := newStores(t, 2, n*price, nil)
	ctx := t.Context()
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 * n {
		wg.Go(func() {
			s := stores[i%2]
			_, _, _, err := s.Hold(ctx, "alice", fmt.Sprintf("job-%d", i), price)
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

func TestHoldIsIdempotentAndRefusesOtherAccounts(t *testing.T) {
	_, stores := newStores(t, 1, 3*price, nil)
	s, ctx := stores[0], t.Context()
	first, _, created, err := s.Hold(ctx, "bob", "job-1", price)
	if err != nil || !created {
		t.Fatalf("first hold: created %v, err %v", created, err)
	}
	again, bal, created, err := s.Hold(ctx, "bob", "job-1", price)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("second hold: got %s created %v err %v, want %s not created", again.ID, created, err, first.ID)
	}
	if bal.AvailableMicros != 2*price {
		t.Fatalf("balance after repeated hold: got %d, want %d", bal.AvailableMicros, 2*price)
	}
	if _, _, _, err := s.Hold(ctx, "mallory", "job-1", price); !errors.Is(err, wallet.ErrConflict) {
		t.Fatalf("hold of bob's job by mallory: got %v, want ErrConflict", err)
	}
	if _, err := s.Close(ctx, "job-1", "bob", true, 0, wallet.ReasonResult); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Hold(ctx, "bob", "job-1", price); err != nil {
		t.Fatalf("hold after close returns the old hold: %v", err)
	}
	if _, _, _, err := s.Hold(ctx, "bob", "job-2", 5*price); !errors.Is(err, wallet.ErrInsufficientFunds) {
		t.Fatalf("too big a hold: got %v, want ErrInsufficientFunds", err)
	}
	verify(t, s, "bob")
}

// A charge and a release (late result versus sweeper), from two processes, many times:
// one close entry.
func TestCloseOnceUnderRaces(t *testing.T) {
	_, stores := newStores(t, 2, 10*price, nil)
	ctx := t.Context()
	for j := range 5 {
		job := fmt.Sprintf("job-%d", j)
		if _, _, _, err := stores[0].Hold(ctx, "carol", job, price); err != nil {
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
	db, stores := newStores(t, 1, 3*price, nil)
	ctx := t.Context()
	if _, _, _, err := stores[0].Hold(ctx, "dave", "job-1", price); err != nil {
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
	if _, _, created, err := s.Hold(ctx, "dave", "job-1", price); err != nil || created {
		t.Fatalf("repeated hold: created %v err %v, want the old one", created, err)
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
	_, stores := newStores(t, 1, 5*price, now)
	s, ctx := stores[0], t.Context()
	for _, job := range []string{"old-1", "old-2"} {
		if _, _, _, err := s.Hold(ctx, "erin", job, price); err != nil {
			t.Fatal(err)
		}
	}
	clock.Store(start.Add(10 * time.Minute).UnixNano())
	if _, _, _, err := s.Hold(ctx, "erin", "young", price); err != nil {
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
}

func TestVerifyFindsTampering(t *testing.T) {
	db, stores := newStores(t, 1, price, nil)
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

func TestDirectChargeWithoutHold(t *testing.T) {
	_, stores := newStores(t, 1, price, nil)
	s, ctx := stores[0], t.Context()
	st, err := s.Close(ctx, "internal-1", "gina", true, 3*price, wallet.ReasonResult)
	if err != nil || !st.Created || st.ChargedMicros != 3*price {
		t.Fatalf("direct charge: %+v %v", st, err)
	}
	if st, err := s.Close(ctx, "internal-2", "gina", false, 3*price, wallet.ReasonInternalError); err != nil || st.Created {
		t.Fatalf("internal error without hold: %+v %v, want nothing written", st, err)
	}
	sum := verify(t, s, "gina")
	if sum.AvailableMicros != -2*price {
		t.Fatalf("available: got %d, want %d (a direct charge may go below zero)", sum.AvailableMicros, -2*price)
	}
}
