// Package authcache remembers, for a short while, which credentials (API keys and session
// tokens) accounts said were valid, so that most requests need no key check over NATS.
// Entries are indexed by the SHA-256 of the secret, never the secret. A revocation event
// from accounts drops its entry on every edge; a NATS reconnect flushes the whole cache,
// since events may have been missed while disconnected.
package authcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/subjects"
)

// DefaultTTL is how long a valid answer is trusted when none is configured.
const DefaultTTL = 30 * time.Second

// maxEntries bounds the cache; beyond it, it starts afresh.
const maxEntries = 100_000

// Identity is who a credential belongs to.
type Identity struct {
	UserID string
	KeyID  string // empty for a session
}

// Hash is the cache's index of a secret: its hex SHA-256, as accounts stores it.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

type entry struct {
	id      Identity
	expires time.Time
}

// Cache is a TTL cache of valid credentials. The zero value is not usable; call New.
type Cache struct {
	ttl        time.Duration
	now        func() time.Time
	reconnects func() uint64
	log        *slog.Logger

	mu      sync.Mutex
	entries map[string]entry
	// gen grows with every revocation and flush: an answer asked for before it grew may
	// predate a revocation, so it is not cached (see Put).
	gen uint64
	// seen is the reconnect count the entries were made under.
	seen uint64

	subs       []*nats.Subscription
	status     chan nats.Status
	stopStatus func()
	wg         sync.WaitGroup
}

// New returns a cache trusting answers for ttl (DefaultTTL when 0; negative disables
// caching). reconnects reports how often the NATS connection has reconnected
// (nc.Stats().Reconnects); a change flushes the cache before the next lookup. now is the
// clock (time.Now when nil).
func New(ttl time.Duration, reconnects func() uint64, now func() time.Time, log *slog.Logger) *Cache {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	if reconnects == nil {
		reconnects = func() uint64 { return 0 }
	}
	return &Cache{ttl: ttl, now: now, reconnects: reconnects, log: log, entries: make(map[string]entry), seen: reconnects()}
}

// Get returns the identity cached for hash, if any and still fresh.
func (c *Cache) Get(hash string) (Identity, bool) {
	r := c.reconnects()
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkReconnectLocked(r)
	e, ok := c.entries[hash]
	if !ok {
		return Identity{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, hash)
		return Identity{}, false
	}
	return e.id, true
}

// Generation returns a token to take before asking accounts and to give to Put.
func (c *Cache) Generation() uint64 {
	r := c.reconnects()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkReconnectLocked(r)
	return c.gen
}

// Put caches a valid answer asked for at generation gen, until the TTL or notAfter (a
// session's expiry; zero: none), whichever comes first. Nothing is cached when a
// revocation or flush happened since gen: the answer might be older than it.
func (c *Cache) Put(hash string, id Identity, gen uint64, notAfter time.Time) {
	if c.ttl < 0 {
		return
	}
	r := c.reconnects()
	expires := c.now().Add(c.ttl)
	if !notAfter.IsZero() && notAfter.Before(expires) {
		expires = notAfter
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkReconnectLocked(r)
	if gen != c.gen {
		return
	}
	if len(c.entries) >= maxEntries {
		clear(c.entries)
	}
	c.entries[hash] = entry{id: id, expires: expires}
}

// Drop forgets hash (a revoked credential).
func (c *Cache) Drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, hash)
}

// Flush forgets everything.
func (c *Cache) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
}

// Len is the number of entries, for tests and metrics.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) flushLocked() {
	c.gen++
	clear(c.entries)
}

func (c *Cache) checkReconnectLocked(r uint64) {
	if r != c.seen {
		c.seen = r
		c.flushLocked()
	}
}

// Start subscribes to the revocation events on nc and flushes on every change of the
// connection's status, until ctx ends or Stop is called.
func (c *Cache) Start(ctx context.Context, nc *nats.Conn) error {
	for _, subject := range []string{subjects.KeyRevoked, subjects.SessionRevoked} {
		sub, err := nc.Subscribe(subject, c.onRevoked)
		if err != nil {
			c.Stop()
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		c.subs = append(c.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		c.Stop()
		return fmt.Errorf("flush revocation subscriptions: %w", err)
	}
	c.status = nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CONNECTED)
	c.wg.Add(1)
	go func(ch chan nats.Status) {
		defer c.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case st, ok := <-ch:
				if !ok {
					return
				}
				c.Flush()
				c.log.Info("nats connection changed: credential cache flushed", "status", st.String())
			}
		}
	}(c.status)
	c.stopStatus = func() { nc.RemoveStatusListener(c.status) }
	return nil
}

// Stop ends the subscriptions and the status watcher. It is idempotent.
func (c *Cache) Stop() {
	for _, sub := range c.subs {
		_ = sub.Unsubscribe()
	}
	c.subs = nil
	if c.stopStatus != nil {
		c.stopStatus()
		c.stopStatus = nil
	}
	c.wg.Wait()
}

func (c *Cache) onRevoked(m *nats.Msg) {
	var ev messages.CredentialRevoked
	if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Hash == "" {
		// Cannot tell which: forget everything rather than keep a revoked credential.
		c.Flush()
		c.log.Warn("malformed revocation event: credential cache flushed", "subject", m.Subject)
		return
	}
	c.Drop(ev.Hash)
}
