package wallet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/ledger/internal/groupcommit"
	"github.com/codeexec/codeexec/shared/mongoconn"
)

// Collection names.
const (
	// EntriesCollection holds the chains: the only source of truth.
	EntriesCollection = "entries"
	// RefsCollection holds a copy of each entry under _id = its ref. Entries never change,
	// so a copy is never wrong; it may be missing (a crash right after the entry's insert),
	// and then the slower lookup by the entries' unique ref index answers. It exists because
	// FerretDB (SQLite) answers only _id equality from an index: any other filter is a scan.
	RefsCollection = "entry_refs"
	// HoldsCollection has one marker per open hold (_id = jobId), written before the hold
	// entry and deleted after its close entry. The sweeper reads it to find expired holds.
	HoldsCollection = "open_holds"
)

// Options tune a Store.
type Options struct {
	// FreeCreditMicros is the signup credit of a new account.
	FreeCreditMicros int64
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log receives warnings about best-effort writes; default discards.
	Log *slog.Logger
	// MaxAttempts bounds the retries of one append under contention; default 50.
	MaxAttempts int
	// OnConflict, if set, is called each time an append lost the race for a sequence number.
	OnConflict func()
}

// Store appends and reads wallet entries. It is safe for concurrent use, and several
// processes may share one database.
type Store struct {
	entries *mongo.Collection
	refs    *mongo.Collection
	holds   *mongo.Collection
	// The inserts and deletes of concurrent operations share database calls (group
	// commit): under load the embedded store then commits many documents at once.
	entryInserts, refInserts, markerInserts, markerDeletes *groupcommit.Group[any]
	opts                                                   Options
	locks                                                  *keyLock

	mu    sync.Mutex
	heads map[string]cachedHead
}

type cachedHead struct {
	entry Entry
	// stale: another writer extended the chain since; the head is at or after entry.
	stale bool
}

// maxCachedHeads bounds the head cache; past it the cache starts over.
const maxCachedHeads = 100_000

// NewStore returns a Store over db's entries, entry_refs and open_holds collections.
func NewStore(db *mongo.Database, o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 50
	}
	s := &Store{
		entries: db.Collection(EntriesCollection),
		refs:    db.Collection(RefsCollection),
		holds:   db.Collection(HoldsCollection),
		opts:    o,
		locks:   newKeyLock(),
		heads:   make(map[string]cachedHead),
	}
	s.entryInserts = groupcommit.Inserts(s.entries, maxBatch, batchTimeout)
	s.refInserts = groupcommit.Inserts(s.refs, maxBatch, batchTimeout)
	s.markerInserts = groupcommit.Inserts(s.holds, maxBatch, batchTimeout)
	s.markerDeletes = groupcommit.Deletes(s.holds, maxBatch, batchTimeout)
	return s
}

// Group commit: documents per database call, and how long one call may take.
const (
	maxBatch     = 64
	batchTimeout = 15 * time.Second
)

// EnsureIndexes creates the unique ref index the money depends on, and the others.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	if err := mongoconn.EnsureIndexes(ctx, s.entries,
		mongo.IndexModel{Keys: bson.D{{Key: "ref", Value: 1}}, Options: options.Index().SetUnique(true).SetName("ref_unique")},
		mongo.IndexModel{Keys: bson.D{{Key: "account", Value: 1}, {Key: "seq", Value: -1}}, Options: options.Index().SetName("account_seq")},
	); err != nil {
		return err
	}
	return mongoconn.EnsureIndexes(ctx, s.holds,
		mongo.IndexModel{Keys: bson.D{{Key: "createdAt", Value: 1}}, Options: options.Index().SetName("created_at")})
}

func (s *Store) now() time.Time { return s.opts.Now().UTC() }

// getEntry reads one entry by _id.
func (s *Store) getEntry(ctx context.Context, id string) (Entry, bool, error) {
	var e Entry
	err := s.entries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("read entry %s: %w", id, err)
	}
	return e, true, nil
}

// head returns account's last entry (Seq 0: no entry yet), from the cache when it is
// known to be current, else found by probing _ids.
func (s *Store) head(ctx context.Context, account string) (Entry, error) {
	s.mu.Lock()
	c, ok := s.heads[account]
	s.mu.Unlock()
	if ok && !c.stale {
		return c.entry, nil
	}
	h, err := s.probeHead(ctx, account, c.entry)
	if err != nil {
		return Entry{}, err
	}
	s.setHead(h)
	return h, nil
}

// freshHead reads the head from the database, starting at the cached one: readers must
// see entries other processes appended.
func (s *Store) freshHead(ctx context.Context, account string) (Entry, error) {
	s.mu.Lock()
	c := s.heads[account]
	s.mu.Unlock()
	h, err := s.probeHead(ctx, account, c.entry)
	if err != nil {
		return Entry{}, err
	}
	if h.Seq > 0 {
		s.setHead(h)
	}
	return h, nil
}

// probeHead finds the last entry of account by _id lookups only (an exponential then a
// binary search from a known entry), so it costs O(log n) indexed reads on FerretDB too.
// Sequences have no gaps: an entry is only ever inserted right after an existing head.
func (s *Store) probeHead(ctx context.Context, account string, from Entry) (Entry, error) {
	lo := from
	if lo.Account != account {
		lo = Entry{}
	}
	var hi int64 // the lowest seq known to be missing
	for step := int64(1); ; step *= 2 {
		e, ok, err := s.getEntry(ctx, EntryID(account, lo.Seq+step))
		if err != nil {
			return Entry{}, err
		}
		if !ok {
			hi = lo.Seq + step
			break
		}
		lo = e
	}
	for hi-lo.Seq > 1 {
		mid := lo.Seq + (hi-lo.Seq)/2
		e, ok, err := s.getEntry(ctx, EntryID(account, mid))
		if err != nil {
			return Entry{}, err
		}
		if ok {
			lo = e
		} else {
			hi = mid
		}
	}
	return lo, nil
}

func (s *Store) setHead(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.heads[e.Account]; ok && c.entry.Seq > e.Seq {
		return
	}
	if len(s.heads) >= maxCachedHeads {
		clear(s.heads)
	}
	s.heads[e.Account] = cachedHead{entry: e}
}

func (s *Store) markStale(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.heads[account]; ok {
		c.stale = true
		s.heads[account] = c
	}
}

type refDoc struct {
	Ref   string `bson:"_id"`
	Entry Entry  `bson:"entry"`
}

// lookupRef finds the entry of ref through the refs copy (one indexed read everywhere).
// A miss is not proof of absence: see lookupRefSlow.
func (s *Store) lookupRef(ctx context.Context, ref string) (Entry, bool, error) {
	var d refDoc
	err := s.refs.FindOne(ctx, bson.D{{Key: "_id", Value: ref}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("read ref %s: %w", ref, err)
	}
	return d.Entry, true, nil
}

// lookupRefSlow asks the entries themselves (the unique ref index; a scan on FerretDB)
// and repairs the refs copy when it was missing. It is the authority.
func (s *Store) lookupRefSlow(ctx context.Context, ref string) (Entry, bool, error) {
	if e, ok, err := s.lookupRef(ctx, ref); ok || err != nil {
		return e, ok, err
	}
	var e Entry
	err := s.entries.FindOne(ctx, bson.D{{Key: "ref", Value: ref}}).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("find entry by ref %s: %w", ref, err)
	}
	s.putRef(ctx, e)
	return e, true, nil
}

// putRef writes the refs copy of e. Best effort: a missing copy only costs a slower read.
func (s *Store) putRef(ctx context.Context, e Entry) {
	err := s.refInserts.Do(ctx, refDoc{Ref: e.Ref, Entry: e})
	if err != nil && !errors.Is(err, groupcommit.ErrDuplicate) {
		s.opts.Log.Warn("write entry ref copy", "ref", e.Ref, "entry_id", e.ID, "err", err)
	}
}

// draft is what an operation wants to append; the chain fields are filled in by appendTo.
type draft struct {
	Kind         Kind
	AmountMicros int64
	HeldMicros   int64
	UnpaidMicros int64
	JobID        string
	Reason       string
}

// appendTo appends the entry next builds from the head to account's chain, with ref,
// unless an entry with ref exists: then it returns that one with created false. The
// caller holds account's lock. next may refuse (ErrInsufficientFunds): nothing is written.
// A chain's first entry is always its signup credit, written by Open only: appending
// anything else to an empty chain refuses with ErrNoWallet. Totals that would overflow
// refuse with ErrOverflow.
func (s *Store) appendTo(ctx context.Context, account, ref string, next func(head Entry) (draft, error)) (Entry, bool, error) {
	if e, ok, err := s.lookupRef(ctx, ref); ok || err != nil {
		return e, false, err
	}
	return s.appendChecked(ctx, account, ref, next)
}

// appendChecked is appendTo without its first look for ref, for a caller that has just
// looked and missed, or that expects a miss: an entry with ref that exists is then met
// through the ref's unique index (the insert conflicts), which costs more than the look,
// but only in that rare case.
func (s *Store) appendChecked(ctx context.Context, account, ref string, next func(head Entry) (draft, error)) (Entry, bool, error) {
	for attempt := 1; ; attempt++ {
		head, err := s.head(ctx, account)
		if err != nil {
			return Entry{}, false, err
		}
		if head.Seq == 0 && ref != OpenRef(account) {
			return Entry{}, false, ErrNoWallet
		}
		d, err := next(head)
		if err != nil {
			return Entry{}, false, err
		}
		available, err := addMicros(head.AvailableMicros, d.AmountMicros)
		if err != nil {
			return Entry{}, false, err
		}
		heldTotal, err := addMicros(head.HeldTotalMicros, d.HeldMicros)
		if err != nil {
			return Entry{}, false, err
		}
		e := Entry{
			ID:              EntryID(account, head.Seq+1),
			Account:         account,
			Seq:             head.Seq + 1,
			Kind:            d.Kind,
			AmountMicros:    d.AmountMicros,
			HeldMicros:      d.HeldMicros,
			AvailableMicros: available,
			HeldTotalMicros: heldTotal,
			UnpaidMicros:    d.UnpaidMicros,
			Ref:             ref,
			JobID:           d.JobID,
			Reason:          d.Reason,
			CreatedAt:       s.now(),
		}
		err = s.entryInserts.Do(ctx, e)
		if err == nil {
			s.setHead(e)
			s.putRef(ctx, e)
			return e, true, nil
		}
		s.markStale(account)
		if !errors.Is(err, groupcommit.ErrDuplicate) {
			// The insert may or may not have happened; the stale head makes the next
			// attempt find out.
			return Entry{}, false, fmt.Errorf("insert entry %s: %w", e.ID, err)
		}
		// FerretDB's duplicate key error does not name the index: look at what is there.
		at, ok, err := s.getEntry(ctx, e.ID)
		if err != nil {
			return Entry{}, false, err
		}
		switch {
		case ok && at.Ref == ref:
			// Another process did the same operation in the same slot.
			s.putRef(ctx, at)
			return at, false, nil
		case !ok:
			// The slot is free, so the ref is what conflicted: the operation is done.
			existing, found, err := s.lookupRefSlow(ctx, ref)
			if err != nil {
				return Entry{}, false, err
			}
			if found {
				return existing, false, nil
			}
		}
		// Someone else extended the chain: re-read the head and try again.
		if s.opts.OnConflict != nil {
			s.opts.OnConflict()
		}
		if attempt >= s.opts.MaxAttempts {
			return Entry{}, false, fmt.Errorf("append to %s after %d attempts: %w", account, attempt, ErrContention)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return Entry{}, false, err
		}
	}
}

func (s *Store) signup(Entry) (draft, error) {
	return draft{Kind: KindCredit, AmountMicros: s.opts.FreeCreditMicros, Reason: ReasonSignup}, nil
}

// backoff is a small jittered delay growing with the attempt, capped at ~50 ms.
func backoff(attempt int) time.Duration {
	base := time.Duration(min(attempt, 10)) * 2 * time.Millisecond
	return base/2 + rand.N(base)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
