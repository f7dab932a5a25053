package messages

import "time"

// Heartbeat is published by every runner on subjects.Heartbeat(region, runnerID) every
// HeartbeatInterval. A runner not heard from for three intervals is taken for dead.
type Heartbeat struct {
	V         int       `json:"v"`
	RunnerID  string    `json:"runnerId"`
	Region    string    `json:"region"`
	Languages []string  `json:"languages"`
	Slots     int       `json:"slots"`
	FreeSlots int       `json:"freeSlots"`
	Draining  bool      `json:"draining,omitempty"`
	SentAt    time.Time `json:"sentAt"`
}

// HeartbeatInterval is how often runners announce themselves.
const HeartbeatInterval = 2 * time.Second

// KeyVerifyRequest asks accounts (subjects.KeyVerify) whether an API key is valid.
type KeyVerifyRequest struct {
	V      int    `json:"v"`
	APIKey string `json:"apiKey"`
}

// KeyVerifyReply answers a KeyVerifyRequest. Invalid keys are a normal reply with Valid false.
type KeyVerifyReply struct {
	V      int    `json:"v"`
	Valid  bool   `json:"valid"`
	UserID string `json:"userId,omitempty"`
	KeyID  string `json:"keyId,omitempty"`
}

// RegisterRequest asks accounts (subjects.Register) to create a user with a first API key.
type RegisterRequest struct {
	V        int    `json:"v"`
	Email    string `json:"email"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// RegisterReply carries the new user and the key's secret, shown once.
type RegisterReply struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
	APIKey string `json:"apiKey"`
}

// OpenWalletRequest asks the ledger (subjects.WalletOpen) to open a user's wallet with the
// free credit. Idempotent per user.
type OpenWalletRequest struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
}

// WalletRequest asks the ledger (subjects.Wallet) for a user's balance.
type WalletRequest struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
}

// WalletReply is a user's wallet in integer micro-dollars.
type WalletReply struct {
	V             int   `json:"v"`
	BalanceMicros int64 `json:"balanceMicros"`
	HeldMicros    int64 `json:"heldMicros"`
	PriceMicros   int64 `json:"priceMicros"`
}

// ReserveRequest asks the ledger (subjects.Reserve) to hold the price of one job: the
// publisher before it queues the job, and the runner again right before it runs it.
// Idempotent per JobID: an open hold of the job is returned as it is (no second hold).
type ReserveRequest struct {
	V        int    `json:"v"`
	UserID   string `json:"userId"`
	JobID    string `json:"jobId"`
	Language string `json:"language"`
	// RecordsOwner is the reserver's promise to record the job's owner in the job index
	// (subjects.JobIndexBucket, key = jobId) once the job is queued, as the edge does. A
	// job whose owner record is still missing after the ledger's orphan grace was never
	// queued (its reserver died between the reserve and the publish): the ledger then
	// takes its claim as abandoned (subjects.AbandonedClaim), so that no runner can run
	// it, and releases its hold. Without it, only the hold TTL releases an orphaned hold.
	// Set only on a job's first reserve; later reserves return the hold as it is.
	RecordsOwner bool `json:"recordsOwner,omitempty"`
}

// ReserveReply confirms the job's open hold. Refusals are rpc errors with the codes
// insufficient_funds, not_found (the user has no wallet), hold_closed (the job's hold was
// charged, released or expired: do not run it), conflict (the job is another user's)
// and invalid_input.
type ReserveReply struct {
	V             int   `json:"v"`
	PriceMicros   int64 `json:"priceMicros"`
	BalanceMicros int64 `json:"balanceMicros"`
	// HoldRemainingMs is how long, on the ledger's clock, until the expiry sweeper may
	// release the hold: the hold TTL minus the hold's age, at least 0. A job whose hold
	// is released before its result comes is not charged, so a runner starts a job only if it can end before.
	HoldRemainingMs int64 `json:"holdRemainingMs"`
}

// PingRequest asks a service whether it serves (subjects.AccountsPing, subjects.LedgerPing):
// an edge's readiness depends on the answer.
type PingRequest struct {
	V int `json:"v"`
}

// PingReply says that the service answered, and which.
type PingReply struct {
	V       int    `json:"v"`
	Service string `json:"service"`
}
