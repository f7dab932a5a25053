package integration

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/codeexec/codeexec/deploy/allinone"
	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/embedded"
)

// TestNoSecretInClear drives every path that handles a password, an API key or a session
// token, with debug logs captured, then scans every MongoDB collection and the logs for
// those secrets in clear.
func TestNoSecretInClear(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mg, err := embedded.StartMongo(ctx, filepath.Join(dir, "mongo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg.Shutdown)

	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.MongoURI = mg.URI
	cfg.PriceMicros, cfg.FreeCreditMicros = testPrice, testFreeCredit
	cfg.Languages = []string{"python"}
	cfg.PoolSize, cfg.RunnerSlots = 1, 1
	cfg.RatePerSec, cfg.RateBurst = 1000, 1000
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mesh, err := allinone.Start(ctx, cfg, ln, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mesh.Stop() })
	base := mesh.URL
	waitAvailable(t, base, "python")

	const password = "Tr0ub4dor-and-3-horses"
	const wrongPassword = "n0t-the-Right-0ne-at-all"
	var reg registered
	status, body := call(t, base, "POST", "/api/register", "", map[string]string{
		"email": "secretive@example.com", "username": "secretive", "password": password}, &reg)
	if status != 201 {
		t.Fatalf("register: %d %s", status, body)
	}
	wrong, _ := login(t, base, "secretive@example.com", wrongPassword)
	expect(t, wrong, 401, "invalid_credentials", "a wrong password")
	ok, session := login(t, base, "secretive@example.com", password)
	expect(t, ok, 200, "", "login")
	key := createKey(t, base, creds{cookie: session}, "scan me")
	expect(t, do(t, base, "POST", "/api/v1/execute", creds{key: key.APIKey}, map[string]any{"language": "python", "code": "print(1)"}), 200, "", "execute")
	expect(t, do(t, base, "POST", "/api/projects", creds{key: key.APIKey, xAPIKey: true},
		map[string]any{"name": "p", "language": "python", "files": mainPy("print(2)")}), 201, "", "create project")
	expect(t, do(t, base, "GET", "/api/me", creds{key: "ce_" + strings.Repeat("z", 32)}, nil), 401, "invalid_api_key", "a made-up key")

	secrets := map[string]string{"password": password, "wrong password": wrongPassword, "first API key": reg.APIKey,
		"second API key": key.APIKey, "session token": session}

	client, err := mongo.Connect(options.Client().ApplyURI(mg.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	db := client.Database(cfg.MongoDB)
	scan := func(when string) map[string]int {
		t.Helper()
		names, err := db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		scanned := map[string]int{}
		for _, coll := range names {
			cur, err := db.Collection(coll).Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			var docs []bson.Raw
			if err := cur.All(ctx, &docs); err != nil {
				t.Fatal(err)
			}
			scanned[coll] = len(docs)
			for _, d := range docs {
				text := d.String()
				for what, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s: collection %s holds the %s in clear: %s", when, coll, what, text)
					}
				}
			}
		}
		for _, coll := range []string{"users", "sessions", "api_keys", "projects"} {
			if _, ok := scanned[coll]; !ok {
				t.Errorf("collection %s was not there to scan (scanned %v)", coll, scanned)
			}
		}
		return scanned
	}
	if live := scan("with the session and keys live"); live["sessions"] != 1 {
		t.Errorf("sessions: got %d documents, want the live one", live["sessions"])
	}
	expect(t, do(t, base, "DELETE", "/api/keys/"+key.ID, creds{key: reg.APIKey}, nil), 204, "", "revoke")
	expect(t, do(t, base, "POST", "/api/logout", creds{cookie: session}, nil), 204, "", "logout")
	expect(t, do(t, base, "GET", "/api/me", creds{cookie: session}, nil), 401, "invalid_session", "the ended session")
	time.Sleep(200 * time.Millisecond) // let best-effort writes (key usage) land
	scanned := scan("after revocation and logout")
	var u struct {
		PasswordHash string `bson:"passwordHash"`
	}
	if err := db.Collection("users").FindOne(ctx, bson.D{{Key: "_id", Value: reg.UserID}}).Decode(&u); err != nil || !strings.HasPrefix(u.PasswordHash, "$2") {
		t.Errorf("password hash: got %q %v, want bcrypt", u.PasswordHash, err)
	}

	text := logs.String()
	if !strings.Contains(text, "user logged in") || !strings.Contains(text, "api key revoked") {
		t.Fatalf("the logs were not captured (no login or revocation line):\n%s", text)
	}
	for what, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("the logs hold the %s in clear", what)
		}
	}
	t.Logf("scanned %v and %d bytes of debug logs", scanned, len(text))
}
