package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

// ErrNoResult: no result is stored for the job (yet).
var ErrNoResult = errors.New("no result stored for the job")

// StoredResult reads a job's result from the results stream, or ErrNoResult.
func StoredResult(ctx context.Context, results jetstream.Stream, jobID string) (messages.Result, error) {
	msg, err := results.GetLastMsgForSubject(ctx, subjects.Results(jobID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return messages.Result{}, fmt.Errorf("result of %s: %w", jobID, ErrNoResult)
	}
	if err != nil {
		return messages.Result{}, fmt.Errorf("get result of %s: %w", jobID, err)
	}
	var r messages.Result
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return messages.Result{}, fmt.Errorf("decode result of %s: %w", jobID, err)
	}
	return r, nil
}
