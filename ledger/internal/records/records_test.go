package records_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codeexec/codeexec/ledger/internal/records"
	"github.com/codeexec/codeexec/ledger/internal/testenv"
	"github.com/codeexec/codeexec/shared/messages"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Records inserted at once share insertMany calls; each job is still created exactly once,
// whatever the number of concurrent inserts of it, and its duplicates say so.
func TestConcurrentInsertsCreateEachRecordOnce(t *testing.T) {
	s := records.NewStore(testenv.Mongo(t))
	if err := s.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	const jobs, copies = 20, 5
	var created [jobs]atomic.Int64
	var wg sync.WaitGroup
	for j := range jobs {
		for range copies {
			wg.Go(func() {
				r := records.FromResult(messages.Result{JobID: fmt.Sprintf("job-%02d", j), UserID: "u",
					Language: "python", Status: messages.StatusSucceeded}, 10, "local", time.Now())
				ok, err := s.Insert(t.Context(), r)
				if err != nil {
					t.Errorf("insert job-%02d: %v", j, err)
				}
				if ok {
					created[j].Add(1)
				}
			})
		}
	}
	wg.Wait()
	for j := range jobs {
		if n := created[j].Load(); n != 1 {
			t.Errorf("job-%02d: created %d times, want 1", j, n)
		}
		if _, ok, err := s.Get(t.Context(), fmt.Sprintf("job-%02d", j)); err != nil || !ok {
			t.Errorf("job-%02d: not found (%v)", j, err)
		}
	}
}
