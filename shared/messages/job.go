// Package messages defines the versioned JSON bodies that CodeExec services exchange on NATS.
// Every body carries a "v" field; a receiver refuses versions it does not know.
package messages

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Version is the message version this code writes and understands.
const Version = 1

// File is one source file of a job. Filename is a relative path validated by the edge
// (see ValidateFiles) before anything is published.
type File struct {
	Filename     string `json:"filename"`
	Code         string `json:"code"`
	IsEntryPoint bool   `json:"isEntryPoint"`
}

// Limits bounds one job. Zero fields mean "the language's default". A job may lower the
// defaults, never raise them past the operator's maximums; the runner enforces that.
type Limits struct {
	RunTimeMs     int64 `json:"runTimeMs,omitempty"`
	CompileTimeMs int64 `json:"compileTimeMs,omitempty"`
	MemoryBytes   int64 `json:"memoryBytes,omitempty"`
	CPUMillis     int64 `json:"cpuMillis,omitempty"` // 1000 = one CPU
	Pids          int64 `json:"pids,omitempty"`
	OutputBytes   int64 `json:"outputBytes,omitempty"`
}

// Job is published on subjects.Jobs(region, language) by the edge or by an internal publisher.
// JobID is also the message's Nats-Msg-Id.
type Job struct {
	V           int      `json:"v"`
	JobID       string   `json:"jobId"`
	UserID      string   `json:"userId"`
	ProjectID   string   `json:"projectId,omitempty"`
	Language    string   `json:"language"`
	Region      string   `json:"region"`
	Files       []File   `json:"files"`
	Stdin       string   `json:"stdin,omitempty"`
	Args        []string `json:"args,omitempty"`
	Limits      Limits   `json:"limits"`
	SaveMetric  bool     `json:"saveMetric"`
	PriceMicros int64    `json:"priceMicros"`
	// Notify is a core NATS subject the runner publishes the finished result to, so the
	// waiting edge hears of it without fan-out. Optional: the result stream is the record.
	Notify      string    `json:"notify,omitempty"`
	SubmittedAt time.Time `json:"submittedAt"`
	// TraceParent is the W3C traceparent of the request that made the job (see package
	// trace); the runner logs its trace id with the job id and passes it on to the result.
	// Optional, and never trusted beyond the logs.
	TraceParent string `json:"traceparent,omitempty"`
}

// Check reports whether a decoded job can be run at all.
func (j *Job) Check() error {
	if j.V != Version {
		return fmt.Errorf("job version %d: want %d", j.V, Version)
	}
	if j.JobID == "" || j.UserID == "" || j.Language == "" {
		return fmt.Errorf("job lacks jobId, userId or language")
	}
	return ValidateFiles(j.Files)
}

// EntryPoint returns the file marked as entry point.
func (j *Job) EntryPoint() (File, bool) {
	for _, f := range j.Files {
		if f.IsEntryPoint {
			return f, true
		}
	}
	return File{}, false
}

// NewJobID returns a random job id: 32 hex digits, a subject token.
func NewJobID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random job id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
