// Package sessions keeps the server-side sessions opened by login. A session token has 256
// random bits and is shown once, in the cookie; only its SHA-256 is stored, as the _id, so a
// check is one indexed lookup. Ending a session deletes it.
package sessions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codeexec/codeexec/accounts/internal/secret"
)

// TokenPrefix starts every session token.
const TokenPrefix = "ces_"

// DefaultTTL is how long a session lasts after login.
const DefaultTTL = 7 * 24 * time.Hour

// maxTokenLen bounds what Verify looks up.
const maxTokenLen = 128

// ErrInvalid is returned for an unknown, malformed, ended or expired session.
var ErrInvalid = errors.New("invalid session")

// Session is a stored session; it never holds the token.
type Session struct {
	Hash      string    `bson:"_id"`
	UserID    string    `bson:"userId"`
	CreatedAt time.Time `bson:"createdAt"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// Store keeps sessions in MongoDB.
type Store struct {
	sessions *mongo.Collection
	ttl      time.Duration
	now      func() time.Time
}

// NewStore uses the collection "sessions" of db; sessions last ttl (DefaultTTL when 0).
func NewStore(db *mongo.Database, ttl time.Duration) *Store {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{sessions: db.Collection("sessions"), ttl: ttl, now: time.Now}
}

// Hash returns the stored form of a token.
func Hash(token string) string { return secret.Hash(token) }

// NewToken returns a fresh token: "ces_" and 52 base32 characters (256 random bits).
func NewToken() (string, error) { return secret.New(TokenPrefix, 32) }

// Create opens a session for userID and returns its token, shown once.
func (s *Store) Create(ctx context.Context, userID string) (string, Session, error) {
	token, err := NewToken()
	if err != nil {
		return "", Session{}, err
	}
	now := s.now().UTC()
	sess := Session{Hash: Hash(token), UserID: userID, CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
	if _, err := s.sessions.InsertOne(ctx, sess); err != nil {
		return "", Session{}, fmt.Errorf("insert session: %w", err)
	}
	return token, sess, nil
}

// Verify returns the live session of token, or ErrInvalid.
func (s *Store) Verify(ctx context.Context, token string) (Session, error) {
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > maxTokenLen {
		return Session{}, ErrInvalid
	}
	var sess Session
	err := s.sessions.FindOne(ctx, bson.D{{Key: "_id", Value: Hash(token)}}).Decode(&sess)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Session{}, ErrInvalid
	}
	if err != nil {
		return Session{}, fmt.Errorf("find session: %w", err)
	}
	if !s.now().Before(sess.ExpiresAt) {
		return Session{}, ErrInvalid
	}
	return sess, nil
}

// End deletes the session of token, if any, and returns the token's hash.
func (s *Store) End(ctx context.Context, token string) (string, error) {
	h := Hash(token)
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > maxTokenLen {
		return h, nil
	}
	if _, err := s.sessions.DeleteOne(ctx, bson.D{{Key: "_id", Value: h}}); err != nil {
		return h, fmt.Errorf("delete session: %w", err)
	}
	return h, nil
}

// Sweep deletes expired sessions (there are no TTL indexes on FerretDB) and says how many.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	res, err := s.sessions.DeleteMany(ctx, bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$lte", Value: s.now().UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return res.DeletedCount, nil
}
