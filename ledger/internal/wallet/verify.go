package wallet

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Summary is a checked account.
type Summary struct {
	Account         string
	Entries         int
	AvailableMicros int64 // the sum of the entries' amounts
	HeldMicros      int64 // the sum of the entries' held changes
}

// MismatchError lists what is wrong with an account's chain.
type MismatchError struct {
	Account  string
	Problems []string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("account %s: %s", e.Account, strings.Join(e.Problems, "; "))
}

// Verify checks account's chain: sequence numbers 1..n without gaps under their _ids, the
// signup credit first, every entry's running totals equal to the sums of the entries up
// to it (so the balance equals the sum of the entries), each kind's shape, every close
// matching its job's hold, held never negative, available never negative (except after a
// charge without a hold written before such charges stopped at zero), an unpaid part only
// on a charge without a hold that left nothing available. It returns a *MismatchError
// when anything is off.
func (s *Store) Verify(ctx context.Context, account string) (Summary, error) {
	es, err := s.Entries(ctx, account)
	if err != nil {
		return Summary{}, err
	}
	return check(account, es)
}

// VerifyAll checks every account. It reads all entries at once (a maintenance tool, not a
// hot path). The error joins every account's *MismatchError.
func (s *Store) VerifyAll(ctx context.Context) ([]Summary, []error, error) {
	cur, err := s.entries.Find(ctx, bson.D{})
	if err != nil {
		return nil, nil, fmt.Errorf("find entries: %w", err)
	}
	var all []Entry
	if err := cur.All(ctx, &all); err != nil {
		return nil, nil, fmt.Errorf("read entries: %w", err)
	}
	byAccount := map[string][]Entry{}
	for _, e := range all {
		byAccount[e.Account] = append(byAccount[e.Account], e)
	}
	accounts := make([]string, 0, len(byAccount))
	for a := range byAccount {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	var sums []Summary
	var problems []error
	for _, a := range accounts {
		es := byAccount[a]
		sortBySeq(es)
		sum, err := check(a, es)
		sums = append(sums, sum)
		if err != nil {
			problems = append(problems, err)
		}
	}
	return sums, problems, nil
}

func sortBySeq(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return int(a.Seq - b.Seq) })
}

func check(account string, es []Entry) (Summary, error) {
	sum := Summary{Account: account, Entries: len(es)}
	var p []string
	bad := func(e Entry, format string, args ...any) {
		p = append(p, fmt.Sprintf("entry %s (%s): ", e.ID, e.Kind)+fmt.Sprintf(format, args...))
	}
	holds := map[string]Entry{}
	directDebt := false
	for i, e := range es {
		if want := int64(i + 1); e.Seq != want {
			bad(e, "seq %d, want %d (gap or duplicate)", e.Seq, want)
		}
		if e.ID != EntryID(account, e.Seq) || e.Account != account {
			bad(e, "_id/account do not match account %s seq %d", account, e.Seq)
		}
		if i == 0 && e.Ref != OpenRef(account) {
			bad(e, "first entry is %q, want the signup credit %q", e.Ref, OpenRef(account))
		}
		sum.AvailableMicros += e.AmountMicros
		sum.HeldMicros += e.HeldMicros
		if e.AvailableMicros != sum.AvailableMicros {
			bad(e, "availableMicros %d, sum of amounts %d", e.AvailableMicros, sum.AvailableMicros)
		}
		if e.HeldTotalMicros != sum.HeldMicros {
			bad(e, "heldTotalMicros %d, sum of held changes %d", e.HeldTotalMicros, sum.HeldMicros)
		}
		switch e.Kind {
		case KindCredit:
			if e.AmountMicros < 0 || e.HeldMicros != 0 {
				bad(e, "credit of %d/%d", e.AmountMicros, e.HeldMicros)
			}
		case KindHold:
			if e.HeldMicros < 0 || e.AmountMicros != -e.HeldMicros || e.Ref != HoldRef(e.JobID) {
				bad(e, "hold of %d/%d ref %q", e.AmountMicros, e.HeldMicros, e.Ref)
			}
			holds[e.JobID] = e
		case KindCharge, KindRelease:
			if e.Ref != CloseRef(e.JobID) {
				bad(e, "ref %q, want %q", e.Ref, CloseRef(e.JobID))
			}
			h, held := holds[e.JobID]
			switch {
			case held && e.Kind == KindCharge && (e.HeldMicros != -h.HeldMicros || e.AmountMicros != 0):
				bad(e, "charge %d/%d does not close hold of %d", e.AmountMicros, e.HeldMicros, h.HeldMicros)
			case held && e.Kind == KindRelease && (e.HeldMicros != -h.HeldMicros || e.AmountMicros != h.HeldMicros):
				bad(e, "release %d/%d does not close hold of %d", e.AmountMicros, e.HeldMicros, h.HeldMicros)
			case !held && (e.Kind == KindRelease || e.HeldMicros != 0 || e.AmountMicros > 0):
				bad(e, "closes job %s that has no earlier hold on this account", e.JobID)
			case !held && e.UnpaidMicros > 0 && e.AvailableMicros > 0:
				bad(e, "left %d unpaid with %d available", e.UnpaidMicros, e.AvailableMicros)
			case !held && e.AvailableMicros < 0 && e.UnpaidMicros == 0 && e.AmountMicros < 0:
				// Before unpaid amounts were recorded, a charge without a hold could take
				// the balance below zero; such old chains stay valid.
				directDebt = true
			}
			if e.UnpaidMicros < 0 || (e.UnpaidMicros != 0 && (held || e.Kind != KindCharge)) {
				bad(e, "unpaid %d on a close that is not a charge without a hold", e.UnpaidMicros)
			}
			delete(holds, e.JobID)
		default:
			bad(e, "unknown kind")
		}
		if e.HeldTotalMicros < 0 {
			bad(e, "held total %d below zero", e.HeldTotalMicros)
		}
		if e.AvailableMicros < 0 && !directDebt {
			bad(e, "available %d below zero without a direct charge", e.AvailableMicros)
		}
	}
	if len(p) > 0 {
		return sum, &MismatchError{Account: account, Problems: p}
	}
	return sum, nil
}
