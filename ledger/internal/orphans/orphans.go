// Package orphans gives up the jobs whose reserver died between the reserve and the
// publish, and releases their holds within a minute instead of the hold TTL.
//
// The design, and why: a reserver that sets messages.ReserveRequest.RecordsOwner (the edge)
// publishes the job first and records its owner in the job index (key = jobId) right
// after, before it answers its client. So an open hold whose job still has no owner
// record after a grace longer than any live edge takes from its reserve to that record
// was never queued, or was queued by an edge that died before it answered anyone. Either
// way nobody waits for it, and the job must neither run nor stay held.
//
// Releasing the hold alone would not be safe: a job published late (or queued just
// before its edge died) could be claimed by a runner between the look and the release,
// and run for free. So the sweeper first creates the job's claim in the job index as
// abandoned (subjects.AbandonedClaim), exactly as the edge's Dispatcher.Abandon does; a
// runner runs a job only after creating (or taking over) that claim itself, so whichever
// of the two creates it first decides: a job is either run (and its result settles the
// hold) or given up (and released here), never both. A runner that meets the abandoned
// claim later refuses the job with an internal_error result, which releases nothing
// twice: the job's close ref is unique.
//
// The other candidate, recording the owner before the reserve and abandoning jobs with a
// record but no published job, needs to know whether a job is in the work-queue stream,
// which JetStream cannot tell by job id; the owner record written after the publish is
// that sign. Holds of reservers that make no promise (internal publishers, the runner's
// own reserve) are left to the hold TTL, as before.
package orphans

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/ledger/internal/telemetry"
	"github.com/codeexec/codeexec/ledger/internal/wallet"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Index is what the sweeper uses of the job index (a jetstream.KeyValue).
type Index interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
}

// Sweeper releases the holds of jobs that were never queued; the ledger runs its Sweep
// every orphan interval. Several ledgers may sweep at once: the claim and the close ref
// are each created once.
type Sweeper struct {
	Wallet *wallet.Store
	Index  Index
	// Grace is how long a hold may wait for its job's owner record. It must exceed the
	// longest a live edge takes from its reserve to that record (its publish and its
	// record each retry for up to 10 s through a JetStream leader election).
	Grace   time.Duration
	Now     func() time.Time // the clock holds are dated on
	Metrics *telemetry.Metrics
	Log     *slog.Logger
}

// Sweep runs one pass and returns how many holds it released.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	holds, err := s.Wallet.HoldsAwaitingOwner(ctx, s.Now().Add(-s.Grace))
	if err != nil {
		return 0, err
	}
	released := 0
	var errs []error
	for _, h := range holds {
		ok, err := s.settle(ctx, h)
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", h.JobID, err))
			continue
		}
		if ok {
			released++
		}
	}
	return released, errors.Join(errs...)
}

// settle gives up h's job and releases its hold if the job was never queued, and reports
// whether it released it now.
func (s *Sweeper) settle(ctx context.Context, h wallet.OpenHold) (bool, error) {
	if !subjects.Token(h.JobID) {
		return false, nil // no edge makes such a job id; the hold TTL handles it
	}
	_, err := s.Index.Get(ctx, h.JobID)
	switch {
	case err == nil:
		return false, nil // queued: its result (or the hold TTL) settles it
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return false, fmt.Errorf("read the job's owner record: %w", err)
	}
	given, err := s.abandon(ctx, h.JobID)
	if err != nil || !given {
		return false, err
	}
	released, err := s.Wallet.ReleaseHold(ctx, h, wallet.ReasonOrphaned)
	if err != nil {
		return false, fmt.Errorf("release the hold of a job given up: %w", err)
	}
	if released {
		s.Metrics.Releases.WithLabelValues(wallet.ReasonOrphaned).Inc()
		s.Log.Info("hold released", "reason", wallet.ReasonOrphaned, "job_id", h.JobID, "user_id", h.Account,
			"held_for", s.Now().Sub(h.Since).Round(time.Millisecond))
	}
	return released, nil
}

// abandon takes the job's claim as abandoned, so that no runner can run it, and reports
// whether the job is given up: false when a runner claimed it first (it runs, and its
// result settles the hold).
func (s *Sweeper) abandon(ctx context.Context, jobID string) (bool, error) {
	key := subjects.JobRunningKey(jobID)
	_, err := s.Index.Create(ctx, key, []byte(subjects.AbandonedClaim))
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, jetstream.ErrKeyExists):
		return false, fmt.Errorf("claim the job as abandoned: %w", err)
	}
	// Claimed before: by a runner, or abandoned by its edge or an earlier sweep that
	// stopped before its release.
	e, err := s.Index.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("read the job's claim: %w", err)
	}
	return string(e.Value()) == subjects.AbandonedClaim, nil
}
