package subjects

// Accounts subjects added with sessions, key management and projects. All are
// request-reply in queue group QueueAccounts, except the events, which every edge hears.
const (
	Login         = "accounts.users.login"
	User          = "accounts.users.get"
	SessionVerify = "accounts.sessions.verify"
	Logout        = "accounts.sessions.logout"

	KeyCreate = "accounts.keys.create"
	KeyList   = "accounts.keys.list"
	KeyRevoke = "accounts.keys.revoke"

	ProjectCreate  = "accounts.projects.create"
	ProjectList    = "accounts.projects.list"
	ProjectGet     = "accounts.projects.get"
	ProjectUpdate  = "accounts.projects.update"
	ProjectDelete  = "accounts.projects.delete"
	ProjectShare   = "accounts.projects.share"
	ProjectUnshare = "accounts.projects.unshare"
	SharedGet      = "accounts.shared.get"
	SharedFork     = "accounts.shared.fork"

	// SessionRevoked is published (core NATS, messages.CredentialRevoked) when a session
	// ends, like KeyRevoked for keys: every edge drops the credential from its cache.
	SessionRevoked = "accounts.events.session_revoked"
)

// Key-value buckets of the edges' shared request limits (see shared/streams).
const (
	// RateLimitBucket holds one token bucket per credential (key id, or user id for
	// sessions), updated with compare-and-set by every edge.
	RateLimitBucket = "RATE_LIMITS"
	// ConcurrencyBucket holds one lease record per account: the jobs it runs now.
	ConcurrencyBucket = "CONCURRENCY"
)
