package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Pending is a published job whose result is yet to come.
type Pending struct {
	JobID string
	// Subject is where the job was published: exec.jobs.<region>.<language>.
	Subject string
	// PriceMicros is the price the ledger holds for the job, charged once it has run.
	PriceMicros int64
	// HoldExpires is when, on this host's clock, the ledger may release the hold of a job
	// that has not run by then (the job is then not run: its hold is closed).
	HoldExpires time.Time

	p      *Publisher
	once   sync.Once
	done   chan struct{}
	result messages.Result
}

func (p *Publisher) register(job *messages.Job, hold messages.ReserveReply) *Pending {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pd, ok := p.waiters[job.JobID]; ok { // the same job submitted again
		return pd
	}
	pd := &Pending{
		JobID:       job.JobID,
		Subject:     subjects.Jobs(job.Region, job.Language),
		PriceMicros: hold.PriceMicros,
		HoldExpires: time.Now().Add(time.Duration(hold.HoldRemainingMs) * time.Millisecond),
		p:           p,
		done:        make(chan struct{}),
	}
	p.waiters[job.JobID] = pd
	return pd
}

func (p *Publisher) forget(pd *Pending) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiters[pd.JobID] == pd {
		delete(p.waiters, pd.JobID)
	}
}

// onNotify hands a result sent to exec.notify.<owner>.<jobId> to its Pending, whether or
// not anyone waits for it yet.
func (p *Publisher) onNotify(m *nats.Msg) {
	jobID := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	var r messages.Result
	if err := json.Unmarshal(m.Data, &r); err != nil || r.JobID != jobID {
		p.opts.Log.Warn("ignored a malformed notification", "subject", m.Subject)
		return
	}
	p.mu.Lock()
	pd, ok := p.waiters[jobID]
	delete(p.waiters, jobID)
	p.mu.Unlock()
	if ok {
		pd.deliver(r)
	}
}

func (pd *Pending) deliver(r messages.Result) {
	pd.once.Do(func() {
		pd.result = r
		close(pd.done)
	})
}

// Wait returns the job's result: from its notification, or from the results stream,
// which it reads every PollInterval in case the notification was missed. It waits as
// long as ctx allows (a job that no runner takes waits until its hold expires, and is
// then not run); the job goes on after an error, and Wait may be called again.
func (pd *Pending) Wait(ctx context.Context) (messages.Result, error) {
	poll := time.NewTicker(pd.p.opts.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-pd.done:
			return pd.result, nil
		case <-poll.C:
			r, err := pd.p.Result(ctx, pd.JobID)
			switch {
			case err == nil:
				pd.p.forget(pd)
				pd.deliver(r)
				return pd.result, nil
			case errors.Is(err, ErrNotFound), ctx.Err() != nil:
			default:
				pd.p.opts.Log.Warn("read the result while waiting", "job_id", pd.JobID, "err", err)
			}
		case <-ctx.Done():
			return messages.Result{}, fmt.Errorf("wait for the result of job %s: %w", pd.JobID, ctx.Err())
		}
	}
}
