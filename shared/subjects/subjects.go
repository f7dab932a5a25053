// Package subjects names every NATS subject, stream and consumer of CodeExec, so that the
// services and internal publishers agree on them in one place.
package subjects

import "strings"

// Request-reply subjects. Services answer them in a queue group named after the service.
const (
	KeyVerify  = "accounts.keys.verify"
	Register   = "accounts.users.register"
	KeyRevoked = "accounts.events.key_revoked"

	Reserve    = "ledger.reserve"
	Wallet     = "ledger.wallet"
	WalletOpen = "ledger.wallet.open"
)

// Queue groups.
const (
	QueueAccounts = "accounts"
	QueueLedger   = "ledger"
)

// Streams and their subject spaces.
const (
	JobsStream    = "JOBS"
	JobsAll       = "exec.jobs.>"
	ResultsStream = "RESULTS"
	ResultsAll    = "exec.results.>"
	HeartbeatsAll = "runners.heartbeat.>"

	// JobIndexBucket is the key-value bucket of job owners (key: job id).
	JobIndexBucket = "JOB_INDEX"
)

// JobRunningKey is the job's claim in the job index: a runner creates it (its id as the
// value) before anything of the job runs, or an edge creates it with AbandonedClaim when
// it gives the job up. Whoever creates it first decides: a job is run or abandoned, never
// both.
func JobRunningKey(jobID string) string { return jobID + ".running" }

// AbandonedClaim is the value of an abandoned job's claim; it is no runner id (not a token).
const AbandonedClaim = "!abandoned"

// Jobs is the subject of jobs for one region and language.
func Jobs(region, language string) string {
	return "exec.jobs." + region + "." + language
}

// JobConsumer is the durable pull consumer every runner of a region and language binds.
func JobConsumer(region, language string) string {
	return "jobs-" + region + "-" + language
}

// Results is the subject a job's result is stored on.
func Results(jobID string) string { return "exec.results." + jobID }

// ResultMsgID is the Nats-Msg-Id of a job's result, so a repeated publish is dropped.
func ResultMsgID(jobID string) string { return "res-" + jobID }

// JobIDFromResult returns the job id of a subject made by Results.
func JobIDFromResult(subject string) string {
	return strings.TrimPrefix(subject, "exec.results.")
}

// Notify is where a runner tells the edge that took the job that its result is ready.
func Notify(edgeID, jobID string) string { return "exec.notify." + edgeID + "." + jobID }

// IsNotify reports whether subject is a notify subject of the contract for jobID:
// exec.notify.<token>.<jobID>. A runner publishes a job's result to no other.
func IsNotify(subject, jobID string) bool {
	rest, ok := strings.CutPrefix(subject, "exec.notify.")
	if !ok {
		return false
	}
	owner, id, ok := strings.Cut(rest, ".")
	return ok && Token(owner) && id == jobID && Token(id)
}

// NotifyAll is what one edge subscribes to, once, for all of its waiting clients.
func NotifyAll(edgeID string) string { return "exec.notify." + edgeID + ".>" }

// Heartbeat is where a runner announces itself.
func Heartbeat(region, runnerID string) string {
	return "runners.heartbeat." + region + "." + runnerID
}

// Token reports whether s can be used as one token of a subject (region, language, ids).
func Token(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}

// Dead letters: jobs that ran out of deliveries.
const (
	// JobAdvisoriesStream captures the server's max-deliveries advisories of the job
	// consumers (work-queue retention: a handled advisory is gone).
	JobAdvisoriesStream = "JOB_ADVISORIES"
	// JobMaxDeliveriesAll is the subject of those advisories, for every job consumer.
	JobMaxDeliveriesAll = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + JobsStream + ".>"
	// DeadLetterConsumer is the durable pull consumer every runner binds on
	// JobAdvisoriesStream, so that each advisory is handled by one runner.
	DeadLetterConsumer = "deadletters"
	// DeadLettersStream keeps one dead-letter record per job.
	DeadLettersStream = "DEADLETTERS"
	DeadLettersAll    = "exec.deadletters.>"
)

// DeadLetter is the subject of a job's dead-letter record.
func DeadLetter(jobID string) string { return "exec.deadletters." + jobID }

// DeadLetterMsgID is the Nats-Msg-Id of a job's dead-letter record.
func DeadLetterMsgID(jobID string) string { return "dl-" + jobID }

// Readiness pings (request-reply, messages.PingRequest → messages.PingReply), answered in
// the services' queue groups once they serve.
const (
	AccountsPing = "accounts.ping"
	LedgerPing   = "ledger.ping"
)
