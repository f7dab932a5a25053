package queuestats

import "testing"

func TestJobsFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, region, language string
		ok                       bool
	}{
		{"exec.jobs.local.python", "local", "python", true},
		{"exec.jobs.eu-west.cpp", "eu-west", "cpp", true},
		{"exec.jobs.>", "", "", false},
		{"exec.jobs.local.*", "", "", false},
		{"exec.jobs.local", "", "", false},
		{"exec.jobs.a.b.c", "", "", false},
		{"exec.results.local.python", "", "", false},
		{"", "", "", false},
	} {
		region, language, ok := jobsFilter(tc.filter)
		if region != tc.region || language != tc.language || ok != tc.ok {
			t.Errorf("jobsFilter(%q): got %q %q %v, want %q %q %v", tc.filter, region, language, ok, tc.region, tc.language, tc.ok)
		}
	}
}
