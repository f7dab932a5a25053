// Package keys issues and checks API keys. A key's secret is shown once; only its SHA-256
// is stored (the secret has 160 random bits, so a fast hash is safe), with a visible prefix.
// Revocation is an insert into its own collection, never an update of the key: on FerretDB
// updates are read-modify-write and could lose it.
package keys

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/accounts/internal/secret"
	"github.com/codeexec/codeexec/shared/mongoconn"
)

// SecretPrefix starts every CodeExec API key.
const SecretPrefix = "ce_"

// PrefixLen is how many characters of a key are stored and shown to identify it.
const PrefixLen = len(SecretPrefix) + 8

// Key is a stored API key; it never holds the secret.
type Key struct {
	Hash      string    `bson:"_id"`
	KeyID     string    `bson:"keyId"`
	UserID    string    `bson:"userId"`
	Prefix    string    `bson:"prefix"`
	Name      string    `bson:"name,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
}

// Store keeps keys in MongoDB.
type Store struct {
	keys        *mongo.Collection
	revocations *mongo.Collection
	usage       *mongo.Collection
	now         func() time.Time
}

// NewStore uses the collections "api_keys", "api_key_revocations" and "api_key_usage" of db.
func NewStore(db *mongo.Database) *Store {
	return &Store{keys: db.Collection("api_keys"), revocations: db.Collection("api_key_revocations"),
		usage: db.Collection("api_key_usage"), now: time.Now}
}

// EnsureIndexes creates the indexes the store relies on.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	return mongoconn.EnsureIndexes(ctx, s.keys,
		mongo.IndexModel{Keys: bson.D{{Key: "keyId", Value: 1}}, Options: options.Index().SetUnique(true)},
		mongo.IndexModel{Keys: bson.D{{Key: "userId", Value: 1}}},
	)
}

// Hash returns the stored form of a secret.
func Hash(s string) string { return secret.Hash(s) }

// NewSecret returns a fresh key secret: "ce_" and 32 base32 characters (160 random bits).
func NewSecret() (string, error) { return secret.New(SecretPrefix, 20) }

// Create issues a key for userID and returns it with its secret.
func (s *Store) Create(ctx context.Context, userID, name string) (Key, string, error) {
	plain, err := NewSecret()
	if err != nil {
		return Key{}, "", err
	}
	keyID, err := secret.New("key_", 10)
	if err != nil {
		return Key{}, "", err
	}
	k := Key{
		Hash:      Hash(plain),
		KeyID:     keyID,
		UserID:    userID,
		Prefix:    plain[:PrefixLen],
		Name:      name,
		CreatedAt: s.now().UTC(),
	}
	if _, err := s.keys.InsertOne(ctx, k); err != nil {
		return Key{}, "", fmt.Errorf("insert api key: %w", err)
	}
	return k, plain, nil
}

// ErrInvalid is returned for an unknown, malformed or revoked key.
var ErrInvalid = errors.New("invalid api key")

// Verify returns the key a secret belongs to, or ErrInvalid.
func (s *Store) Verify(ctx context.Context, secret string) (Key, error) {
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) > 128 {
		return Key{}, ErrInvalid
	}
	var k Key
	err := s.keys.FindOne(ctx, bson.D{{Key: "_id", Value: Hash(secret)}}).Decode(&k)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Key{}, ErrInvalid
	}
	if err != nil {
		return Key{}, fmt.Errorf("find api key: %w", err)
	}
	// A find by _id alone, not a count: the embedded store answers only that from an index.
	err = s.revocations.FindOne(ctx, bson.D{{Key: "_id", Value: k.KeyID}}).Err()
	switch {
	case err == nil:
		return Key{}, ErrInvalid
	case !errors.Is(err, mongo.ErrNoDocuments):
		return Key{}, fmt.Errorf("check revocation: %w", err)
	}
	return k, nil
}
