package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/codeexec/codeexec/edge/internal/dispatch"
	"github.com/codeexec/codeexec/edge/internal/presence"
	"github.com/codeexec/codeexec/shared/messages"
)

// Region policies of an execute request.
const (
	regionExact  = "exact"
	regionPrefer = "prefer"
)

// regionsFor lists, nearest first, the regions a job asked for region may run in under
// policy: only region when exact; under prefer, then this edge's own region and its
// neighbors (CODEEXEC_REGION_NEIGHBORS), which are nearest to this edge's clients.
func (s *Server) regionsFor(region, policy string) []string {
	out := []string{region}
	if policy != regionPrefer {
		return out
	}
	for _, r := range append([]string{s.cfg.Region}, s.cfg.RegionNeighbors...) {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// placeJob sets job.Region to the first region of regionsFor that has a live runner for
// the job's language, or answers 503 no_runner when none has.
func (s *Server) placeJob(job *messages.Job, policy string) error {
	regions := s.regionsFor(job.Region, policy)
	for _, r := range regions {
		if s.presence.Available(r, job.Language) {
			job.Region = r
			return nil
		}
	}
	if len(regions) == 1 {
		return newError(http.StatusServiceUnavailable, "no_runner",
			"no runner serves %s in region %s right now; try again shortly", job.Language, job.Region)
	}
	return newError(http.StatusServiceUnavailable, "no_runner",
		"no runner serves %s in region %s nor in its fallback regions (%s) right now; try again shortly",
		job.Language, job.Region, strings.Join(regions[1:], ", "))
}

// strandCheck is how often a waiting request looks at its job's region.
const strandCheck = 250 * time.Millisecond

// watchStranded watches a job while its client waits: when the job is still queued (no
// runner started it) and its region has had no live runner of its language for longer
// than presence.Expiry, the job is abandoned (dispatch.Abandon: an internal_error result,
// which closes its hold, so no runner can run it later). The grace of one more expiry
// lets a region's runner restart without losing the jobs waiting for it.
//
// stop ends the watch, waits for it, and reports whether the job was abandoned.
func (s *Server) watchStranded(ctx context.Context, job *messages.Job) (stop func() bool) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var abandoned bool
	go func() {
		defer close(done)
		abandoned = s.abandonWhenStranded(ctx, job)
	}()
	return func() bool {
		cancel()
		<-done
		return abandoned
	}
}

func (s *Server) abandonWhenStranded(ctx context.Context, job *messages.Job) bool {
	log := s.log.With("job_id", job.JobID, "region", job.Region, "language", job.Language)
	tick := time.NewTicker(strandCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if s.presence.Unserved(job.Region, job.Language) <= presence.Expiry {
			continue
		}
		running, err := s.dispatch.Running(ctx, job.JobID)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("look up whether a stranded job runs", "err", err)
			}
			continue
		}
		if running {
			return false // a runner took it: its result, or the end of the wait, answers
		}
		err = s.dispatch.Abandon(ctx, job, "no runner of "+job.Language+" in region "+job.Region+
			" took the job: the region lost its runners while the job waited; not run, not charged")
		switch {
		case errors.Is(err, dispatch.ErrResultStored), errors.Is(err, dispatch.ErrStarted):
			return false // it runs or ran after all: the waiter gets that result
		case err != nil:
			log.Warn("abandon a stranded job; trying again", "err", err)
			continue
		}
		log.Info("abandoned a job stranded in a region without runners")
		return true
	}
}
