package messages

// CreditRequest asks the ledger (subjects.Credit) to add AmountMicros (> 0) to a user's
// wallet. Idempotent per Reference: the same reference credits once; reusing it for another
// user or amount is refused with the rpc code conflict.
type CreditRequest struct {
	V            int    `json:"v"`
	UserID       string `json:"userId"`
	AmountMicros int64  `json:"amountMicros"`
	Reference    string `json:"reference"`
}

// CreditReply is the wallet after the credit. Duplicate is true when the reference had
// been credited before (nothing new was added).
type CreditReply struct {
	V             int   `json:"v"`
	BalanceMicros int64 `json:"balanceMicros"`
	HeldMicros    int64 `json:"heldMicros"`
	Duplicate     bool  `json:"duplicate"`
}
