package messages

import "time"

// DeadLetter records a job that ran out of deliveries; it is stored on
// subjects.DeadLetter(jobID) in the dead-letters stream (Nats-Msg-Id "dl-<jobID>"), and the
// job gets an internal_error result.
type DeadLetter struct {
	V      int    `json:"v"`
	JobID  string `json:"jobId"`
	UserID string `json:"userId,omitempty"`
	// Language and Region are the job's; Subject and StreamSeq where it was in the job stream.
	Language  string `json:"language,omitempty"`
	Region    string `json:"region,omitempty"`
	Subject   string `json:"subject,omitempty"`
	StreamSeq uint64 `json:"streamSeq"`
	Consumer  string `json:"consumer,omitempty"`
	// Deliveries is how many times the job was delivered.
	Deliveries uint64 `json:"deliveries"`
	// Reason says why: DeadLetterMaxDeliveries or DeadLetterInfrastructure.
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
	// RunnerID is the runner that wrote the record.
	RunnerID string    `json:"runnerId,omitempty"`
	At       time.Time `json:"at"`
}

// Reasons of a dead letter.
const (
	// DeadLetterMaxDeliveries: every delivery's AckWait ran out (the runners holding the
	// job died or hung); the server's max-deliveries advisory started the dead letter.
	DeadLetterMaxDeliveries = "max_deliveries"
	// DeadLetterInfrastructure: the last delivery failed on the platform's side.
	DeadLetterInfrastructure = "infrastructure_failure"
)
