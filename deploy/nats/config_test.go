// Package nats holds no code: its test checks that the NATS server configs shipped here
// parse with the nats-server they are meant for.
package nats

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
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
