// Package natsconn connects a CodeExec service to an external NATS cluster with the
// reconnect behaviour every service wants: retry forever, log state changes. It logs
// server addresses without credentials, and takes credentials only from the settings
// made for them (config.NATSAuth), never from the URL.
package natsconn

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codeexec/codeexec/shared/config"
)

// Connect dials url (a comma-separated list of servers) as name, authenticated by auth.
func Connect(url string, auth config.NATSAuth, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	if url == "" {
		return nil, errors.New("CODEEXEC_NATS_URL is required for a standalone service")
	}
	authOpts, err := Options(auth)
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}, authOpts...)
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats as %s (%s): %w", name, auth, err)
	}
	return nc, nil
}

// credsFileMark starts the user JWT of a .creds file; a file without it is an nkey seed.
var credsFileMark = []byte("-----BEGIN NATS USER JWT-----")

// Options are the nats.go options of auth: its credentials and TLS.
func Options(auth config.NATSAuth) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case auth.CredsFile != "":
		content, err := os.ReadFile(auth.CredsFile)
		if err != nil {
			return nil, fmt.Errorf("CODEEXEC_NATS_CREDS: %w", err)
		}
		if bytes.Contains(content, credsFileMark) {
			opts = append(opts, nats.UserCredentials(auth.CredsFile))
		} else {
			o, err := nats.NkeyOptionFromSeed(auth.CredsFile)
			if err != nil {
				return nil, fmt.Errorf("CODEEXEC_NATS_CREDS %s is neither a .creds file nor an nkey seed: %w", auth.CredsFile, err)
			}
			opts = append(opts, o)
		}
	case auth.User != "":
		opts = append(opts, nats.UserInfo(auth.User, auth.Password))
	}
	if auth.TLSCA != "" {
		opts = append(opts, nats.RootCAs(auth.TLSCA))
	}
	if auth.TLSCert != "" {
		opts = append(opts, nats.ClientCert(auth.TLSCert, auth.TLSKey))
	}
	return opts, nil
}
