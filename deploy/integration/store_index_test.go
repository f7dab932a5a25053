package integration

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/waitfor"
)

// serviceCollections are the collections the services keep on MongoDB.
var serviceCollections = []string{
	"users", "sessions", "api_keys", "api_key_revocations", "api_key_usage", "projects", "project_shares",
	"entries", "entry_refs", "open_holds", "executions",
}

// TestEmbeddedStoreLooksUpByIndex: on the embedded FerretDB, after the services made
// their collections by being used (accounts, keys, sessions, projects, shares, a job
// reserved, run and charged), a lookup by _id in every collection of the database is an
// index SEARCH, not a SCAN of the table.
func TestEmbeddedStoreLooksUpByIndex(t *testing.T) {
	dir := t.TempDir()
	store, err := embedded.StartMongo(t.Context(), dir, nil)
	if err != nil {
		t.Fatalf("start embedded FerretDB: %v", err)
	}
	t.Cleanup(store.Shutdown)
	mesh := startMesh(t, dir, func(c *config.Config) {
		c.MongoURI = store.URI
		c.Languages = []string{"python"}
	})
	waitAvailable(t, mesh.URL, "python")

	user := registerUser(t, mesh.URL)
	_, session := login(t, mesh.URL, user.Email, "a long password")
	k := createKey(t, mesh.URL, creds{cookie: session}, "second")
	expect(t, do(t, mesh.URL, "DELETE", "/api/keys/"+k.ID, creds{cookie: session}, nil), 204, "", "revoke key")
	if status, a := execute(t, mesh.URL, user.APIKey, map[string]any{"language": "python", "code": "print(1)"}); status != 200 || a.Result.Stdout != "1\n" {
		t.Fatalf("execute: got %d %+v", status, a)
	}
	a := do(t, mesh.URL, "POST", "/api/projects", creds{key: user.APIKey}, map[string]any{"name": "p", "language": "python",
		"files": []map[string]any{{"filename": "main.py", "code": "print(2)", "isEntryPoint": true}}})
	expect(t, a, 201, "", "create project")
	var p projectView
	a.decode(t, &p)
	expect(t, do(t, mesh.URL, "POST", "/api/projects/"+p.ID+"/share", creds{key: user.APIKey}, nil), 200, "", "share project")

	client, err := mongo.Connect(options.Client().ApplyURI(store.URI).SetTimeout(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(t.Context()) })
	db := client.Database(config.Defaults().MongoDB)
	names, err := db.ListCollectionNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatalf("list collections: %v", err)
	}
	for _, want := range serviceCollections {
		if !slices.Contains(names, want) {
			t.Errorf("collection %s was not made by the services (have %v)", want, names)
		}
	}
	for _, name := range names {
		requireIndexedLookup(t, db.Collection(name))
	}
}

// requireIndexedLookup fails unless the embedded store's lookup of c by _id uses an
// index. A connection of FerretDB's pool that loaded the schema before the index existed
// plans with the old one until its next statement that runs, which EXPLAIN alone is not,
// so each attempt runs a real lookup first.
func requireIndexedLookup(t *testing.T, c *mongo.Collection) {
	t.Helper()
	var plan string
	explain := bson.D{{Key: "explain", Value: bson.D{
		{Key: "find", Value: c.Name()}, {Key: "filter", Value: bson.D{{Key: "_id", Value: "some-id"}}},
	}}}
	waitfor.Eventually(t, 10*time.Second, "an indexed lookup by _id in "+c.Name(), func() (bool, error) {
		if err := c.FindOne(t.Context(), bson.D{{Key: "_id", Value: "some-id"}}).Err(); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return false, err
		}
		var out struct {
			QueryPlanner struct {
				Plan []string `bson:"Plan"`
			} `bson:"queryPlanner"`
		}
		if err := c.Database().RunCommand(t.Context(), explain).Decode(&out); err != nil {
			return false, err
		}
		plan = strings.Join(out.QueryPlanner.Plan, "; ")
		return strings.Contains(plan, "SEARCH") && !strings.Contains(plan, "SCAN"), nil
	})
	t.Logf("%s: %s", c.Name(), plan)
}
