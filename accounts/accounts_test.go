package accounts_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/accounts"
	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

type env struct {
	nc  *nats.Conn
	db  *mongo.Database
	log *bytes.Buffer
}

// start runs the accounts service on embedded NATS and FerretDB.
func start(t *testing.T) env {
	t.Helper()
	dir := t.TempDir()
	ns, err := embedded.StartNATS(dir, embedded.NATSOptions{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	ctx, cancel := context.WithCancel(context.Background())
	mg, err := embedded.StartMongo(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg.Shutdown)
	client, err := mongo.Connect(options.Client().ApplyURI(mg.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{buf: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := client.Database("codeexec")
	svc, err := accounts.New(nc, db, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitForResponder(t, nc, subjects.KeyVerify)
	return env{nc: nc, db: db, log: &logs}
}

func waitForResponder(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := nc.Request(subject, []byte("{}"), time.Second); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no responder on %s", subject)
}

func register(ctx context.Context, nc *nats.Conn, email, user, pass string) (messages.RegisterReply, error) {
	return rpc.Call[messages.RegisterRequest, messages.RegisterReply](ctx, nc, subjects.Register,
		messages.RegisterRequest{V: messages.Version, Email: email, Username: user, Password: pass})
}

func verify(t *testing.T, nc *nats.Conn, key string) messages.KeyVerifyReply {
	t.Helper()
	r, err := rpc.Call[messages.KeyVerifyRequest, messages.KeyVerifyReply](context.Background(), nc, subjects.KeyVerify,
		messages.KeyVerifyRequest{V: messages.Version, APIKey: key})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

func TestRegisterAndVerifyKey(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	const password = "correct horse battery"
	reply, err := register(ctx, e.nc, "Ada@Example.com", "ada", password)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if !strings.HasPrefix(reply.APIKey, "ce_") || len(reply.APIKey) < 30 || reply.UserID == "" {
		t.Fatalf("got reply %+v, want a user id and a ce_ key", reply)
	}
	got := verify(t, e.nc, reply.APIKey)
	if !got.Valid || got.UserID != reply.UserID {
		t.Fatalf("verify own key: got %+v, want valid for %s", got, reply.UserID)
	}
	for _, bad := range []string{"", "ce_nottherightkey", reply.APIKey + "x", strings.ToUpper(reply.APIKey)} {
		if r := verify(t, e.nc, bad); r.Valid {
			t.Errorf("verify %q: got valid, want invalid", bad)
		}
	}

	t.Run("taken email or username is a conflict", func(t *testing.T) {
		for _, c := range [][2]string{{"ada@example.com", "other"}, {"new@example.com", "ada"}} {
			_, err := register(ctx, e.nc, c[0], c[1], password)
			if !rpc.IsCode(err, rpc.CodeConflict) {
				t.Errorf("register %v: got %v, want conflict", c, err)
			}
		}
	})
	t.Run("bad input is refused", func(t *testing.T) {
		for _, c := range [][3]string{
			{"not-an-email", "bob", password},
			{"bob@example.com", "b", password},
			{"bob@example.com", "bob smith", password},
			{"bob@example.com", "bob", "short"},
		} {
			_, err := register(ctx, e.nc, c[0], c[1], c[2])
			if !rpc.IsCode(err, rpc.CodeInvalidInput) {
				t.Errorf("register %v: got %v, want invalid_input", c, err)
			}
		}
	})
	t.Run("no secret is stored or logged in clear", func(t *testing.T) {
		for _, coll := range []string{"users", "api_keys"} {
			cur, err := e.db.Collection(coll).Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			var docs []bson.Raw
			if err := cur.All(ctx, &docs); err != nil {
				t.Fatal(err)
			}
			if len(docs) == 0 {
				t.Fatalf("%s is empty", coll)
			}
			for _, d := range docs {
				s := d.String()
				if strings.Contains(s, password) || strings.Contains(s, reply.APIKey) {
					t.Errorf("%s holds a secret in clear: %s", coll, s)
				}
			}
		}
		logs := e.log.String()
		if strings.Contains(logs, password) || strings.Contains(logs, reply.APIKey) {
			t.Errorf("logs hold a secret in clear:\n%s", logs)
		}
	})
}
