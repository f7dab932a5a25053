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
	"github.com/codeexec/codeexec/shared/streams"
)

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
	if err := streams.Ensure(ctx, js, 1); err != nil {
		t.Fatalf("ensure streams: %v", err)
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
