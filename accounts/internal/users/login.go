package users

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/crypto/bcrypt"
)

// ErrBadCredentials is returned for an unknown email and for a wrong password alike.
var ErrBadCredentials = errors.New("wrong email or password")

// ErrNotFound is returned by Get for an unknown user id.
var ErrNotFound = errors.New("no such user")

// maxPasswordBytes is bcrypt's limit; registration refuses longer passwords.
const maxPasswordBytes = 72

// dummy is a bcrypt hash of a random password, compared against when the email is unknown
// so that a login takes about as long whether or not the account exists.
type dummy struct {
	once sync.Once
	hash []byte
	err  error
}

func (d *dummy) get() ([]byte, error) {
	d.once.Do(func() {
		p := make([]byte, 32)
		if _, err := rand.Read(p); err != nil {
			d.err = fmt.Errorf("read random dummy password: %w", err)
			return
		}
		d.hash, d.err = bcrypt.GenerateFromPassword(p, bcrypt.DefaultCost)
	})
	return d.hash, d.err
}

// Authenticate returns the user whose email and password these are, or ErrBadCredentials.
// Unknown emails cost one bcrypt comparison too, against a dummy hash.
func (s *Store) Authenticate(ctx context.Context, email, password string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var u User
	found := true
	err := s.users.FindOne(ctx, bson.D{{Key: "email", Value: email}}).Decode(&u)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		found = false
	case err != nil:
		return User{}, fmt.Errorf("find user by email: %w", err)
	}
	hash := []byte(u.PasswordHash)
	if !found {
		if hash, err = s.dummy.get(); err != nil {
			return User{}, err
		}
	}
	pw := []byte(password)
	tooLong := len(pw) > maxPasswordBytes
	if tooLong {
		pw = pw[:maxPasswordBytes] // still pay for one comparison
	}
	if bcrypt.CompareHashAndPassword(hash, pw) != nil || !found || tooLong {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// Get returns the user with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (User, error) {
	var u User
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("find user: %w", err)
	}
	return u, nil
}
