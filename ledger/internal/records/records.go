// Package records keeps one execution record per job: what ran, how it fared, what it
// cost. Records are inserted once (_id = jobId); a second insert is a redelivery.
package records

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/ledger/internal/groupcommit"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/mongoconn"
)

// Collection is the name of the records collection.
const Collection = "executions"

// Record is one finished job.
type Record struct {
	ID          string          `bson:"_id" json:"-"`
	JobID       string          `bson:"jobId" json:"jobId"`
	UserID      string          `bson:"userId" json:"userId"`
	ProjectID   string          `bson:"projectId,omitempty" json:"projectId,omitempty"`
	Language    string          `bson:"language" json:"language"`
	Status      messages.Status `bson:"status" json:"status"`
	WallTimeMs  int64           `bson:"wallTimeMs" json:"wallTimeMs"`
	CPUTimeMs   int64           `bson:"cpuTimeMs" json:"cpuTimeMs"`
	MemoryBytes int64           `bson:"memoryBytes" json:"memoryBytes"`
	ExitCode    *int            `bson:"exitCode" json:"exitCode"`
	Region      string          `bson:"region" json:"region"`
	RunnerID    string          `bson:"runnerId,omitempty" json:"runnerId,omitempty"`
	PriceMicros int64           `bson:"priceMicros" json:"priceMicros"`
	CreatedAt   time.Time       `bson:"createdAt" json:"createdAt"`
	// Kept only when the job asked for it (saveMetric).
	Files  []messages.File `bson:"files,omitempty" json:"files,omitempty"`
	Stdout string          `bson:"stdout,omitempty" json:"stdout,omitempty"`
	Stderr string          `bson:"stderr,omitempty" json:"stderr,omitempty"`
}

// FromResult builds the record of res, charged priceMicros. region fills in a result
// that does not name its own.
func FromResult(res messages.Result, priceMicros int64, region string, now time.Time) Record {
	r := Record{
		ID:          res.JobID,
		JobID:       res.JobID,
		UserID:      res.UserID,
		ProjectID:   res.ProjectID,
		Language:    res.Language,
		Status:      res.Status,
		WallTimeMs:  res.WallTimeMs,
		CPUTimeMs:   res.CPUTimeMs,
		MemoryBytes: res.MemoryBytes,
		ExitCode:    res.ExitCode,
		Region:      res.Region,
		RunnerID:    res.RunnerID,
		PriceMicros: priceMicros,
		CreatedAt:   now.UTC(),
	}
	if r.Region == "" {
		r.Region = region
	}
	if res.SaveMetric {
		r.Files, r.Stdout, r.Stderr = res.Files, res.Stdout, res.Stderr
	}
	return r
}

// Store reads and writes records.
type Store struct {
	c       *mongo.Collection
	inserts *groupcommit.Group[any]
}

// Group commit of inserts: the records of results settled at once go in one insertMany.
const (
	maxInsertBatch = 64
	insertTimeout  = 15 * time.Second
)

// NewStore returns a Store over db's executions collection.
func NewStore(db *mongo.Database) *Store {
	c := db.Collection(Collection)
	return &Store{c: c, inserts: groupcommit.Inserts(c, maxInsertBatch, insertTimeout)}
}

// EnsureIndexes creates the index of a user's records by time.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	return mongoconn.EnsureIndexes(ctx, s.c, mongo.IndexModel{
		Keys:    bson.D{{Key: "userId", Value: 1}, {Key: "createdAt", Value: -1}},
		Options: options.Index().SetName("user_created"),
	})
}

// Insert writes r once. created is false when the job was recorded before. Records
// inserted at the same moment share one database call.
func (s *Store) Insert(ctx context.Context, r Record) (created bool, err error) {
	err = s.inserts.Do(ctx, r)
	if errors.Is(err, groupcommit.ErrDuplicate) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("insert execution record %s: %w", r.JobID, err)
	}
	return true, nil
}

// Get returns the record of jobID.
func (s *Store) Get(ctx context.Context, jobID string) (Record, bool, error) {
	var r Record
	err := s.c.FindOne(ctx, bson.D{{Key: "_id", Value: jobID}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read execution record %s: %w", jobID, err)
	}
	return r, true, nil
}

// Period bounds a usage query; zero times leave that end open.
type Period struct{ From, To time.Time }

func (p Period) filter(userID string) bson.D {
	f := bson.D{{Key: "userId", Value: userID}}
	created := bson.D{}
	if !p.From.IsZero() {
		created = append(created, bson.E{Key: "$gte", Value: p.From.UTC()})
	}
	if !p.To.IsZero() {
		created = append(created, bson.E{Key: "$lt", Value: p.To.UTC()})
	}
	if len(created) > 0 {
		f = append(f, bson.E{Key: "createdAt", Value: created})
	}
	return f
}

// Page returns the page-th page (from 1) of size records of userID in p, newest first.
func (s *Store) Page(ctx context.Context, userID string, p Period, page, size int) ([]Record, error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetSkip(int64((page - 1) * size)).
		SetLimit(int64(size))
	cur, err := s.c.Find(ctx, p.filter(userID), opts)
	if err != nil {
		return nil, fmt.Errorf("find execution records: %w", err)
	}
	var out []Record
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read execution records: %w", err)
	}
	return out, nil
}

// Totals sums the records of userID in p. It adds them up here rather than with $group:
// FerretDB's $sum gave 0 for these int64 fields.
func (s *Store) Totals(ctx context.Context, userID string, p Period) (messages.UsageTotals, error) {
	cur, err := s.c.Find(ctx, p.filter(userID), options.Find().SetProjection(bson.D{
		{Key: "priceMicros", Value: 1}, {Key: "wallTimeMs", Value: 1}, {Key: "cpuTimeMs", Value: 1},
	}))
	if err != nil {
		return messages.UsageTotals{}, fmt.Errorf("sum execution records: %w", err)
	}
	defer cur.Close(ctx)
	var t messages.UsageTotals
	for cur.Next(ctx) {
		var r struct {
			PriceMicros int64 `bson:"priceMicros"`
			WallTimeMs  int64 `bson:"wallTimeMs"`
			CPUTimeMs   int64 `bson:"cpuTimeMs"`
		}
		if err := cur.Decode(&r); err != nil {
			return messages.UsageTotals{}, fmt.Errorf("decode execution record: %w", err)
		}
		t.Executions++
		t.PriceMicros += r.PriceMicros
		t.WallTimeMs += r.WallTimeMs
		t.CPUTimeMs += r.CPUTimeMs
	}
	if err := cur.Err(); err != nil {
		return messages.UsageTotals{}, fmt.Errorf("read execution records: %w", err)
	}
	return t, nil
}

// View is the record as the usage endpoint shows it.
func (r Record) View() messages.ExecutionRecord {
	return messages.ExecutionRecord{
		JobID: r.JobID, ProjectID: r.ProjectID, Language: r.Language, Status: r.Status,
		WallTimeMs: r.WallTimeMs, CPUTimeMs: r.CPUTimeMs, MemoryBytes: r.MemoryBytes, ExitCode: r.ExitCode,
		Region: r.Region, RunnerID: r.RunnerID, PriceMicros: r.PriceMicros, CreatedAt: r.CreatedAt,
		Files: r.Files, Stdout: r.Stdout, Stderr: r.Stderr,
	}
}
