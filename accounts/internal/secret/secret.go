// Package secret makes the random identifiers and secrets of accounts (API keys, session
// tokens, share ids) and the hash under which a secret is stored.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns prefix followed by n random bytes from crypto/rand in lowercase base32.
func New(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + encoding.EncodeToString(b), nil
}

// Hash is the stored form of a secret: its hex SHA-256. Secrets are made by New with at
// least 128 random bits, so a fast hash is safe.
func Hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
