package config

import (
	"errors"
	"net/url"
	"strings"
)

// NATSAuth is how a service proves who it is to an external NATS, and how it checks the
// servers: one of user and password, or a credentials file; TLS where the operator wants
// it. Credentials never come from CODEEXEC_NATS_URL, which services may log.
type NATSAuth struct {
	User      string // CODEEXEC_NATS_USER
	Password  string // CODEEXEC_NATS_PASSWORD
	CredsFile string // CODEEXEC_NATS_CREDS: a .creds file (user JWT and seed) or an nkey seed file
	TLSCA     string // CODEEXEC_NATS_TLS_CA: PEM roots the servers' certificates must chain to
	TLSCert   string // CODEEXEC_NATS_TLS_CERT: client certificate (PEM), with CODEEXEC_NATS_TLS_KEY
	TLSKey    string // CODEEXEC_NATS_TLS_KEY
}

// String never shows the password.
func (a NATSAuth) String() string {
	switch {
	case a.CredsFile != "":
		return "credentials file " + a.CredsFile
	case a.User != "":
		return "user " + a.User
	}
	return "no credentials"
}

// check refuses credentials in the URL and settings that cannot work together.
func (a NATSAuth) check(natsURL string) error {
	var errs []error
	for _, server := range strings.Split(natsURL, ",") {
		u, err := url.Parse(strings.TrimSpace(server))
		if err == nil && u.User != nil {
			errs = append(errs, errors.New("CODEEXEC_NATS_URL must not hold credentials: use CODEEXEC_NATS_USER and CODEEXEC_NATS_PASSWORD, or CODEEXEC_NATS_CREDS"))
			break
		}
	}
	if a.CredsFile != "" && (a.User != "" || a.Password != "") {
		errs = append(errs, errors.New("CODEEXEC_NATS_CREDS and CODEEXEC_NATS_USER/PASSWORD are exclusive"))
	}
	if (a.User == "") != (a.Password == "") {
		errs = append(errs, errors.New("CODEEXEC_NATS_USER and CODEEXEC_NATS_PASSWORD go together"))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		errs = append(errs, errors.New("CODEEXEC_NATS_TLS_CERT and CODEEXEC_NATS_TLS_KEY go together"))
	}
	return errors.Join(errs...)
}
