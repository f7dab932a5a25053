package authcache

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func newTest(ttl time.Duration) (*Cache, *time.Time, *uint64) {
	now := time.Unix(1_700_000_000, 0)
	var reconnects uint64
	c := New(ttl, func() uint64 { return reconnects }, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return c, &now, &reconnects
}

func TestCacheExpiresAfterTTL(t *testing.T) {
	c, now, _ := newTest(30 * time.Second)
	h := Hash("ce_secret")
	if _, ok := c.Get(h); ok {
		t.Fatal("hit on an empty cache")
	}
	c.Put(h, Identity{UserID: "u1", KeyID: "k1"}, c.Generation(), time.Time{})
	if id, ok := c.Get(h); !ok || id.UserID != "u1" || id.KeyID != "k1" {
		t.Fatalf("got %+v %v, want u1/k1", id, ok)
	}
	*now = now.Add(29 * time.Second)
	if _, ok := c.Get(h); !ok {
		t.Fatal("miss before the TTL")
	}
	*now = now.Add(time.Second)
	if _, ok := c.Get(h); ok {
		t.Fatal("hit at the TTL")
	}
}

func TestCacheHonoursNotAfter(t *testing.T) {
	c, now, _ := newTest(30 * time.Second)
	h := Hash("ces_session")
	c.Put(h, Identity{UserID: "u1"}, c.Generation(), now.Add(5*time.Second))
	*now = now.Add(5 * time.Second)
	if _, ok := c.Get(h); ok {
		t.Fatal("hit after the session's expiry")
	}
}

func TestRevocationDropsAndBlocksStaleAnswers(t *testing.T) {
	c, _, _ := newTest(30 * time.Second)
	a, b := Hash("ce_a"), Hash("ce_b")
	c.Put(a, Identity{UserID: "u1"}, c.Generation(), time.Time{})
	gen := c.Generation() // a check of b starts...
	c.onRevoked(&nats.Msg{Subject: "accounts.events.key_revoked", Data: []byte(`{"v":1,"hash":"` + b + `"}`)})
	c.Put(b, Identity{UserID: "u1"}, gen, time.Time{}) // ...and its answer lands after the revocation
	if _, ok := c.Get(b); ok {
		t.Fatal("an answer older than a revocation was cached")
	}
	if _, ok := c.Get(a); !ok {
		t.Fatal("a revocation of b dropped a")
	}
	c.onRevoked(&nats.Msg{Subject: "accounts.events.key_revoked", Data: []byte(`{"v":1,"hash":"` + a + `"}`)})
	if _, ok := c.Get(a); ok {
		t.Fatal("revoked a still cached")
	}
}

func TestMalformedEventFlushes(t *testing.T) {
	c, _, _ := newTest(30 * time.Second)
	c.Put(Hash("ce_a"), Identity{UserID: "u1"}, c.Generation(), time.Time{})
	c.onRevoked(&nats.Msg{Subject: "accounts.events.key_revoked", Data: []byte(`garbage`)})
	if c.Len() != 0 {
		t.Fatalf("got %d entries after a malformed event, want 0", c.Len())
	}
}

func TestReconnectFlushes(t *testing.T) {
	c, _, reconnects := newTest(30 * time.Second)
	h := Hash("ce_a")
	c.Put(h, Identity{UserID: "u1"}, c.Generation(), time.Time{})
	gen := c.Generation()
	*reconnects = 1
	if _, ok := c.Get(h); ok {
		t.Fatal("hit after a reconnect")
	}
	c.Put(h, Identity{UserID: "u1"}, gen, time.Time{})
	if _, ok := c.Get(h); ok {
		t.Fatal("an answer asked for before the reconnect was cached")
	}
	c.Put(h, Identity{UserID: "u1"}, c.Generation(), time.Time{})
	if _, ok := c.Get(h); !ok {
		t.Fatal("miss after caching again")
	}
}

func TestNegativeTTLDisables(t *testing.T) {
	c, _, _ := newTest(-1)
	c.Put(Hash("ce_a"), Identity{UserID: "u1"}, c.Generation(), time.Time{})
	if c.Len() != 0 {
		t.Fatal("cached with caching off")
	}
}
