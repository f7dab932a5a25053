package keys

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MaxPerUser bounds the live keys of one user.
const MaxPerUser = 100

// Sentinel errors a caller maps to answers.
var (
	ErrNotFound       = errors.New("no such api key")
	ErrAlreadyRevoked = errors.New("api key already revoked")
	ErrTooMany        = fmt.Errorf("at most %d api keys per user", MaxPerUser)
)

// Listed is a live key with when it was last used (nil: not yet, as far as is known).
type Listed struct {
	Key
	LastUsedAt *time.Time
}

type revocation struct {
	KeyID     string    `bson:"_id"`
	UserID    string    `bson:"userId"`
	RevokedAt time.Time `bson:"revokedAt"`
}

type usage struct {
	KeyID      string    `bson:"_id"`
	LastUsedAt time.Time `bson:"lastUsedAt"`
}

// List returns the live keys of userID, oldest first.
func (s *Store) List(ctx context.Context, userID string) ([]Listed, error) {
	cur, err := s.keys.Find(ctx, bson.D{{Key: "userId", Value: userID}})
	if err != nil {
		return nil, fmt.Errorf("find api keys: %w", err)
	}
	var all []Key
	if err := cur.All(ctx, &all); err != nil {
		return nil, fmt.Errorf("read api keys: %w", err)
	}
	if len(all) == 0 {
		return []Listed{}, nil
	}
	ids := make([]string, len(all))
	for i, k := range all {
		ids[i] = k.KeyID
	}
	in := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	var revoked []revocation
	if cur, err = s.revocations.Find(ctx, in); err == nil {
		err = cur.All(ctx, &revoked)
	}
	if err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	var used []usage
	if cur, err = s.usage.Find(ctx, in); err == nil {
		err = cur.All(ctx, &used)
	}
	if err != nil {
		return nil, fmt.Errorf("read key usage: %w", err)
	}
	gone := make(map[string]bool, len(revoked))
	for _, r := range revoked {
		gone[r.KeyID] = true
	}
	last := make(map[string]time.Time, len(used))
	for _, u := range used {
		last[u.KeyID] = u.LastUsedAt
	}
	out := make([]Listed, 0, len(all))
	for _, k := range all {
		if gone[k.KeyID] {
			continue
		}
		l := Listed{Key: k}
		if t, ok := last[k.KeyID]; ok {
			t := t.UTC()
			l.LastUsedAt = &t
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// CreateLimited is Create refusing with ErrTooMany when userID has MaxPerUser live keys.
// The count is not atomic with the insert: two racing creations may pass one over.
func (s *Store) CreateLimited(ctx context.Context, userID, name string) (Key, string, error) {
	live, err := s.List(ctx, userID)
	if err != nil {
		return Key{}, "", err
	}
	if len(live) >= MaxPerUser {
		return Key{}, "", ErrTooMany
	}
	return s.Create(ctx, userID, name)
}

// Revoke revokes the key keyID of userID by inserting its revocation (an insert against
// the _id index: atomic on FerretDB too). It returns the key, so that the caller can tell
// the edges its hash, also with ErrAlreadyRevoked. Another user's key is ErrNotFound.
func (s *Store) Revoke(ctx context.Context, userID, keyID string) (Key, error) {
	var k Key
	err := s.keys.FindOne(ctx, bson.D{{Key: "keyId", Value: keyID}}).Decode(&k)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && k.UserID != userID) {
		return Key{}, ErrNotFound
	}
	if err != nil {
		return Key{}, fmt.Errorf("find api key: %w", err)
	}
	_, err = s.revocations.InsertOne(ctx, revocation{KeyID: k.KeyID, UserID: userID, RevokedAt: s.now().UTC()})
	if mongo.IsDuplicateKeyError(err) {
		return k, ErrAlreadyRevoked
	}
	if err != nil {
		return Key{}, fmt.Errorf("insert revocation: %w", err)
	}
	return k, nil
}

// UsageInterval is the most often a key's last use is written.
const UsageInterval = time.Minute

// Usage records when keys were last used, at most once per UsageInterval per key and
// process. The record is a document of its own, written best-effort: a lost write only
// makes lastUsedAt a little older.
type Usage struct {
	store *Store
	mu    sync.Mutex
	last  map[string]time.Time
}

// NewUsage records usage through s.
func NewUsage(s *Store) *Usage { return &Usage{store: s, last: make(map[string]time.Time)} }

// Due reports whether keyID's use should be written now, and notes that it will be.
func (u *Usage) Due(keyID string) bool {
	now := u.store.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.last[keyID]; ok && now.Sub(t) < UsageInterval {
		return false
	}
	if len(u.last) > 100_000 {
		clear(u.last)
	}
	u.last[keyID] = now
	return true
}

// Write stores now as keyID's last use.
func (u *Usage) Write(ctx context.Context, keyID string) error {
	_, err := u.store.usage.ReplaceOne(ctx, bson.D{{Key: "_id", Value: keyID}},
		usage{KeyID: keyID, LastUsedAt: u.store.now().UTC()}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("write key usage: %w", err)
	}
	return nil
}
