// Package testenv starts the real parts the ledger's tests run against: an embedded
// FerretDB shared by a test binary (one fresh database per test) and an embedded
// nats-server with JetStream per test. Only tests import it.
package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/streams"
)

var (
	once   sync.Once
	dir    string
	ferret *embedded.Mongo
	client *mongo.Client
	errRun error
	dbSeq  atomic.Int64
)

// Main runs the tests and then stops the shared FerretDB. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if client != nil {
		_ = client.Disconnect(context.Background())
	}
	if ferret != nil {
		ferret.Shutdown()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// Mongo returns a fresh database on the shared embedded FerretDB.
func Mongo(t testing.TB) *mongo.Database {
	t.Helper()
	once.Do(func() {
		dir, errRun = os.MkdirTemp("", "ledger-ferretdb-")
		if errRun != nil {
			return
		}
		ferret, errRun = embedded.StartMongo(context.Background(), dir, nil)
		if errRun != nil {
			return
		}
		client, errRun = mongo.Connect(options.Client().ApplyURI(ferret.URI).SetTimeout(30 * time.Second))
	})
	if errRun != nil {
		t.Fatalf("start embedded FerretDB: %v", errRun)
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return client.Database(fmt.Sprintf("t%d_%s", dbSeq.Add(1), name))
}

// NATS starts a nats-server with JetStream for one test, provisions the streams and
// returns a connection.
func NATS(t testing.TB) (*embedded.NATS, *nats.Conn) {
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
	return srv, nc
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

// Eventually polls cond until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
