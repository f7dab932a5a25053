package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadRequestLimits(t *testing.T) {
	c, err := LoadFrom(lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.RatePerSec != 10 || c.RateBurst != 20 || c.MaxConcurrent != 8 || c.KeyCacheTTL != 30*time.Second {
		t.Fatalf("got rate %v burst %d concurrent %d cache %v, want 10, 20, 8, 30s", c.RatePerSec, c.RateBurst, c.MaxConcurrent, c.KeyCacheTTL)
	}
	c, err = LoadFrom(lookupFrom(map[string]string{
		"CODEEXEC_RATE_PER_SEC": "0.5", "CODEEXEC_RATE_BURST": "3", "CODEEXEC_MAX_CONCURRENT": "2", "CODEEXEC_KEY_CACHE_TTL": "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RatePerSec != 0.5 || c.RateBurst != 3 || c.MaxConcurrent != 2 || c.KeyCacheTTL != 5*time.Second {
		t.Fatalf("got rate %v burst %d concurrent %d cache %v", c.RatePerSec, c.RateBurst, c.MaxConcurrent, c.KeyCacheTTL)
	}
	for key, val := range map[string]string{
		"CODEEXEC_RATE_PER_SEC": "0", "CODEEXEC_RATE_BURST": "0", "CODEEXEC_MAX_CONCURRENT": "-1",
		"CODEEXEC_KEY_CACHE_TTL": "soon",
	} {
		_, err := LoadFrom(lookupFrom(map[string]string{key: val}))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: got %v, want an error naming %s", key, val, err, key)
		}
	}
}
