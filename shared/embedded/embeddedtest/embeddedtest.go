// Package embeddedtest starts the embedded parts a test runs against and stops them when
// the test ends. Only tests import it.
package embeddedtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/streams"
)

// TestPlan is what NATS provisions: one replica, the default sizes, and the job consumers of
// every built-in language in region "local".
func TestPlan(t testing.TB) streams.Plan {
	t.Helper()
	catalog, err := languages.Default()
	if err != nil {
		t.Fatal(err)
	}
	return streams.Plan{Replicas: 1, Regions: []string{"local"}, Languages: catalog.Names()}
}

// NATS starts a nats-server with JetStream for one test, provisions CodeExec's streams and
// returns the server, a connection and its JetStream context.
func NATS(t testing.TB) (*embedded.NATS, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := embedded.StartNATS(t.TempDir(), embedded.NATSOptions{Port: -1})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc := Connect(t, srv, "test")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Provision(ctx, js, TestPlan(t), nil); err != nil {
		t.Fatalf("provision streams: %v", err)
	}
	return srv, nc, js
}

// Connect opens another connection to srv, closed at the end of the test.
func Connect(t testing.TB, srv *embedded.NATS, name string) *nats.Conn {
	t.Helper()
	nc, err := srv.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
