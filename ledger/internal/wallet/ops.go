package wallet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/ledger/internal/groupcommit"
	"github.com/codeexec/codeexec/shared/excerpt"
)

// Balance is a wallet's totals after its last entry.
type Balance struct {
	AvailableMicros int64
	HeldMicros      int64
}

func balanceOf(e Entry) Balance {
	return Balance{AvailableMicros: e.AvailableMicros, HeldMicros: e.HeldTotalMicros}
}

// Open gives account its signup credit unless it already has it, and returns the balance.
func (s *Store) Open(ctx context.Context, account string) (Balance, error) {
	if err := checkID("account", account); err != nil {
		return Balance{}, err
	}
	h, err := s.freshHead(ctx, account)
	if err != nil {
		return Balance{}, err
	}
	if h.Seq > 0 {
		return balanceOf(h), nil
	}
	unlock, err := s.locks.lock(ctx, account)
	if err != nil {
		return Balance{}, err
	}
	defer unlock()
	if _, _, err := s.appendTo(ctx, account, OpenRef(account), s.signup); err != nil {
		return Balance{}, err
	}
	h, err = s.freshHead(ctx, account)
	return balanceOf(h), err
}

// Reservation is a job's open hold.
type Reservation struct {
	// Hold is the job's hold entry.
	Hold Entry
	// Balance is the account's balance after the hold (or now, for an existing hold).
	Balance Balance
	// Created is false when the hold existed before this call.
	Created bool
	// HeldSince is when the hold's expiry clock started (its open_holds marker): the
	// sweeper may release it once HeldSince is older than the hold TTL.
	HeldSince time.Time
}

// Hold reserves priceMicros of account's available balance for jobID. The same jobID
// holds once: a repeated call, while the hold is open, returns it with Created false
// (whatever priceMicros and recordsOwner are now). recordsOwner is the reserver's promise
// to record the job's owner in the job index once the job is queued (see
// HoldsAwaitingOwner); it is kept on the hold's marker. Refusals, all writing nothing: ErrNoWallet (the account
// was never opened), ErrInsufficientFunds (the price does not fit), ErrConflict (the job is
// another account's), ErrSettled (the job's hold is closed, or the job was charged
// without one: a job never gets a second hold).
func (s *Store) Hold(ctx context.Context, account, jobID string, priceMicros int64, recordsOwner bool) (Reservation, error) {
	if err := errors.Join(checkID("account", account), checkID("job id", jobID)); err != nil {
		return Reservation{}, err
	}
	if priceMicros < 0 {
		return Reservation{}, fmt.Errorf("%w: negative price", ErrInvalid)
	}
	unlock, err := s.locks.lock(ctx, account)
	if err != nil {
		return Reservation{}, err
	}
	defer unlock()

	if e, ok, err := s.lookupRef(ctx, HoldRef(jobID)); err != nil || ok {
		if err != nil {
			return Reservation{}, err
		}
		return s.existingHold(ctx, account, e)
	}
	if e, ok, err := s.lookupRef(ctx, CloseRef(jobID)); err != nil || ok {
		if err != nil {
			return Reservation{}, err
		}
		return Reservation{}, closedFor(account, e)
	}
	head, err := s.head(ctx, account)
	if err != nil {
		return Reservation{}, err
	}
	if head.Seq == 0 {
		return Reservation{}, ErrNoWallet
	}
	// The marker goes first, so that an open hold always has one for the sweeper to find.
	since := s.now()
	fresh, err := s.putHoldMarker(ctx, holdMarker{JobID: jobID, Account: account, PriceMicros: priceMicros,
		CreatedAt: since, RecordsOwner: recordsOwner})
	if err != nil {
		return Reservation{}, err
	}
	e, created, err := s.appendChecked(ctx, account, HoldRef(jobID), func(head Entry) (draft, error) {
		if head.AvailableMicros < priceMicros {
			return draft{}, ErrInsufficientFunds
		}
		return draft{Kind: KindHold, AmountMicros: -priceMicros, HeldMicros: priceMicros, JobID: jobID}, nil
	})
	if errors.Is(err, ErrInsufficientFunds) || errors.Is(err, ErrNoWallet) {
		if !fresh {
			// A marker was there before us: the hold may exist without its refs copy.
			if e, ok, lerr := s.lookupRefSlow(ctx, HoldRef(jobID)); lerr != nil || ok {
				if lerr != nil {
					return Reservation{}, lerr
				}
				return s.existingHold(ctx, account, e)
			}
		}
		if fresh {
			s.deleteHoldMarker(ctx, jobID)
		}
		return Reservation{}, err
	}
	if err != nil {
		return Reservation{}, err
	}
	if !created {
		// The hold was there without its refs copy. A marker we just wrote says nothing
		// about it: an open hold has its own, so ours goes, and the hold may be closed.
		if fresh {
			s.deleteHoldMarker(ctx, jobID)
		}
		return s.existingHold(ctx, account, e)
	}
	if !fresh {
		// The marker someone else wrote first is the one the sweeper reads.
		since = s.markerSince(ctx, jobID, since)
	}
	return Reservation{Hold: e, Balance: balanceOf(e), Created: true, HeldSince: since}, nil
}

// markerSince is when jobID's hold marker was written, or fallback when it cannot be read.
func (s *Store) markerSince(ctx context.Context, jobID string, fallback time.Time) time.Time {
	var m holdMarker
	if err := s.holds.FindOne(ctx, bson.D{{Key: "_id", Value: jobID}}).Decode(&m); err != nil {
		return fallback
	}
	return m.CreatedAt
}

// existingHold answers a Hold that met the job's hold entry e: the hold if it is
// account's and still open.
func (s *Store) existingHold(ctx context.Context, account string, e Entry) (Reservation, error) {
	if e.Account != account {
		return Reservation{}, fmt.Errorf("%w: job %s is held by another account", ErrConflict, excerpt.Quote(e.JobID))
	}
	closeEntry, closed, since, err := s.holdState(ctx, e)
	if err != nil {
		return Reservation{}, err
	}
	if closed {
		return Reservation{}, closedFor(account, closeEntry)
	}
	// The balance as this process knows it: it may lag entries another ledger process
	// appended a moment ago, which only this answer's figure shows.
	h, err := s.head(ctx, account)
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{Hold: e, Balance: balanceOf(h), HeldSince: since}, nil
}

// holdState tells whether hold has a close entry, and when its expiry clock started.
// The close's refs copy answers first; when it misses, a hold marker means the hold is
// open (the marker is deleted only after the close entry and its copy are written), and
// only with no marker are the entries themselves searched, so that the common case costs
// _id reads only. The one blind spot is a close written by another process (or one that
// crashed) between its entry and its copy: the hold then looks open a moment longer. The
// money stays right (that close's ref is taken), and a close by the sweeper comes only
// after the TTL, when the hold's remaining time is already 0.
func (s *Store) holdState(ctx context.Context, hold Entry) (closeEntry Entry, closed bool, since time.Time, err error) {
	if e, ok, err := s.lookupRef(ctx, CloseRef(hold.JobID)); err != nil || ok {
		return e, ok, time.Time{}, err
	}
	var m holdMarker
	err = s.holds.FindOne(ctx, bson.D{{Key: "_id", Value: hold.JobID}}).Decode(&m)
	switch {
	case err == nil:
		return Entry{}, false, m.CreatedAt, nil
	case !errors.Is(err, mongo.ErrNoDocuments):
		return Entry{}, false, time.Time{}, fmt.Errorf("read hold marker %s: %w", hold.JobID, err)
	}
	e, ok, err := s.lookupRefSlow(ctx, CloseRef(hold.JobID))
	if err != nil || ok {
		return e, ok, time.Time{}, err
	}
	// Open with no marker: the sweeper cannot see it. Count from the hold itself.
	s.opts.Log.Warn("open hold without its marker", "job_id", hold.JobID, "account", hold.Account)
	return Entry{}, false, hold.CreatedAt, nil
}

// closedFor is the refusal of a hold on a job that is closed by the entry e.
func closedFor(account string, e Entry) error {
	if e.Account != account {
		return fmt.Errorf("%w: job %s belongs to another account", ErrConflict, excerpt.Quote(e.JobID))
	}
	return fmt.Errorf("%w: job %s was %s", ErrSettled, excerpt.Quote(e.JobID), closedHow(e))
}

func closedHow(e Entry) string {
	switch {
	case e.Kind == KindCharge:
		return "charged"
	case e.Reason == ReasonExpired:
		return "released after its hold expired"
	case e.Reason == ReasonOrphaned:
		return "given up and released: it was not queued within the ledger's grace"
	}
	return "released"
}

// Settlement is how a job's money ended.
type Settlement struct {
	// Entry is the job's close entry (charge or release); zero when nothing was written
	// (an internal error of a job that was never reserved).
	Entry Entry
	// Created is false when the job had been settled before (a redelivery).
	Created bool
	// ChargedMicros is what the account paid for the job.
	ChargedMicros int64
	// UnpaidMicros is the part of the price of a job charged without a hold that the
	// available balance could not cover (and that was not taken).
	UnpaidMicros int64
	// NoWallet: the job had no hold and its account was never opened, so nothing could
	// be written; the whole price is unpaid.
	NoWallet bool
}

// Close settles a job exactly once: charge true takes the hold's amount out of held (the
// price the job was reserved at), charge false releases it back to available. A job with
// no hold (an internal publisher that did not reserve) is charged directPriceMicros from
// account's available balance, but never below zero: what the balance cannot cover is
// recorded on the charge as unpaid and not taken. Released, a job with no hold writes
// nothing, and so does a charge for an account that was never opened (NoWallet). Whatever
// the order and number of calls, a job gets one close entry.

func (s *Store) Close(ctx context.Context, jobID, account string, charge bool, directPriceMicros int64, reason string) (Settlement, error) {
	if err := checkID("job id", jobID); err != nil {
		return Settlement{}, err
	}
	// No look for an existing close first: nearly every result comes once, and a repeated
	// one meets its close through the ref's unique index when appending (appendChecked).
	hold, held, err := s.findHold(ctx, jobID)
	if err != nil {
		return Settlement{}, err
	}
	if !held && !charge {
		return Settlement{}, nil
	}
	if held {
		if account != "" && account != hold.Account {
			s.opts.Log.Warn("result names another account than the hold; using the hold's",
				"job_id", jobID, "result_account", account, "hold_account", hold.Account)
		}
		account = hold.Account
	}
	if err := checkID("account", account); err != nil {
		return Settlement{}, err
	}
	if !held && directPriceMicros < 0 {
		return Settlement{}, fmt.Errorf("%w: negative price", ErrInvalid)
	}
	unlock, err := s.locks.lock(ctx, account)
	if err != nil {
		return Settlement{}, err
	}
	defer unlock()
	e, created, err := s.appendChecked(ctx, account, CloseRef(jobID), func(head Entry) (draft, error) {
		switch {
		case !held:
			paid := min(directPriceMicros, max(head.AvailableMicros, 0))
			return draft{Kind: KindCharge, AmountMicros: -paid, UnpaidMicros: directPriceMicros - paid,
				JobID: jobID, Reason: ReasonDirect}, nil
		case charge:
			return draft{Kind: KindCharge, HeldMicros: -hold.HeldMicros, JobID: jobID, Reason: reason}, nil
		default:
			return draft{Kind: KindRelease, AmountMicros: hold.HeldMicros, HeldMicros: -hold.HeldMicros, JobID: jobID, Reason: reason}, nil
		}
	})
	if errors.Is(err, ErrNoWallet) && !held {
		return Settlement{UnpaidMicros: directPriceMicros, NoWallet: true}, nil
	}
	if err != nil {
		return Settlement{}, err
	}
	if held {
		s.deleteHoldMarker(ctx, jobID)
	}
	return settled(e, created), nil
}

func settled(e Entry, created bool) Settlement {
	return Settlement{Entry: e, Created: created, ChargedMicros: e.ChargedMicros(), UnpaidMicros: e.UnpaidMicros}
}

// findHold returns the hold of jobID. It asks the refs copy first; when that misses, an
// open hold still has its marker, and only then are the entries themselves searched.
func (s *Store) findHold(ctx context.Context, jobID string) (Entry, bool, error) {
	if e, ok, err := s.lookupRef(ctx, HoldRef(jobID)); ok || err != nil {
		return e, ok, err
	}
	err := s.holds.FindOne(ctx, bson.D{{Key: "_id", Value: jobID}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("read hold marker %s: %w", jobID, err)
	}
	return s.lookupRefSlow(ctx, HoldRef(jobID))
}

// Credit adds amountMicros (1..MaxCreditMicros) to account once per reference. Refusals,
// writing nothing: ErrInvalid (the amount, or ErrOverflow: the balance would not fit an
// int64), ErrNoWallet, ErrConflict (the reference credited another account or amount).
func (s *Store) Credit(ctx context.Context, account string, amountMicros int64, reference string) (Entry, Balance, bool, error) {
	if err := errors.Join(checkID("account", account), checkID("reference", reference)); err != nil {
		return Entry{}, Balance{}, false, err
	}
	if amountMicros < 1 || amountMicros > MaxCreditMicros {
		return Entry{}, Balance{}, false, fmt.Errorf("%w: a credit must be 1 to %d micro-dollars", ErrInvalid, MaxCreditMicros)
	}
	unlock, err := s.locks.lock(ctx, account)
	if err != nil {
		return Entry{}, Balance{}, false, err
	}
	defer unlock()
	e, created, err := s.appendTo(ctx, account, CreditRef(reference), func(Entry) (draft, error) {
		return draft{Kind: KindCredit, AmountMicros: amountMicros, Reason: reference}, nil
	})
	if err != nil {
		return Entry{}, Balance{}, false, err
	}
	if !created && (e.Account != account || e.AmountMicros != amountMicros) {
		return e, Balance{}, false, fmt.Errorf("%w: reference %s credited another amount or user", ErrConflict, excerpt.Quote(reference))
	}
	h, err := s.freshHead(ctx, account)
	return e, balanceOf(h), created, err
}

// Entries returns account's entries in sequence order.
func (s *Store) Entries(ctx context.Context, account string) ([]Entry, error) {
	cur, err := s.entries.Find(ctx, bson.D{{Key: "account", Value: account}})
	if err != nil {
		return nil, fmt.Errorf("find entries of %s: %w", account, err)
	}
	var es []Entry
	if err := cur.All(ctx, &es); err != nil {
		return nil, fmt.Errorf("read entries of %s: %w", account, err)
	}
	sortBySeq(es)
	return es, nil
}

type holdMarker struct {
	JobID       string    `bson:"_id"`
	Account     string    `bson:"account"`
	PriceMicros int64     `bson:"priceMicros"`
	CreatedAt   time.Time `bson:"createdAt"`
	// RecordsOwner: the reserver promised the job's owner record (Hold's recordsOwner).
	RecordsOwner bool `bson:"recordsOwner,omitempty"`
}

// putHoldMarker reports whether it created the marker (false: it was there already).
func (s *Store) putHoldMarker(ctx context.Context, m holdMarker) (bool, error) {
	err := s.markerInserts.Do(ctx, m)
	if errors.Is(err, groupcommit.ErrDuplicate) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("write hold marker %s: %w", m.JobID, err)
	}
	return true, nil
}

// deleteHoldMarker is best effort: a leftover marker is cleaned by the sweeper. Markers
// closed at the same moment go in one command.
func (s *Store) deleteHoldMarker(ctx context.Context, jobID string) {
	if err := s.markerDeletes.Do(ctx, jobID); err != nil {
		s.opts.Log.Warn("delete hold marker", "job_id", jobID, "err", err)
	}
}

// OpenHolds counts the holds not yet closed (their markers).
func (s *Store) OpenHolds(ctx context.Context) (int64, error) {
	n, err := s.holds.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("count open holds: %w", err)
	}
	return n, nil
}

// OldestHold is when the oldest open hold was taken; ok is false when none is open.
func (s *Store) OldestHold(ctx context.Context) (at time.Time, ok bool, err error) {
	var m holdMarker
	err = s.holds.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "createdAt", Value: 1}})).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("find the oldest open hold: %w", err)
	}
	return m.CreatedAt, true, nil
}

// ExpireHolds releases every hold created before cutoff that has no close entry yet.
// A late result and the sweeper compete for the same close ref, so only one of them
// closes the job. It returns how many holds it released.
func (s *Store) ExpireHolds(ctx context.Context, cutoff time.Time) (int, error) {
	markers, err := s.markersBefore(ctx, cutoff, false)
	if err != nil {
		return 0, err
	}
	released := 0
	var errs []error
	for _, m := range markers {
		ok, err := s.releaseMarked(ctx, m, ReasonExpired)
		if err != nil {
			errs = append(errs, fmt.Errorf("release expired hold of job %s: %w", m.JobID, err))
			continue
		}
		if ok {
			released++
		}
	}
	return released, errors.Join(errs...)
}

// OpenHold is an open hold as its marker tells it.
type OpenHold struct {
	JobID   string
	Account string
	// Since is when the hold was taken (its marker written), on the ledger's clock.
	Since time.Time
}

// HoldsAwaitingOwner returns the open holds taken before cutoff whose reserver promised to
// record the job's owner in the job index once the job is queued (Hold's recordsOwner).
// It reads the open_holds markers only, as the expiry sweep does: never the entries.
func (s *Store) HoldsAwaitingOwner(ctx context.Context, cutoff time.Time) ([]OpenHold, error) {
	markers, err := s.markersBefore(ctx, cutoff, true)
	if err != nil {
		return nil, err
	}
	holds := make([]OpenHold, 0, len(markers))
	for _, m := range markers {
		holds = append(holds, OpenHold{JobID: m.JobID, Account: m.Account, Since: m.CreatedAt})
	}
	return holds, nil
}

// ReleaseHold releases h back to its account's available balance, for reason, unless the
// job was closed before (a result, or another ledger process, came first: the job's close
// ref is unique). It reports whether this call wrote the release. A marker with no hold
// behind it (a refused reservation left it) is dropped.
func (s *Store) ReleaseHold(ctx context.Context, h OpenHold, reason string) (bool, error) {
	if err := checkID("job id", h.JobID); err != nil {
		return false, err
	}
	return s.releaseMarked(ctx, holdMarker{JobID: h.JobID, Account: h.Account, CreatedAt: h.Since}, reason)
}

// markersBefore reads the markers of holds taken before cutoff (only the ones that
// promised an owner record, when awaitingOwner is set).
func (s *Store) markersBefore(ctx context.Context, cutoff time.Time, awaitingOwner bool) ([]holdMarker, error) {
	filter := bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}}
	if awaitingOwner {
		filter = append(filter, bson.E{Key: "recordsOwner", Value: true})
	}
	cur, err := s.holds.Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("find open holds taken before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	var markers []holdMarker
	if err := cur.All(ctx, &markers); err != nil {
		return nil, fmt.Errorf("read open holds: %w", err)
	}
	return markers, nil
}

// releaseMarked releases the hold of marker m for reason, and reports whether this call
// wrote the release; a marker whose hold was closed before, or that has no hold, goes.
func (s *Store) releaseMarked(ctx context.Context, m holdMarker, reason string) (bool, error) {
	_, ok, err := s.lookupRefSlow(ctx, HoldRef(m.JobID))
	if err != nil {
		return false, err
	}
	if !ok {
		// A refused or abandoned reservation left its marker behind.
		s.deleteHoldMarker(ctx, m.JobID)
		return false, nil
	}
	st, err := s.Close(ctx, m.JobID, m.Account, false, 0, reason)
	if err != nil {
		return false, err
	}
	if !st.Created {
		s.deleteHoldMarker(ctx, m.JobID) // closed before; its marker delete was lost
	}
	return st.Created, nil
}
