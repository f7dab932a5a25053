// Package users creates and finds CodeExec users. Email and username are unique through
// unique indexes, so two concurrent registrations of one name cannot both succeed.
package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/shared/mongoconn"
	"golang.org/x/crypto/bcrypt"
)

// User is a stored user. PasswordHash is a bcrypt hash; the password itself is never kept.
type User struct {
	ID           string    `bson:"_id"`
	Email        string    `bson:"email"`
	Username     string    `bson:"username"`
	PasswordHash string    `bson:"passwordHash"`
	CreatedAt    time.Time `bson:"createdAt"`
}

// Sentinel errors a caller maps to answers.
var (
	ErrEmailTaken    = errors.New("email already registered")
	ErrUsernameTaken = errors.New("username already taken")
)

// InvalidError describes bad registration input.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

// Store keeps users in MongoDB.
type Store struct {
	users    *mongo.Collection
	bcrypter func(password []byte) ([]byte, error)
	now      func() time.Time
	dummy    dummy
}

// NewStore uses the collection "users" of db.
func NewStore(db *mongo.Database) *Store {
	return &Store{
		users:    db.Collection("users"),
		bcrypter: func(p []byte) ([]byte, error) { return bcrypt.GenerateFromPassword(p, bcrypt.DefaultCost) },
		now:      time.Now,
	}
}

// EnsureIndexes creates the unique indexes on email and username.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	return mongoconn.EnsureIndexes(ctx, s.users,
		mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true).SetName("email_unique")},
		mongo.IndexModel{Keys: bson.D{{Key: "username", Value: 1}}, Options: options.Index().SetUnique(true).SetName("username_unique")},
	)
}

// Registration is what a new user gives.
type Registration struct {
	Email, Username, Password string
}

// Normalize trims and lowercases the email and checks every field.
func (r *Registration) Normalize() error {
	r.Email = strings.ToLower(strings.TrimSpace(r.Email))
	r.Username = strings.TrimSpace(r.Username)
	if len(r.Email) > 254 {
		return &InvalidError{"email is longer than 254 characters"}
	}
	if a, err := mail.ParseAddress(r.Email); err != nil || a.Address != r.Email || !strings.Contains(r.Email, "@") {
		return &InvalidError{"email is not a valid address"}
	}
	if n := len(r.Username); n < 3 || n > 32 {
		return &InvalidError{"username must be 3 to 32 characters"}
	}
	for _, c := range r.Username {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return &InvalidError{"username may hold letters, digits, '.', '_' and '-' only"}
		}
	}
	if n := len(r.Password); n < 8 || n > 72 {
		return &InvalidError{"password must be 8 to 72 bytes"}
	}
	return nil
}

// Create validates r and inserts a user with a bcrypt hash of the password.
func (s *Store) Create(ctx context.Context, r Registration) (User, error) {
	if err := r.Normalize(); err != nil {
		return User{}, err
	}
	hash, err := s.bcrypter([]byte(r.Password))
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return User{}, fmt.Errorf("read random user id: %w", err)
	}
	u := User{
		ID:           "usr_" + hex.EncodeToString(id),
		Email:        r.Email,
		Username:     r.Username,
		PasswordHash: string(hash),
		CreatedAt:    s.now().UTC(),
	}
	if _, err := s.users.InsertOne(ctx, u); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return User{}, s.whichTaken(ctx, u)
		}
		return User{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

// whichTaken tells which unique field a refused insert collided on.
func (s *Store) whichTaken(ctx context.Context, u User) error {
	n, err := s.users.CountDocuments(ctx, bson.D{{Key: "email", Value: u.Email}})
	if err != nil {
		return fmt.Errorf("look up taken email: %w", err)
	}
	if n > 0 {
		return ErrEmailTaken
	}
	return ErrUsernameTaken
}
