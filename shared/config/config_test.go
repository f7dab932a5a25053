package config

import (
	"strings"
	"testing"
	"time"
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestLoadDefaults(t *testing.T) {
	c, err := LoadFrom(lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.FreeCreditMicros != 1_000_000 || c.PriceMicros != 10_000 || c.Region != "local" {
		t.Fatalf("got %+v, want the design's defaults", c)
	}
	for _, s := range AllServices {
		if !c.Runs(s) {
			t.Errorf("default does not run %s", s)
		}
	}
}

func TestLoadReadsVariables(t *testing.T) {
	c, err := LoadFrom(lookupFrom(map[string]string{
		"CODEEXEC_PRICE_MICROS": "500", "CODEEXEC_REGION": "eu-west", "CODEEXEC_WAIT_TIMEOUT": "5s",
		"CODEEXEC_SERVICES": "edge, ledger", "CODEEXEC_LANGUAGES": "python,ruby",
		"CODEEXEC_RUNNER_ID": "host-7", "CODEEXEC_JOB_ACK_WAIT": "4s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RunnerID != "host-7" || c.JobAckWait != 4*time.Second {
		t.Fatalf("got runner id %q ack wait %s, want host-7 and 4s", c.RunnerID, c.JobAckWait)
	}
	if c.PriceMicros != 500 || c.Region != "eu-west" || c.WaitTimeout != 5*time.Second {
		t.Fatalf("got %+v", c)
	}
	if !c.Runs("edge") || c.Runs("runner") || len(c.Languages) != 2 {
		t.Fatalf("got services %v languages %v", c.Services, c.Languages)
	}
}

func TestLoadRefusesBadValues(t *testing.T) {
	for key, val := range map[string]string{
		"CODEEXEC_PRICE_MICROS": "ten", "CODEEXEC_REGION": "eu.west", "CODEEXEC_FREE_CREDIT_MICROS": "-1",
		"CODEEXEC_SERVICES": "edge,mailer", "CODEEXEC_RUNNER_SLOTS": "0", "CODEEXEC_LOG_FORMAT": "xml",
		"CODEEXEC_ANON_RATE_PER_SEC": "fast", "CODEEXEC_ANON_RATE_BURST": "0",
		"CODEEXEC_RUNNER_ID": "a.b", "CODEEXEC_JOB_ACK_WAIT": "10ms",
	} {
		_, err := LoadFrom(lookupFrom(map[string]string{key: val}))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: got %v, want an error naming %s", key, val, err, key)
		}
	}
}

func TestLoadRegionNeighbors(t *testing.T) {
	c, err := LoadFrom(lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RegionNeighbors) != 0 {
		t.Fatalf("default neighbors: got %v, want none", c.RegionNeighbors)
	}
	c, err = LoadFrom(lookupFrom(map[string]string{
		"CODEEXEC_REGION": "eu-central", "CODEEXEC_REGION_NEIGHBORS": " eu-west, us-east ",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.RegionNeighbors, ","); got != "eu-west,us-east" {
		t.Fatalf("neighbors: got %q, want eu-west,us-east in that order", got)
	}
	for _, tc := range []struct{ name, region, neighbors, want string }{
		{"not a subject token", "local", "eu.west", "eu.west"},
		{"wildcard", "local", "eu-west,*", `"*"`},
		{"its own region", "eu-west", "us-east,eu-west", "own region"},
		{"listed twice", "local", "eu-west,us-east,eu-west", "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFrom(lookupFrom(map[string]string{"CODEEXEC_REGION": tc.region, "CODEEXEC_REGION_NEIGHBORS": tc.neighbors}))
			if err == nil || !strings.Contains(err.Error(), "CODEEXEC_REGION_NEIGHBORS") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming CODEEXEC_REGION_NEIGHBORS and %s", err, tc.want)
			}
		})
	}
}
