package subjects

// Ledger subjects and consumers added with the ledger service.
const (
	// Credit is the ledger's admin credit (request-reply, queue QueueLedger): the edge
	// forwards POST /api/admin/credit after checking the admin token. Idempotent per reference.
	Credit = "ledger.credit"

	// ChargesConsumer is the ledger's durable pull consumer on ResultsStream: it charges
	// (or releases) every job once and writes its execution record.
	ChargesConsumer = "ledger-charges"
)

// Usage pages a user's execution records (request-reply, queue QueueLedger).
const Usage = "ledger.usage"
