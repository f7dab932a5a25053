package embedded_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/embedded/embeddedtest"
)

func startMongo(t *testing.T, dir string) (*embedded.Mongo, *mongo.Client) {
	t.Helper()
	m, err := embedded.StartMongo(t.Context(), dir, nil)
	if err != nil {
		t.Fatalf("start embedded FerretDB: %v", err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI).SetTimeout(30 * time.Second))
	if err != nil {
		m.Shutdown()
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		_ = client.Disconnect(context.Background())
		m.Shutdown()
	})
	return m, client
}

func fill(t *testing.T, c *mongo.Collection, n int) {
	t.Helper()
	docs := make([]any, n)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("doc-%d", i)}, {Key: "n", Value: i}}
	}
	if _, err := c.InsertMany(t.Context(), docs); err != nil {
		t.Fatalf("insert into %s: %v", c.Name(), err)
	}
}

func TestLookupByIDUsesAnIndex(t *testing.T) {
	m, client := startMongo(t, t.TempDir())
	db := client.Database("app")
	c := db.Collection("things")
	fill(t, c, 10)
	if err := m.IndexCollections(t.Context()); err != nil {
		t.Fatalf("index collections: %v", err)
	}
	embeddedtest.RequireIndexedLookup(t, c)
	var got bson.M
	if err := c.FindOne(t.Context(), bson.D{{Key: "_id", Value: "doc-7"}}).Decode(&got); err != nil || got["n"] != int32(7) {
		t.Fatalf("find doc-7 through the index: %v %v", got, err)
	}

	t.Run("a new collection is indexed by the background pass", func(t *testing.T) {
		later := db.Collection("later")
		fill(t, later, 1)
		embeddedtest.RequireIndexedLookup(t, later)
	})

	t.Run("a collection dropped and made again", func(t *testing.T) {
		if err := c.Drop(t.Context()); err != nil {
			t.Fatal(err)
		}
		fill(t, c, 3)
		if err := m.IndexCollections(t.Context()); err != nil {
			t.Fatalf("index collections: %v", err)
		}
		embeddedtest.RequireIndexedLookup(t, c)
	})

	t.Run("a database dropped and made again", func(t *testing.T) {
		if err := db.Drop(t.Context()); err != nil {
			t.Fatal(err)
		}
		fill(t, c, 3)
		if err := m.IndexCollections(t.Context()); err != nil {
			t.Fatalf("index collections: %v", err)
		}
		embeddedtest.RequireIndexedLookup(t, c)
	})
}

// dropOurIndexes makes file a store from before the _id indexer.
func dropOurIndexes(t *testing.T, file string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%_codeexec_id'`)
	if err != nil {
		t.Fatalf("list indexes of %s: %v", file, err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	if len(names) == 0 {
		t.Fatalf("%s has no _id lookup index to drop", file)
	}
	for _, n := range names {
		if _, err := db.ExecContext(t.Context(), fmt.Sprintf("DROP INDEX %q", n)); err != nil {
			t.Fatalf("drop index %s: %v", n, err)
		}
	}
}

// The collections of a store that existed before the start are indexed before StartMongo
// returns: an upgrade needs no step of its own.
func TestExistingCollectionsAreIndexedAtStart(t *testing.T) {
	dir := t.TempDir()
	m, client := startMongo(t, dir)
	c := client.Database("app").Collection("old")
	fill(t, c, 100)
	if err := m.IndexCollections(t.Context()); err != nil {
		t.Fatalf("index collections: %v", err)
	}
	_ = client.Disconnect(t.Context())
	m.Shutdown()
	dropOurIndexes(t, filepath.Join(dir, "ferretdb", "app.sqlite"))

	_, client = startMongo(t, dir)
	if plan := embeddedtest.IDLookupPlan(t, client.Database("app").Collection("old")); !embeddedtest.UsesIndex(plan) {
		t.Fatalf("lookup by _id after a restart does not use an index: %s", plan)
	}
}
