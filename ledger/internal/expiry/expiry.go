// Package expiry releases the holds of jobs that never finished.
package expiry

import (
	"context"
	"log/slog"
	"time"

	"github.com/codeexec/codeexec/ledger/internal/telemetry"
	"github.com/codeexec/codeexec/ledger/internal/wallet"
)

// Sweeper releases holds older than TTL that have no close entry; the ledger runs its
// Sweep every sweep interval. Several ledgers may sweep at once: a job's close ref is
// unique, so each hold is released (or charged by a late result) once.
type Sweeper struct {
	Wallet  *wallet.Store
	TTL     time.Duration    // longer than the longest job, redeliveries included
	Now     func() time.Time // the clock the TTL is measured on
	Metrics *telemetry.Metrics
	Log     *slog.Logger
}

// Sweep runs one pass and returns how many holds it released.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	n, err := s.Wallet.ExpireHolds(ctx, s.Now().Add(-s.TTL))
	if n > 0 {
		s.Metrics.HoldsExpired.Add(float64(n))
		s.Metrics.Releases.WithLabelValues(wallet.ReasonExpired).Add(float64(n))
		s.Log.Info("released expired holds", "count", n, "ttl", s.TTL)
	}
	if open, cerr := s.Wallet.OpenHolds(ctx); cerr == nil {
		s.Metrics.HoldsOutstanding.Set(float64(open))
	}
	if at, ok, oerr := s.Wallet.OldestHold(ctx); oerr == nil {
		age := 0.0
		if ok {
			age = max(s.Now().Sub(at).Seconds(), 0)
		}
		s.Metrics.OldestHoldAge.Set(age)
	}
	return n, err
}
