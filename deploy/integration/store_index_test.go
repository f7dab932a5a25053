package integration

import (
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/embedded"
	"github.com/codeexec/codeexec/shared/embedded/embeddedtest"
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
		embeddedtest.RequireIndexedLookup(t, db.Collection(name))
	}
}
