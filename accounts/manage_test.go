package accounts_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

func rpcCall[Req, Resp any](t *testing.T, nc *nats.Conn, subject string, req Req) (Resp, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rpc.Call[Req, Resp](ctx, nc, subject, req)
}

func TestLoginSessionsAndKeys(t *testing.T) {
	e := start(t)
	const password = "correct horse battery"
	reg, err := register(context.Background(), e.nc, "grace@example.com", "grace", password)
	if err != nil {
		t.Fatal(err)
	}
	v := messages.Version

	t.Run("wrong password and unknown email are the same refusal", func(t *testing.T) {
		for _, c := range [][2]string{{"grace@example.com", "wrong password"}, {"nobody@example.com", password},
			{"grace@example.com", strings.Repeat("x", 100)}, {"", ""}} {
			_, err := rpcCall[messages.LoginRequest, messages.LoginReply](t, e.nc, subjects.Login, messages.LoginRequest{V: v, Email: c[0], Password: c[1]})
			if !rpc.IsCode(err, rpc.CodeUnauthorized) || !strings.Contains(err.Error(), "wrong email or password") {
				t.Errorf("login %q: got %v, want unauthorized 'wrong email or password'", c[0], err)
			}
		}
	})

	t.Run("an unknown email costs a bcrypt comparison too", func(t *testing.T) {
		timeLogin := func(email string) time.Duration {
			best := time.Duration(1 << 62)
			for range 3 {
				start := time.Now()
				_, _ = rpcCall[messages.LoginRequest, messages.LoginReply](t, e.nc, subjects.Login, messages.LoginRequest{V: v, Email: email, Password: "wrong password"})
				best = min(best, time.Since(start))
			}
			return best
		}
		known, unknown := timeLogin("grace@example.com"), timeLogin("nobody@example.com")
		if unknown < known/4 { // without the dummy hash it would be some 50 times faster
			t.Fatalf("login of an unknown email took %v, of a known one %v: the difference tells whether an email exists", unknown, known)
		}
		t.Logf("wrong password %v, unknown email %v", known, unknown)
	})

	login, err := rpcCall[messages.LoginRequest, messages.LoginReply](t, e.nc, subjects.Login,
		messages.LoginRequest{V: v, Email: " Grace@Example.com", Password: password})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if login.UserID != reg.UserID || !strings.HasPrefix(login.Token, "ces_") || time.Until(login.ExpiresAt) < 6*24*time.Hour {
		t.Fatalf("login: got %+v, want a ces_ token for %s lasting about 7 days", login, reg.UserID)
	}
	check := func(token string) messages.SessionVerifyReply {
		r, err := rpcCall[messages.SessionVerifyRequest, messages.SessionVerifyReply](t, e.nc, subjects.SessionVerify, messages.SessionVerifyRequest{V: v, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := check(login.Token); !r.Valid || r.UserID != reg.UserID {
		t.Fatalf("session check: got %+v", r)
	}
	me, err := rpcCall[messages.UserRequest, messages.UserReply](t, e.nc, subjects.User, messages.UserRequest{V: v, UserID: reg.UserID})
	if err != nil || me.Email != "grace@example.com" || me.Username != "grace" {
		t.Fatalf("user: got %+v %v", me, err)
	}

	events := make(chan *nats.Msg, 16)
	sub, err := e.nc.ChanSubscribe("accounts.events.>", events)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	if _, err := rpcCall[messages.LogoutRequest, messages.Empty](t, e.nc, subjects.Logout, messages.LogoutRequest{V: v, Token: login.Token}); err != nil {
		t.Fatal(err)
	}
	if r := check(login.Token); r.Valid {
		t.Fatalf("session check after logout: got %+v, want invalid", r)
	}
	select {
	case m := <-events:
		if m.Subject != subjects.SessionRevoked || strings.Contains(string(m.Data), login.Token) {
			t.Fatalf("got event %s %s, want %s with the token's hash only", m.Subject, m.Data, subjects.SessionRevoked)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no session_revoked event")
	}

	created, err := rpcCall[messages.KeyCreateRequest, messages.KeyCreateReply](t, e.nc, subjects.KeyCreate, messages.KeyCreateRequest{V: v, UserID: reg.UserID, Name: "ci"})
	if err != nil || !strings.HasPrefix(created.APIKey, created.Key.Prefix) || created.Key.Name != "ci" {
		t.Fatalf("create key: got %+v %v", created, err)
	}
	if r := verify(t, e.nc, created.APIKey); !r.Valid || r.KeyID != created.Key.KeyID {
		t.Fatalf("verify new key: got %+v", r)
	}
	var list messages.KeyListReply
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err = rpcCall[messages.KeyListRequest, messages.KeyListReply](t, e.nc, subjects.KeyList, messages.KeyListRequest{V: v, UserID: reg.UserID})
		if err != nil || len(list.Keys) != 2 {
			t.Fatalf("list: got %+v %v, want 2 keys", list, err)
		}
		if list.Keys[1].LastUsedAt != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if k := list.Keys[1]; k.KeyID != created.Key.KeyID || k.LastUsedAt == nil || k.Prefix != created.Key.Prefix {
		t.Fatalf("listed key: got %+v, want %s with its prefix and a last use", k, created.Key.KeyID)
	}

	other, err := register(context.Background(), e.nc, "eve@example.com", "eve", password)
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(user, key string) error {
		_, err := rpcCall[messages.KeyRevokeRequest, messages.Empty](t, e.nc, subjects.KeyRevoke, messages.KeyRevokeRequest{V: v, UserID: user, KeyID: key})
		return err
	}
	if err := revoke(other.UserID, created.Key.KeyID); !rpc.IsCode(err, rpc.CodeNotFound) {
		t.Fatalf("revoke someone else's key: got %v, want not_found", err)
	}
	if r := verify(t, e.nc, created.APIKey); !r.Valid {
		t.Fatal("a refused revocation revoked the key")
	}
	if err := revoke(reg.UserID, created.Key.KeyID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if r := verify(t, e.nc, created.APIKey); r.Valid {
		t.Fatal("revoked key still valid")
	}
	if err := revoke(reg.UserID, created.Key.KeyID); !rpc.IsCode(err, rpc.CodeNotFound) {
		t.Fatalf("revoke twice: got %v, want not_found", err)
	}
	for {
		select {
		case m := <-events:
			if m.Subject == subjects.KeyRevoked {
				if !strings.Contains(string(m.Data), created.Key.KeyID) || strings.Contains(string(m.Data), created.APIKey) {
					t.Fatalf("key_revoked event %s: want the key id and hash, never the secret", m.Data)
				}
				goto listed
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no key_revoked event")
		}
	}
listed:
	list, err = rpcCall[messages.KeyListRequest, messages.KeyListReply](t, e.nc, subjects.KeyList, messages.KeyListRequest{V: v, UserID: reg.UserID})
	if err != nil || len(list.Keys) != 1 {
		t.Fatalf("list after revoke: got %+v %v, want 1 key", list, err)
	}

	t.Run("no secret is stored or logged in clear", func(t *testing.T) {
		ctx := context.Background()
		names, err := e.db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, coll := range names {
			cur, err := e.db.Collection(coll).Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			var docs []bson.Raw
			if err := cur.All(ctx, &docs); err != nil {
				t.Fatal(err)
			}
			for _, d := range docs {
				s := d.String()
				for _, secret := range []string{password, login.Token, created.APIKey, reg.APIKey} {
					if strings.Contains(s, secret) {
						t.Errorf("%s holds a secret in clear: %s", coll, s)
					}
				}
			}
		}
		logs := e.log.String()
		for _, secret := range []string{password, login.Token, created.APIKey, reg.APIKey} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs hold a secret in clear:\n%s", logs)
			}
		}
	})
}

func TestProjectsAndSharing(t *testing.T) {
	e := start(t)
	v := messages.Version
	owner, err := register(context.Background(), e.nc, "ann@example.com", "ann", "a long password")
	if err != nil {
		t.Fatal(err)
	}
	other, err := register(context.Background(), e.nc, "bob@example.com", "bob", "a long password")
	if err != nil {
		t.Fatal(err)
	}
	files := []messages.File{{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}}
	p, err := rpcCall[messages.ProjectRequest, messages.ProjectReply](t, e.nc, subjects.ProjectCreate,
		messages.ProjectRequest{V: v, UserID: owner.UserID, Name: " hello ", Language: "python", Files: files})
	if err != nil || p.Project.Name != "hello" || !strings.HasPrefix(p.Project.ID, "prj_") {
		t.Fatalf("create: got %+v %v", p, err)
	}
	id := p.Project.ID
	for _, bad := range []messages.ProjectRequest{
		{V: v, UserID: owner.UserID, Name: "", Language: "python", Files: files},
		{V: v, UserID: owner.UserID, Name: strings.Repeat("n", 101), Language: "python", Files: files},
		{V: v, UserID: owner.UserID, Name: "x", Language: "py thon", Files: files},
		{V: v, UserID: owner.UserID, Name: "x", Language: "python"},
		{V: v, UserID: owner.UserID, Name: "x", Language: "python", Files: []messages.File{{Filename: "../a.py", Code: "", IsEntryPoint: true}}},
	} {
		if _, err := rpcCall[messages.ProjectRequest, messages.ProjectReply](t, e.nc, subjects.ProjectCreate, bad); !rpc.IsCode(err, rpc.CodeInvalidInput) {
			t.Errorf("create %+v: got %v, want invalid_input", bad, err)
		}
	}
	get := func(user string) (messages.ProjectReply, error) {
		return rpcCall[messages.ProjectRequest, messages.ProjectReply](t, e.nc, subjects.ProjectGet, messages.ProjectRequest{V: v, UserID: user, ProjectID: id})
	}
	if _, err := get(other.UserID); !rpc.IsCode(err, rpc.CodeNotFound) {
		t.Fatalf("get another's project: got %v, want not_found", err)
	}
	if g, err := get(owner.UserID); err != nil || len(g.Project.Files) != 1 || g.Project.Files[0].Code != "print(1)" {
		t.Fatalf("get: got %+v %v", g, err)
	}
	list, err := rpcCall[messages.ProjectListRequest, messages.ProjectListReply](t, e.nc, subjects.ProjectList, messages.ProjectListRequest{V: v, UserID: owner.UserID})
	if err != nil || len(list.Projects) != 1 || list.Projects[0].Files != nil {
		t.Fatalf("list: got %+v %v, want one project without files", list, err)
	}
	if l, _ := rpcCall[messages.ProjectListRequest, messages.ProjectListReply](t, e.nc, subjects.ProjectList, messages.ProjectListRequest{V: v, UserID: other.UserID}); len(l.Projects) != 0 {
		t.Fatalf("another user's list: got %+v, want empty", l)
	}
	if _, err := rpcCall[messages.ProjectRequest, messages.ProjectReply](t, e.nc, subjects.ProjectUpdate,
		messages.ProjectRequest{V: v, UserID: other.UserID, ProjectID: id, Name: "mine", Language: "python", Files: files}); !rpc.IsCode(err, rpc.CodeNotFound) {
		t.Fatalf("update another's project: got %v, want not_found", err)
	}

	// Concurrent shares make one link.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := rpcCall[messages.ProjectRequest, messages.ShareReply](t, e.nc, subjects.ProjectShare, messages.ProjectRequest{V: v, UserID: owner.UserID, ProjectID: id})
			ids[i], errs[i] = r.ShareID, err
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] || !strings.HasPrefix(ids[i], "shr_") || len(ids[i]) < 4+26 {
			t.Fatalf("concurrent shares: got %v %v, want one share id of >=128 bits", ids, errs)
		}
	}
	n, err := e.db.Collection("project_shares").CountDocuments(context.Background(), bson.D{{Key: "projectId", Value: id}})
	if err != nil || n != 1 {
		t.Fatalf("share documents: got %d %v, want 1", n, err)
	}
	shared, err := rpcCall[messages.SharedRequest, messages.SharedReply](t, e.nc, subjects.SharedGet, messages.SharedRequest{V: v, ShareID: ids[0]})
	if err != nil || shared.Owner != "ann" || shared.Name != "hello" || len(shared.Files) != 1 {
		t.Fatalf("shared view: got %+v %v", shared, err)
	}
	fork, err := rpcCall[messages.SharedRequest, messages.ProjectReply](t, e.nc, subjects.SharedFork, messages.SharedRequest{V: v, ShareID: ids[0], UserID: other.UserID})
	if err != nil || fork.Project.ID == id || fork.Project.Files[0].Code != "print(1)" {
		t.Fatalf("fork: got %+v %v", fork, err)
	}
	if _, err := rpcCall[messages.ProjectRequest, messages.Empty](t, e.nc, subjects.ProjectDelete, messages.ProjectRequest{V: v, UserID: owner.UserID, ProjectID: id}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := rpcCall[messages.SharedRequest, messages.SharedReply](t, e.nc, subjects.SharedGet, messages.SharedRequest{V: v, ShareID: ids[0]}); !rpc.IsCode(err, rpc.CodeNotFound) {
		t.Fatalf("shared view of a deleted project: got %v, want not_found", err)
	}
	if _, err := get(other.UserID); !rpc.IsCode(err, rpc.CodeNotFound) {
		t.Fatal("deleted project still there")
	}
}
