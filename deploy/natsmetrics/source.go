package natsmetrics

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Reading is one server's monitoring data, in nats-server's own types.
type Reading struct {
	Varz   *server.Varz
	Jsz    *server.JSInfo
	Connz  *server.Connz
	Routez *server.Routez
}

// Source reads one nats-server.
type Source interface {
	// Name is the value of the server_id label: stable even while the server is down.
	Name() string
	Read(ctx context.Context) (Reading, error)
}

// jszOptions ask for the streams of every account with their configuration (their limits),
// not the consumers: the queue metrics of the edge cover those.
var jszOptions = server.JSzOptions{Accounts: true, Streams: true, Config: true}

// connzLimit bounds the connections one read lists (their pending bytes are summed).
const connzLimit = 4096

// InProcess reads a server running in this process (the all-in-one's embedded one).
func InProcess(s *server.Server) Source { return inProcess{s} }

type inProcess struct{ s *server.Server }

func (p inProcess) Name() string { return p.s.Name() }

func (p inProcess) Read(context.Context) (Reading, error) {
	var r Reading
	var err error
	if r.Varz, err = p.s.Varz(&server.VarzOptions{}); err != nil {
		return r, fmt.Errorf("varz: %w", err)
	}
	opts := jszOptions
	if r.Jsz, err = p.s.Jsz(&opts); err != nil {
		return r, fmt.Errorf("jsz: %w", err)
	}
	if r.Connz, err = p.s.Connz(&server.ConnzOptions{Limit: connzLimit}); err != nil {
		return r, fmt.Errorf("connz: %w", err)
	}
	if r.Routez, err = p.s.Routez(&server.RoutezOptions{}); err != nil {
		return r, fmt.Errorf("routez: %w", err)
	}
	return r, nil
}

// Monitor reads a server's monitoring port (http: in its config, e.g.
// http://127.0.0.1:8222), decoding its JSON into the same types. The port has no
// authentication: it must be private to the host or network.
func Monitor(base string, client *http.Client) (Source, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("nats monitoring URL %q: want http://host:port", base)
	}
	if client == nil {
		client = http.DefaultClient
	}
	return monitor{base: strings.TrimRight(base, "/"), host: u.Host, client: client}, nil
}

type monitor struct {
	base, host string
	client     *http.Client
}

func (m monitor) Name() string { return m.host }

func (m monitor) Read(ctx context.Context) (Reading, error) {
	var r Reading
	r.Varz, r.Jsz, r.Connz, r.Routez = &server.Varz{}, &server.JSInfo{}, &server.Connz{}, &server.Routez{}
	for _, ep := range []struct {
		path string
		into any
	}{
		{"/varz", r.Varz},
		{fmt.Sprintf("/jsz?accounts=%t&streams=%t&config=%t", jszOptions.Accounts, jszOptions.Streams, jszOptions.Config), r.Jsz},
		{fmt.Sprintf("/connz?limit=%d", connzLimit), r.Connz},
		{"/routez", r.Routez},
	} {
		if err := m.get(ctx, ep.path, ep.into); err != nil {
			return Reading{}, err
		}
	}
	return r, nil
}

func (m monitor) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", path, err)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s%s: %w", m.base, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s%s: status %d", m.base, path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("decode %s%s: %w", m.base, path, err)
	}
	return nil
}
