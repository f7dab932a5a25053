package embedded_test

// Tests of shared/natsconn's credentials against a real nats-server that requires them.

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/codeexec/codeexec/shared/config"
	"github.com/codeexec/codeexec/shared/natsconn"
)

func startAuthNATS(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

func TestNATSCredentialsComeFromTheirSettings(t *testing.T) {
	url := startAuthNATS(t, &server.Options{Users: []*server.User{{Username: "edge", Password: "s3cret-pass"}}})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	nc, err := natsconn.Connect(url, config.NATSAuth{User: "edge", Password: "s3cret-pass"}, "codeexec-test", log)
	if err != nil {
		t.Fatalf("connect with user and password: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("x", nil); err != nil || nc.FlushTimeout(5*time.Second) != nil {
		t.Fatalf("publish as edge: %v", err)
	}

	bad, err := natsconn.Connect(url, config.NATSAuth{User: "edge", Password: "wrong"}, "codeexec-test", log,
		nats.RetryOnFailedConnect(false))
	if err == nil {
		bad.Close()
		t.Fatal("a wrong password connected")
	}
	if strings.Contains(err.Error(), "wrong") || strings.Contains(logs.String(), "s3cret-pass") {
		t.Fatalf("a password reached an error or the log: %v / %s", err, logs.String())
	}
}

func TestNATSNkeySeedFile(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	url := startAuthNATS(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	path := filepath.Join(t.TempDir(), "runner.nk")
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := natsconn.Connect(url, config.NATSAuth{CredsFile: path}, "codeexec-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("connect with an nkey seed file: %v", err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func TestNATSURLWithCredentialsIsRefused(t *testing.T) {
	cfg := config.Defaults()
	cfg.NATSURL = "nats://127.0.0.1:4222,nats://edge:s3cret@127.0.0.1:4223"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "CODEEXEC_NATS_URL must not hold credentials") {
		t.Fatalf("got %v, want the URL refused", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the refusal quotes the password: %v", err)
	}
}
