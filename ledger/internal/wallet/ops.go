package wallet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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

// Hold reserves priceMicros of account's available balance for jobID. The same jobID
// holds once: a repeated call returns the first hold with created false. A hold that does
// not fit refuses with ErrInsufficientFunds and writes nothing; a job already charged or
// released refuses with ErrSettled.
func (s *Store) Hold(ctx context.Context, account, jobID string, priceMicros int64) (hold Entry, bal Balance, created bool, err error) {
	if err := errors.Join(checkID("account", account), checkID("job id", jobID)); err != nil {
		return Entry{}, Balance{}, false, err
	}
	if priceMicros < 0 {
		return Entry{}, Balance{}, false, fmt.Errorf("%w: negative price", ErrInvalid)
	}
	unlock, err := s.locks.lock(ctx, account)
	if err != nil {
		return Entry{}, Balance{}, false, err
	}
	defer unlock()

	if e, ok, err := s.lookupRef(ctx, HoldRef(jobID)); err != nil || ok {
		return s.existingHold(ctx, account, e, err)
	}
	if _, ok, err := s.lookupRef(ctx, CloseRef(jobID)); err != nil || ok {
		if err != nil {
			return Entry{}, Balance{}, false, err
		}
		return Entry{}, Balance{}, false, ErrSettled
	}
	// The marker goes first, so that an open hold always has one for the sweeper to find.
	fresh, err := s.putHoldMarker(ctx, account, jobID, priceMicros)
	if err != nil {
		return Entry{}, Balance{}, false, err
	}
	e, created, err := s.appendChecked(ctx, account, HoldRef(jobID), func(head Entry) (draft, error) {
		if head.AvailableMicros < priceMicros {
			return draft{}, ErrInsufficientFunds
		}
		return draft{Kind: KindHold, AmountMicros: -priceMicros, HeldMicros: priceMicros, JobID: jobID}, nil
	})
	if errors.Is(err, ErrInsufficientFunds) {
		if !fresh {
			// A marker was there before us: the hold may exist without its refs copy.
			if e, ok, lerr := s.lookupRefSlow(ctx, HoldRef(jobID)); lerr != nil || ok {
				return s.existingHold(ctx, account, e, lerr)
			}
		}
		if fresh {
			s.deleteHoldMarker(ctx, jobID)
		}
		return Entry{}, Balance{}, false, err
	}
	if err != nil {
		return Entry{}, Balance{}, false, err
	}
	if !created {
		return s.existingHold(ctx, account, e, nil)
	}
	return e, balanceOf(e), true, nil
}

func (s *Store) existingHold(ctx context.Context, account string, e Entry, err error) (Entry, Balance, bool, error) {
	if err != nil {
		return Entry{}, Balance{}, false, err
	}
	if e.Account != account {
		return Entry{}, Balance{}, false, fmt.Errorf("%w: job %s is held on another account", ErrConflict, e.JobID)
	}
	h, err := s.freshHead(ctx, account)
	if err != nil {
		return Entry{}, Balance{}, false, err
	}
	return e, balanceOf(h), false, nil
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
}

// Close settles a job exactly once: charge true takes the hold's amount out of held (the
// price the job was reserved at), charge false releases it back to available. A job with
// no hold (an internal publisher that did not reserve) is charged directPriceMicros from
// account's available balance, which only then may go below zero; released, it writes
// nothing. Whatever the order and number of calls, a job gets one close entry.
func (s *Store) Close(ctx context.Context, jobID, account string, charge bool, directPriceMicros int64, reason string) (Settlement, error) {
	if err := checkID("job id", jobID); err != nil {
		return Settlement{}, err
	}
	if e, ok, err := s.lookupRef(ctx, CloseRef(jobID)); err != nil || ok {
		return settled(e, false), err
	}
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
	e, created, err := s.appendTo(ctx, account, CloseRef(jobID), func(Entry) (draft, error) {
		switch {
		case !held:
			return draft{Kind: KindCharge, AmountMicros: -directPriceMicros, JobID: jobID, Reason: ReasonDirect}, nil
		case charge:
			return draft{Kind: KindCharge, HeldMicros: -hold.HeldMicros, JobID: jobID, Reason: reason}, nil
		default:
			return draft{Kind: KindRelease, AmountMicros: hold.HeldMicros, HeldMicros: -hold.HeldMicros, JobID: jobID, Reason: reason}, nil
		}
	})
	if err != nil {
		return Settlement{}, err
	}
	if held {
		s.deleteHoldMarker(ctx, jobID)
	}
	return settled(e, created), nil
}

func settled(e Entry, created bool) Settlement {
	return Settlement{Entry: e, Created: created, ChargedMicros: e.ChargedMicros()}
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

// Credit adds amountMicros to account once per reference.
func (s *Store) Credit(ctx context.Context, account string, amountMicros int64, reference string) (Entry, Balance, bool, error) {
	if err := errors.Join(checkID("account", account), checkID("reference", reference)); err != nil {
		return Entry{}, Balance{}, false, err
	}
	if amountMicros <= 0 {
		return Entry{}, Balance{}, false, fmt.Errorf("%w: a credit must be positive", ErrInvalid)
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
		return e, Balance{}, false, fmt.Errorf("%w: reference %q credited %d to %s", ErrConflict, reference, e.AmountMicros, e.Account)
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
}

// putHoldMarker reports whether it created the marker (false: it was there already).
func (s *Store) putHoldMarker(ctx context.Context, account, jobID string, price int64) (bool, error) {
	_, err := s.holds.InsertOne(ctx, holdMarker{JobID: jobID, Account: account, PriceMicros: price, CreatedAt: s.now()})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("write hold marker %s: %w", jobID, err)
	}
	return true, nil
}

// deleteHoldMarker is best effort: a leftover marker is cleaned by the sweeper.
func (s *Store) deleteHoldMarker(ctx context.Context, jobID string) {
	if _, err := s.holds.DeleteOne(ctx, bson.D{{Key: "_id", Value: jobID}}); err != nil {
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

// ExpireHolds releases every hold created before cutoff that has no close entry yet.
// A late result and the sweeper compete for the same close ref, so only one of them
// closes the job. It returns how many holds it released.
func (s *Store) ExpireHolds(ctx context.Context, cutoff time.Time) (int, error) {
	cur, err := s.holds.Find(ctx, bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	var markers []holdMarker
	if err := cur.All(ctx, &markers); err != nil {
		return 0, fmt.Errorf("read expired holds: %w", err)
	}
	released := 0
	var errs []error
	for _, m := range markers {
		_, ok, err := s.lookupRefSlow(ctx, HoldRef(m.JobID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			// A refused or abandoned reservation left its marker behind.
			s.deleteHoldMarker(ctx, m.JobID)
			continue
		}
		st, err := s.Close(ctx, m.JobID, m.Account, false, 0, ReasonExpired)
		if err != nil {
			errs = append(errs, fmt.Errorf("release expired hold of job %s: %w", m.JobID, err))
			continue
		}
		if st.Created {
			released++
		} else {
			s.deleteHoldMarker(ctx, m.JobID) // closed before; its marker delete was lost
		}
	}
	return released, errors.Join(errs...)
}
