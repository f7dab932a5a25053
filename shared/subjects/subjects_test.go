package subjects

import "testing"

func TestIsNotify(t *testing.T) {
	for _, c := range []struct {
		subject, job string
		want         bool
	}{
		{Notify("edge1", "job1"), "job1", true},
		{"exec.notify.publisher_7.job1", "job1", true},
		{Notify("edge1", "job2"), "job1", false},
		{"exec.notify.edge1.job1.x", "job1", false},
		{"exec.notify..job1", "job1", false},
		{"exec.notify.*.job1", "job1", false},
		{"ledger.credit", "job1", false},
		{"exec.results.job1", "job1", false},
		{"", "job1", false},
	} {
		if got := IsNotify(c.subject, c.job); got != c.want {
			t.Errorf("IsNotify(%q, %q): got %v, want %v", c.subject, c.job, got, c.want)
		}
	}
}
