package messages

import "time"

// LoginRequest asks accounts (subjects.Login) to open a session. A wrong email or password
// is the rpc error unauthorized, the same for both.
type LoginRequest struct {
	V        int    `json:"v"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// LoginReply carries the session's token, shown once (accounts keeps only its SHA-256).
type LoginReply struct {
	V         int       `json:"v"`
	UserID    string    `json:"userId"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// SessionVerifyRequest asks accounts (subjects.SessionVerify) whether a session token is live.
type SessionVerifyRequest struct {
	V     int    `json:"v"`
	Token string `json:"token"`
}

// SessionVerifyReply answers a SessionVerifyRequest; an unknown or expired session is Valid false.
type SessionVerifyReply struct {
	V         int       `json:"v"`
	Valid     bool      `json:"valid"`
	UserID    string    `json:"userId,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// LogoutRequest ends a session (subjects.Logout). Ending an unknown session is no error.
type LogoutRequest struct {
	V     int    `json:"v"`
	Token string `json:"token"`
}

// Empty is the reply of requests that answer nothing but success.
type Empty struct {
	V int `json:"v"`
}

// UserRequest asks accounts (subjects.User) for a user's profile.
type UserRequest struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
}

// UserReply is a user's profile; never the password hash.
type UserReply struct {
	V        int    `json:"v"`
	UserID   string `json:"userId"`
	Email    string `json:"email"`
	Username string `json:"username"`
}

// KeyInfo describes an API key without its secret.
type KeyInfo struct {
	KeyID      string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
}

// KeyCreateRequest asks accounts (subjects.KeyCreate) for a new key of a user.
type KeyCreateRequest struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
	Name   string `json:"name"`
}

// KeyCreateReply is the new key with its secret, shown once.
type KeyCreateReply struct {
	V      int     `json:"v"`
	Key    KeyInfo `json:"key"`
	APIKey string  `json:"apiKey"`
}

// KeyListRequest asks accounts (subjects.KeyList) for a user's live keys.
type KeyListRequest struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
}

// KeyListReply lists a user's live keys, oldest first.
type KeyListReply struct {
	V    int       `json:"v"`
	Keys []KeyInfo `json:"keys"`
}

// KeyRevokeRequest revokes a key of a user (subjects.KeyRevoke); another user's key, an
// unknown key or a revoked one is the rpc error not_found. The answer is the CredentialRevoked
// event, so the asking edge can drop the key from its cache before it replies.
type KeyRevokeRequest struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
	KeyID  string `json:"keyId"`
}

// CredentialRevoked is the event on subjects.KeyRevoked and subjects.SessionRevoked: Hash
// is the hex SHA-256 of the revoked secret (a key or a session token), which is how edges
// index their caches. Core NATS: an edge that reconnects flushes its cache instead.
type CredentialRevoked struct {
	V     int    `json:"v"`
	Hash  string `json:"hash"`
	KeyID string `json:"keyId,omitempty"`
}
