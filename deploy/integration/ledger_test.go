package integration

import (
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/config"
)

type usagePage struct {
	Records []struct {
		JobID         string `json:"jobId"`
		Language      string `json:"language"`
		RunTimeStatus string `json:"runTimeStatus"`
		PriceMicros   int64  `json:"priceMicros"`
		WallTimeMs    int64  `json:"wallTimeMs"`
		Files         []struct {
			Filename string `json:"filename"`
		} `json:"files"`
		Stdout string `json:"stdout"`
	} `json:"records"`
	Totals struct {
		Executions  int64 `json:"executions"`
		PriceMicros int64 `json:"priceMicros"`
	} `json:"totals"`
}

// TestUsageAndAdminCredit covers the execution records and the idempotent admin credit.
func TestUsageAndAdminCredit(t *testing.T) {
	const admin = "test-admin-token"
	mesh := startMesh(t, t.TempDir(), func(c *config.Config) { c.AdminToken = admin })
	user := registerUser(t, mesh.URL)

	first, a := execute(t, mesh.URL, user.APIKey, map[string]any{"language": "python", "code": "print('kept')"})
	if first != 200 {
		t.Fatalf("first execution: %d %+v", first, a)
	}
	firstJob := a.Result.JobID
	second, b := execute(t, mesh.URL, user.APIKey, map[string]any{"language": "javascript", "code": "console.log('secret')", "saveMetric": false})
	if second != 200 {
		t.Fatalf("second execution: %d %+v", second, b)
	}

	var page usagePage
	deadline := time.Now().Add(30 * time.Second)
	for {
		page = usagePage{}
		if status, body := call(t, mesh.URL, "GET", "/api/usage", user.APIKey, nil, &page); status != 200 {
			t.Fatalf("usage: %d %s", status, body)
		}
		if page.Totals.Executions == 2 && len(page.Records) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage never showed both executions: %+v", page)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if page.Totals.PriceMicros != 2*testPrice || len(page.Records) != 2 {
		t.Fatalf("got totals %+v with %d records, want 2 executions at %d", page.Totals, len(page.Records), 2*testPrice)
	}
	newest, oldest := page.Records[0], page.Records[1]
	if newest.JobID != b.Result.JobID || oldest.JobID != firstJob {
		t.Fatalf("order: got %s then %s, want newest (%s) first", newest.JobID, oldest.JobID, b.Result.JobID)
	}
	if len(oldest.Files) != 1 || oldest.Stdout != "kept\n" {
		t.Errorf("saveMetric true: got files %v stdout %q, want the code and output kept", oldest.Files, oldest.Stdout)
	}
	if len(newest.Files) != 0 || newest.Stdout != "" {
		t.Errorf("saveMetric false: got files %v stdout %q, want neither kept", newest.Files, newest.Stdout)
	}
	var second2 usagePage
	if status, body := call(t, mesh.URL, "GET", "/api/usage?page=2&pageSize=1", user.APIKey, nil, &second2); status != 200 ||
		len(second2.Records) != 1 || second2.Records[0].JobID != firstJob {
		t.Fatalf("page 2 of size 1: got %d %s, want the first job", status, body)
	}
	if status, _ := call(t, mesh.URL, "GET", "/api/usage?pageSize=1000", user.APIKey, nil, nil); status != 400 {
		t.Errorf("pageSize 1000: got %d, want 400", status)
	}

	t.Run("admin credit", func(t *testing.T) {
		before := getWallet(t, mesh.URL, user.APIKey).BalanceMicros
		credit := map[string]any{"userId": user.UserID, "amountMicros": 500_000, "reference": "invoice-42"}
		if status, _ := call(t, mesh.URL, "POST", "/api/admin/credit", "wrong-token", credit, nil); status != 401 {
			t.Fatalf("wrong token: got %d, want 401", status)
		}
		if status, _ := call(t, mesh.URL, "POST", "/api/admin/credit", user.APIKey, credit, nil); status != 401 {
			t.Fatalf("a user's API key: got %d, want 401", status)
		}
		if status, _ := call(t, mesh.URL, "POST", "/api/admin/credit", admin, map[string]any{"userId": user.UserID, "amountMicros": -5, "reference": "x"}, nil); status != 400 {
			t.Fatalf("negative amount: got %d, want 400", status)
		}
		for i, wantDup := range []bool{false, true} {
			var r struct {
				Duplicate     bool  `json:"duplicate"`
				BalanceMicros int64 `json:"balanceMicros"`
			}
			if status, body := call(t, mesh.URL, "POST", "/api/admin/credit", admin, credit, &r); status != 200 || r.Duplicate != wantDup {
				t.Fatalf("credit %d: got %d %s, want 200 duplicate=%v", i+1, status, body, wantDup)
			}
		}
		if after := getWallet(t, mesh.URL, user.APIKey).BalanceMicros; after != before+500_000 {
			t.Fatalf("balance: got %d, want %d (credited once)", after, before+500_000)
		}
	})
}
