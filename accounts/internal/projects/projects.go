// Package projects keeps users' saved programs and their share links. Only the owner reads
// or changes a project; a share is an unguessable id inserted against a unique index on the
// project id, so two concurrent shares of one project cannot make two links.
package projects

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/accounts/internal/secret"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/mongoconn"
	"github.com/codeexec/codeexec/shared/subjects"
)

// Sentinel errors a caller maps to answers.
var (
	ErrNotFound = errors.New("no such project")
	ErrTooMany  = fmt.Errorf("at most %d projects per user", messages.MaxProjectsPerUser)
)

// InvalidError describes bad project input.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

type file struct {
	Filename     string `bson:"filename"`
	Code         string `bson:"code"`
	IsEntryPoint bool   `bson:"isEntryPoint"`
}

type project struct {
	ID        string    `bson:"_id"`
	OwnerID   string    `bson:"ownerId"`
	Name      string    `bson:"name"`
	Language  string    `bson:"language"`
	Files     []file    `bson:"files,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

type share struct {
	ID        string    `bson:"_id"`
	ProjectID string    `bson:"projectId"`
	OwnerID   string    `bson:"ownerId"`
	CreatedAt time.Time `bson:"createdAt"`
}

func (p *project) message() messages.Project {
	out := messages.Project{ID: p.ID, Name: p.Name, Language: p.Language, CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC()}
	if p.Files != nil {
		out.Files = make([]messages.File, len(p.Files))
		for i, f := range p.Files {
			out.Files[i] = messages.File(f)
		}
	}
	return out
}

func toFiles(in []messages.File) []file {
	out := make([]file, len(in))
	for i, f := range in {
		out[i] = file(f)
	}
	return out
}

// Content is what a user gives for a project.
type Content struct {
	Name     string
	Language string // the catalog's canonical name
	Files    []messages.File
}

// Validate trims the name and checks every field: name 1..100 characters with no control
// characters, a language name, the files by messages.ValidateFiles (a too-large project
// wraps messages.ErrCodeTooLarge).
func (c *Content) Validate() error {
	c.Name = strings.TrimSpace(c.Name)
	if n := utf8.RuneCountInString(c.Name); n < 1 || n > messages.MaxProjectNameRunes || !utf8.ValidString(c.Name) {
		return &InvalidError{fmt.Sprintf("name must be 1 to %d characters", messages.MaxProjectNameRunes)}
	}
	for _, r := range c.Name {
		if unicode.IsControl(r) {
			return &InvalidError{"name must not hold control characters"}
		}
	}
	if len(c.Language) > 32 || !subjects.Token(c.Language) {
		return &InvalidError{"language is not a language name"}
	}
	if err := messages.ValidateFiles(c.Files); err != nil {
		if errors.Is(err, messages.ErrCodeTooLarge) {
			return err
		}
		return &InvalidError{"files: " + err.Error()}
	}
	return nil
}

// Store keeps projects and shares in MongoDB.
type Store struct {
	projects *mongo.Collection
	shares   *mongo.Collection
	now      func() time.Time
}

// NewStore uses the collections "projects" and "project_shares" of db.
func NewStore(db *mongo.Database) *Store {
	return &Store{projects: db.Collection("projects"), shares: db.Collection("project_shares"), now: time.Now}
}

// EnsureIndexes creates the indexes the store relies on; the unique one on the shares'
// project id makes sharing idempotent under concurrency.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	if err := mongoconn.EnsureIndexes(ctx, s.projects,
		mongo.IndexModel{Keys: bson.D{{Key: "ownerId", Value: 1}}}); err != nil {
		return err
	}
	return mongoconn.EnsureIndexes(ctx, s.shares,
		mongo.IndexModel{Keys: bson.D{{Key: "projectId", Value: 1}}, Options: options.Index().SetUnique(true).SetName("projectId_unique")})
}

// Create validates c and stores it as a new project of ownerID.
func (s *Store) Create(ctx context.Context, ownerID string, c Content) (messages.Project, error) {
	if err := c.Validate(); err != nil {
		return messages.Project{}, err
	}
	n, err := s.projects.CountDocuments(ctx, bson.D{{Key: "ownerId", Value: ownerID}})
	if err != nil {
		return messages.Project{}, fmt.Errorf("count projects: %w", err)
	}
	if n >= messages.MaxProjectsPerUser {
		return messages.Project{}, ErrTooMany
	}
	id, err := secret.New("prj_", 12)
	if err != nil {
		return messages.Project{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	p := project{ID: id, OwnerID: ownerID, Name: c.Name, Language: c.Language, Files: toFiles(c.Files), CreatedAt: now, UpdatedAt: now}
	if _, err := s.projects.InsertOne(ctx, p); err != nil {
		return messages.Project{}, fmt.Errorf("insert project: %w", err)
	}
	return p.message(), nil
}

// List returns ownerID's projects without files, most recently changed first.
func (s *Store) List(ctx context.Context, ownerID string) ([]messages.Project, error) {
	cur, err := s.projects.Find(ctx, bson.D{{Key: "ownerId", Value: ownerID}},
		options.Find().SetProjection(bson.D{{Key: "files", Value: 0}}).SetSort(bson.D{{Key: "updatedAt", Value: -1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("find projects: %w", err)
	}
	var docs []project
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read projects: %w", err)
	}
	out := make([]messages.Project, len(docs))
	for i := range docs {
		out[i] = docs[i].message()
	}
	return out, nil
}

// Get returns ownerID's project id with its files and share id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, ownerID, id string) (messages.Project, error) {
	p, err := s.find(ctx, ownerID, id)
	if err != nil {
		return messages.Project{}, err
	}
	out := p.message()
	var sh share
	err = s.shares.FindOne(ctx, bson.D{{Key: "projectId", Value: id}}).Decode(&sh)
	switch {
	case err == nil:
		out.ShareID = sh.ID
	case !errors.Is(err, mongo.ErrNoDocuments):
		return messages.Project{}, fmt.Errorf("find share: %w", err)
	}
	return out, nil
}

// find returns the project id if ownerID owns it; the _id lookup is indexed.
func (s *Store) find(ctx context.Context, ownerID, id string) (project, error) {
	var p project
	err := s.projects.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && p.OwnerID != ownerID) {
		return project{}, ErrNotFound
	}
	if err != nil {
		return project{}, fmt.Errorf("find project: %w", err)
	}
	return p, nil
}

// Update replaces the name, language and files of ownerID's project id. Concurrent
// updates of one project: the last one wins, whole.
func (s *Store) Update(ctx context.Context, ownerID, id string, c Content) (messages.Project, error) {
	if err := c.Validate(); err != nil {
		return messages.Project{}, err
	}
	p, err := s.find(ctx, ownerID, id)
	if err != nil {
		return messages.Project{}, err
	}
	p.Name, p.Language, p.Files = c.Name, c.Language, toFiles(c.Files)
	p.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	res, err := s.projects.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "ownerId", Value: ownerID}}, p)
	if err != nil {
		return messages.Project{}, fmt.Errorf("replace project: %w", err)
	}
	if res.MatchedCount == 0 {
		return messages.Project{}, ErrNotFound // deleted meanwhile
	}
	return p.message(), nil
}

// Delete deletes ownerID's project id and kills its share link.
func (s *Store) Delete(ctx context.Context, ownerID, id string) error {
	if _, err := s.find(ctx, ownerID, id); err != nil {
		return err
	}
	if _, err := s.shares.DeleteMany(ctx, bson.D{{Key: "projectId", Value: id}}); err != nil {
		return fmt.Errorf("delete shares: %w", err)
	}
	res, err := s.projects.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "ownerId", Value: ownerID}})
	if err != nil {
		return fmt.Errorf("delete project: %w", err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// Share returns the share id of ownerID's project id, creating it on first call. The
// insert against the unique index on projectId decides between racing calls; the loser
// reads the winner's id.
func (s *Store) Share(ctx context.Context, ownerID, id string) (string, error) {
	if _, err := s.find(ctx, ownerID, id); err != nil {
		return "", err
	}
	for attempt := 0; attempt < 3; attempt++ {
		var sh share
		err := s.shares.FindOne(ctx, bson.D{{Key: "projectId", Value: id}}).Decode(&sh)
		if err == nil {
			return sh.ID, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return "", fmt.Errorf("find share: %w", err)
		}
		// 160 random bits.
		shareID, err := secret.New("shr_", 20)
		if err != nil {
			return "", err
		}
		_, err = s.shares.InsertOne(ctx, share{ID: shareID, ProjectID: id, OwnerID: ownerID, CreatedAt: s.now().UTC()})
		if err == nil {
			return shareID, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return "", fmt.Errorf("insert share: %w", err)
		}
		// Another call shared it first (or, astronomically unlikely, the id clashed): read again.
	}
	return "", errors.New("share: gave up after three conflicting inserts")
}

// Unshare kills the share link of ownerID's project id; ErrNotFound when it has none.
func (s *Store) Unshare(ctx context.Context, ownerID, id string) error {
	if _, err := s.find(ctx, ownerID, id); err != nil {
		return err
	}
	res, err := s.shares.DeleteMany(ctx, bson.D{{Key: "projectId", Value: id}})
	if err != nil {
		return fmt.Errorf("delete share: %w", err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// Shared is a shared project with its owner's id (for the caller to turn into a username).
type Shared struct {
	ShareID string
	OwnerID string
	Project messages.Project
}

// GetShared returns the project behind shareID, or ErrNotFound.
func (s *Store) GetShared(ctx context.Context, shareID string) (Shared, error) {
	if !strings.HasPrefix(shareID, "shr_") || len(shareID) > 64 {
		return Shared{}, ErrNotFound
	}
	var sh share
	err := s.shares.FindOne(ctx, bson.D{{Key: "_id", Value: shareID}}).Decode(&sh)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Shared{}, ErrNotFound
	}
	if err != nil {
		return Shared{}, fmt.Errorf("find share: %w", err)
	}
	p, err := s.find(ctx, sh.OwnerID, sh.ProjectID)
	if err != nil {
		return Shared{}, err // a project deleted while being shared: the link is dead
	}
	return Shared{ShareID: sh.ID, OwnerID: sh.OwnerID, Project: p.message()}, nil
}
