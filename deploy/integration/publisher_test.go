package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/subjects"
	"github.com/codeexec/codeexec/shared/waitfor"
)

var (
	exampleBinOnce sync.Once
	exampleBin     string
	exampleBinErr  error
)

// buildPublisherExample builds deploy/examples/publisher once per test binary.
func buildPublisherExample(t *testing.T) string {
	t.Helper()
	exampleBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "codeexec-publisher-example-")
		if err != nil {
			exampleBinErr = err
			return
		}
		exampleBin = filepath.Join(dir, "publisher")
		out, err := exec.Command("go", "build", "-o", exampleBin, "github.com/codeexec/codeexec/deploy/examples/publisher").CombinedOutput()
		if err != nil {
			exampleBinErr = &buildError{out: string(out), err: err}
		}
	})
	if exampleBinErr != nil {
		t.Fatalf("go build the publisher example: %v", exampleBinErr)
	}
	return exampleBin
}

// runPublisherExample runs the example against natsURL for userID, with no other
// CODEEXEC_ setting of the test's environment, and returns its stdout, stderr and exit status.
func runPublisherExample(t *testing.T, natsURL, userID string) (stdout, stderr string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildPublisherExample(t))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CODEEXEC_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CODEEXEC_NATS_URL="+natsURL, "CODEEXEC_EXAMPLE_USER_ID="+userID)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatalf("run the publisher example: %v (stderr %s)", err, errOut.String())
	}
	return out.String(), errOut.String(), status
}

// TestPublisherExampleRunsAndCharges runs deploy/examples/publisher, an internal service
// that publishes straight onto NATS, against an all-in-one: the job runs in a real
// container and is charged like an HTTP one; a job the wallet cannot pay is refused by
// the ledger and never published.
func TestPublisherExampleRunsAndCharges(t *testing.T) {
	const credit = testPrice + testPrice/2 // one job, and half of a second
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.NATSListen = "127.0.0.1:0"
		c.FreeCreditMicros = credit
	})
	user := registerUser(t, mesh.URL)

	stdout, stderr, status := runPublisherExample(t, mesh.NATSURL, user.UserID)
	if status != 0 || stdout != "hello world\n" {
		t.Fatalf("got exit status %d, stdout %q, want 0 and %q (stderr %s)", status, stdout, "hello world\n", stderr)
	}
	var w wallet
	waitfor.Eventually(t, 30*time.Second, "the job is charged", func() (bool, error) {
		w = getWallet(t, mesh.URL, user.APIKey)
		return w.HeldMicros == 0 && w.BalanceMicros != credit, nil
	})
	if w.BalanceMicros != credit-testPrice {
		t.Fatalf("balance after one job: got %d, want %d", w.BalanceMicros, credit-testPrice)
	}

	js := natsOf(t, mesh.NATSURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jobs, err := js.Stream(ctx, subjects.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	before := jobs.CachedInfo().State.LastSeq
	stdout, stderr, status = runPublisherExample(t, mesh.NATSURL, user.UserID)
	if status != 3 || stdout != "" || !strings.Contains(stderr, "insufficient_funds") {
		t.Fatalf("second job: got exit status %d, stdout %q, stderr %q, want 3, nothing, and insufficient_funds", status, stdout, stderr)
	}
	info, err := jobs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != before {
		t.Errorf("a refused job was published: the job stream's last sequence went from %d to %d", before, info.State.LastSeq)
	}
	if w := getWallet(t, mesh.URL, user.APIKey); w.BalanceMicros != credit-testPrice || w.HeldMicros != 0 {
		t.Errorf("wallet after the refusal: got balance %d held %d, want %d and 0", w.BalanceMicros, w.HeldMicros, credit-testPrice)
	}
}
