// Package nats holds no code: its tests check that the NATS server configs shipped here
// parse with the nats-server they are meant for, and what some roles may do.
package nats

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codeexec/codeexec/shared/streams"
	"github.com/codeexec/codeexec/shared/subjects"
)

// TestRegionGatewaysIncludeParses includes region-gateways.conf in a copy of
// cluster-node.conf, as an operator does, and checks what nats-server makes of it.
func TestRegionGatewaysIncludeParses(t *testing.T) {
	node, err := os.ReadFile("cluster-node.conf")
	if err != nil {
		t.Fatal(err)
	}
	gateways, err := os.ReadFile("region-gateways.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The passwords are variables from the server's environment.
	for _, m := range regexp.MustCompile(`\$([A-Z][A-Z0-9_]*)`).FindAllSubmatch(append(node, gateways...), -1) {
		t.Setenv(string(m[1]), "secret-"+string(m[1]))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "region-gateways.conf"), gateways, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "node.conf")
	if err := os.WriteFile(conf, append(node, []byte("\ninclude ./region-gateways.conf\n")...), 0o600); err != nil {
		t.Fatal(err)
	}

	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("parse cluster-node.conf with region-gateways.conf included: %v", err)
	}
	if opts.Gateway.Name == "" || opts.Gateway.Name != opts.Cluster.Name {
		t.Errorf("gateway name %q, cluster name %q: want them equal (a region is one cluster)", opts.Gateway.Name, opts.Cluster.Name)
	}
	if opts.Gateway.Port != 7222 {
		t.Errorf("gateway port: got %d, want 7222", opts.Gateway.Port)
	}
	if opts.Gateway.Username != "gateway" || opts.Gateway.Password != "secret-GATEWAY_PASS" {
		t.Errorf("gateway credentials: got %q / %q, want gateway and $GATEWAY_PASS", opts.Gateway.Username, opts.Gateway.Password)
	}
	var names []string
	for _, g := range opts.Gateway.Gateways {
		if len(g.URLs) == 0 {
			t.Errorf("gateway %s has no URL", g.Name)
		}
		names = append(names, g.Name)
	}
	for _, want := range []string{opts.Cluster.Name, "codeexec-eu-west", "codeexec-us-east"} {
		if !slices.Contains(names, want) {
			t.Errorf("gateways %v: want %s among them", names, want)
		}
	}
	// The server takes the options as a whole (names, ports, JetStream beside gateways).
	opts.JetStream = false // no store directory to create here
	if _, err := server.NewServer(opts); err != nil {
		t.Fatalf("nats-server refuses the options: %v", err)
	}
}

// TestLedgerUserMayGiveUpJobs serves cluster-node.conf's roles on one node and checks that
// the ledger's user can do what its orphan sweep does in the job index (read a job's owner,
// create a job's abandoned claim), and cannot write an owner record.
func TestLedgerUserMayGiveUpJobs(t *testing.T) {
	node, err := os.ReadFile("cluster-node.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$([A-Z][A-Z0-9_]*)`).FindAllSubmatch(node, -1) {
		t.Setenv(string(m[1]), "secret-"+string(m[1]))
	}
	opts, err := server.ProcessConfigFile("cluster-node.conf")
	if err != nil {
		t.Fatal(err)
	}
	// One node on loopback: no routes, no monitoring port, a store of its own.
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Cluster = server.ClusterOpts{}
	opts.Routes = nil
	opts.StoreDir = t.TempDir()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	connect := func(role string) jetstream.JetStream {
		t.Helper()
		nc, err := natsgo.Connect(srv.ClientURL(), natsgo.UserInfo(role, "secret-"+strings.ToUpper(role)+"_PASS"))
		if err != nil {
			t.Fatalf("connect as %s: %v", role, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	ctx := t.Context()
	if _, err := connect("provision").CreateKeyValue(ctx, streams.JobIndexConfig(1)); err != nil {
		t.Fatalf("provision the job index: %v", err)
	}
	index, err := connect("ledger").KeyValue(ctx, subjects.JobIndexBucket)
	if err != nil {
		t.Fatalf("the ledger binds the job index: %v", err)
	}
	if _, err := index.Get(ctx, "job-1"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the ledger reads a missing owner record: %v, want %v", err, jetstream.ErrKeyNotFound)
	}
	claim := subjects.JobRunningKey("job-1")
	if _, err := index.Create(ctx, claim, []byte(subjects.AbandonedClaim)); err != nil {
		t.Errorf("the ledger creates an abandoned claim: %v", err)
	}
	if _, err := index.Create(ctx, claim, []byte(subjects.AbandonedClaim)); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("the ledger creates a claim that exists: %v, want %v", err, jetstream.ErrKeyExists)
	}
	if e, err := index.Get(ctx, claim); err != nil || string(e.Value()) != subjects.AbandonedClaim {
		t.Errorf("the ledger reads the claim: %v, want %q", err, subjects.AbandonedClaim)
	}
	putCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := index.Put(putCtx, "job-1", []byte(`{"userId":"u"}`)); err == nil {
		t.Error("the ledger wrote an owner record; only the edge may")
	}
}
