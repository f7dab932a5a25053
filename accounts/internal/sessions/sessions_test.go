package sessions

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/shared/embedded"
)

func testDB(t *testing.T) *mongo.Database {
	t.Helper()
	ctx := context.Background()
	mg, err := embedded.StartMongo(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg.Shutdown)
	client, err := mongo.Connect(options.Client().ApplyURI(mg.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	return client.Database("codeexec")
}

func TestSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewStore(db, time.Hour)
	s.now = func() time.Time { return now }

	token, sess, err := s.Create(ctx, "usr_1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, TokenPrefix) || len(token) != len(TokenPrefix)+52 || sess.Hash != Hash(token) || !sess.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("got token %q session %+v, want a ces_ token of 256 bits stored as its hash, expiring in an hour", token, sess)
	}
	var raw bson.Raw
	if err := db.Collection("sessions").FindOne(ctx, bson.D{}).Decode(&raw); err != nil || strings.Contains(raw.String(), token) {
		t.Fatalf("stored session %s (%v) holds the token", raw, err)
	}
	if got, err := s.Verify(ctx, token); err != nil || got.UserID != "usr_1" {
		t.Fatalf("verify: got %+v %v", got, err)
	}
	for _, bad := range []string{"", "ces_nope", token + "x", strings.TrimPrefix(token, TokenPrefix), strings.Repeat("c", 200)} {
		if _, err := s.Verify(ctx, bad); err != ErrInvalid {
			t.Errorf("verify %q: got %v, want ErrInvalid", bad, err)
		}
	}

	now = now.Add(time.Hour)
	if _, err := s.Verify(ctx, token); err != ErrInvalid {
		t.Fatalf("verify at expiry: got %v, want ErrInvalid", err)
	}
	live, _, err := s.Create(ctx, "usr_2")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: got %d %v, want the expired session deleted", n, err)
	}
	if _, err := s.Verify(ctx, live); err != nil {
		t.Fatalf("sweep deleted a live session: %v", err)
	}
	if h, err := s.End(ctx, live); err != nil || h != Hash(live) {
		t.Fatalf("end: got %q %v", h, err)
	}
	if _, err := s.Verify(ctx, live); err != ErrInvalid {
		t.Fatalf("verify after end: got %v, want ErrInvalid", err)
	}
	if _, err := s.End(ctx, live); err != nil {
		t.Fatalf("end twice: %v", err)
	}
}
