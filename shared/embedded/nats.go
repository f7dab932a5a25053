// Package embedded runs CodeExec's infrastructure inside the process for development and
// tests: a nats-server with JetStream and a FerretDB (SQLite) reached through the real mongo
// driver. Production connects to real clusters instead (CODEEXEC_NATS_URL, CODEEXEC_MONGO_URI).
// It is a module of its own so that the services' binaries never link FerretDB.
package embedded

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATSOptions tunes StartNATS.
type NATSOptions struct {
	// Port to listen on for clients: 0 picks a free port, -1 disables the listener
	// (in-process connections only).
	Port int
	// Host to listen on; default 127.0.0.1.
	Host string
}

// NATS is a running embedded nats-server with JetStream.
type NATS struct {
	Server *server.Server
}

// StartNATS starts a nats-server with JetStream storing under dir/nats.
func StartNATS(dir string, o NATSOptions) (*NATS, error) {
	store := filepath.Join(dir, "nats")
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, fmt.Errorf("create nats store: %w", err)
	}
	opts := &server.Options{
		ServerName: "codeexec-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   store,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	switch o.Port {
	case 0:
		opts.Port = server.RANDOM_PORT
	case -1:
		opts.DontListen = true
		opts.Port = server.RANDOM_PORT
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats-server not ready after 30s")
	}
	return &NATS{Server: s}, nil
}

// Connect opens an in-process client connection named name.
func (n *NATS) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.InProcessServer(n.Server), nats.MaxReconnects(-1)}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// ClientURL is the server's client URL, empty when it does not listen.
func (n *NATS) ClientURL() string {
	if n.Server.Addr() == nil {
		return ""
	}
	return n.Server.ClientURL()
}

// Shutdown stops the server and waits until it has stopped.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}
