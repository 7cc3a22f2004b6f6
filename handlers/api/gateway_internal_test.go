package api

import (
	"net/http/httptest"
	"testing"
)

func TestIsLong(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		long         bool
	}{
		{"GET", "/v1/receipts/r1/watch", true},
		{"GET", "/v1/users/u1/watch?allowMissing=true", true},
		{"GET", "/v1/receipts/a%2Fb/watch", true},
		{"GET", "/v1/audit?source=reewild", true},
		{"POST", "/v1/rebuild", true},
		{"GET", "/v1/receipts/watch", false},
		{"GET", "/v1/receipts/r1", false},
		{"GET", "/v1/receipts/r1/events", false},
		{"GET", "/v1/users/u1/balance", false},
		{"POST", "/v1/receipts/r1/watch", false},
		{"GET", "/v1/rebuild", false},
		{"GET", "/v1/stats", false},
		{"POST", "/webhooks/reewild", false},
	} {
		if got := isLong(httptest.NewRequest(tc.method, tc.path, nil)); got != tc.long {
			t.Errorf("%s %s: long %v, want %v", tc.method, tc.path, got, tc.long)
		}
	}
}
