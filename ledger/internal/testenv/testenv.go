// Package testenv starts the real part the ledger's tests share: an embedded FerretDB for
// the whole test binary (one fresh database per test); embeddedtest gives each test its
// nats-server. Only tests import it.
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

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/waitfor"
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

// Eventually polls cond until it holds or timeout passes (shared/waitfor).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	waitfor.Eventually(t, timeout, what, cond)
}
