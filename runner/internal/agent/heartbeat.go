package agent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

// heartbeats announces the runner at once, then every HeartbeatEvery until ctx ends.
func (a *Agent) heartbeats(ctx context.Context) {
	a.heartbeat(ctx)
	t := time.NewTicker(a.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.heartbeat(ctx)
		case <-ctx.Done():
			return
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	hb := messages.Heartbeat{
		V:         messages.Version,
		RunnerID:  a.cfg.RunnerID,
		Region:    a.cfg.Region,
		Languages: a.names(),
		Slots:     a.cfg.Slots,
		FreeSlots: a.free(),
		Draining:  a.draining.Load(),
		SentAt:    time.Now().UTC(),
	}
	if hb.Draining {
		hb.FreeSlots = 0
	}
	data, err := json.Marshal(hb)
	if err != nil {
		return
	}
	if err := a.nc.Publish(subjects.Heartbeat(a.cfg.Region, a.cfg.RunnerID), data); err != nil && ctx.Err() == nil {
		a.log.Warn("heartbeat", "err", err)
	}
}
