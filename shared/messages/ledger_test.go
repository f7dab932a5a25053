package messages

import (
	"math"
	"testing"
)

func TestUsageRequestCheckPage(t *testing.T) {
	tests := []struct {
		page, pageSize int
		ok             bool
	}{
		{page: 1, pageSize: 20, ok: true},
		{page: 1, pageSize: MaxUsagePageSize, ok: true},
		{page: MaxUsageOffset/20 + 1, pageSize: 20, ok: true},
		{page: MaxUsageOffset + 1, pageSize: 1, ok: true},
		{page: MaxUsageOffset/20 + 2, pageSize: 20},
		{page: MaxUsageOffset + 2, pageSize: 1},
		{page: math.MaxInt64, pageSize: 20},
		{page: math.MaxInt64, pageSize: MaxUsagePageSize},
		{page: 0, pageSize: 20},
		{page: -1, pageSize: 20},
		{page: math.MinInt64, pageSize: 20},
		{page: 1, pageSize: 0},
		{page: 1, pageSize: MaxUsagePageSize + 1},
	}
	for _, tt := range tests {
		err := UsageRequest{Page: tt.page, PageSize: tt.pageSize}.CheckPage()
		if (err == nil) != tt.ok {
			t.Errorf("page %d pageSize %d: got %v, want ok %v", tt.page, tt.pageSize, err, tt.ok)
		}
	}
}
