package main_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOverdueEndToEnd: the binary with a 2-second retry window (the unit
// tests drive a fake clock across 23h5m; here the real one is wired):
// receipts in progress turn overdue on GET /v1/receipts?status=overdue,
// on GetReceipt (anomaly "overdue"), in GET /v1/stats, while a completed
// one never does; each stage shows recordedAt.
func TestOverdueEndToEnd(t *testing.T) {
	config := strings.Replace(reewildConfig(), `secrets: ["env:E2E_REEWILD_SECRET"]}`, `secrets: ["env:E2E_REEWILD_SECRET"], overdue_after: 2s}`, 1)
	s := startServer(t, t.TempDir(), config+operatorAccess(), "E2E_REEWILD_SECRET="+e2eSecret)
	s.auth = "Bearer " + e2eOperatorKey
	sent := time.Now()
	for _, b := range []string{
		`{"eventType":"receipt.uploaded","data":{"userID":"u1","receiptID":"stuck"}}`,
		`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"stuck"}}`,
		`{"eventType":"receipt.uploaded","data":{"userID":"u1","receiptID":"done"}}`,
		`{"eventType":"receipt.failed","data":{"userID":"u1","receiptID":"done","failureStage":5,"failureStageName":"FAILED_VALIDATE","errorMessage":"duplicate"}}`,
	} {
		if code, _ := s.post(t, "reewild", []byte(b), sign([]byte(b)), "application/json"); code != http.StatusOK {
			t.Fatalf("%s: %d", b, code)
		}
	}
	caughtUp(t, s)
	type receipt struct {
		ReceiptID string `json:"receiptId"`
		Stages    []struct {
			Stage      string `json:"stage"`
			RecordedAt string `json:"recordedAt"`
		} `json:"stages"`
		Anomalies []struct{ Kind string } `json:"anomalies"`
	}
	var list struct{ Receipts []receipt }
	if code := s.getJSON(t, "/v1/receipts?status=in_progress", &list); code != http.StatusOK || len(list.Receipts) != 1 || list.Receipts[0].ReceiptID != "stuck" {
		t.Fatalf("in progress: %d %+v", code, list)
	}
	if at, err := time.Parse(time.RFC3339Nano, list.Receipts[0].Stages[0].RecordedAt); err != nil || at.Before(sent.Add(-time.Second)) || at.After(time.Now()) {
		t.Fatalf("UPLOADED recordedAt %q (%v), sent at %v", list.Receipts[0].Stages[0].RecordedAt, err, sent)
	}
	if time.Since(sent) < 2*time.Second {
		list.Receipts = nil
		if code := s.getJSON(t, "/v1/receipts?status=overdue&source=reewild", &list); code != http.StatusOK || len(list.Receipts) != 0 {
			t.Fatalf("overdue within the window: %d %+v", code, list)
		}
	}
	time.Sleep(time.Until(sent.Add(2500 * time.Millisecond)))
	list.Receipts = nil
	if code := s.getJSON(t, "/v1/receipts?status=overdue&source=reewild", &list); code != http.StatusOK || len(list.Receipts) != 1 ||
		list.Receipts[0].ReceiptID != "stuck" || len(list.Receipts[0].Anomalies) != 1 || list.Receipts[0].Anomalies[0].Kind != "overdue" {
		t.Fatalf("overdue: %d %+v", code, list)
	}
	var one receipt
	if code := s.getJSON(t, "/v1/receipts/done", &one); code != http.StatusOK || len(one.Anomalies) != 0 {
		t.Fatalf("a failed receipt: %d %+v", code, one)
	}
	var stats struct {
		Sources []struct {
			Source     string `json:"source"`
			InProgress int    `json:"inProgress"`
			Overdue    int    `json:"overdue"`
		} `json:"sources"`
	}
	if code := s.getJSON(t, "/v1/stats", &stats); code != http.StatusOK || len(stats.Sources) != 1 || stats.Sources[0].Overdue != 1 || stats.Sources[0].InProgress != 1 {
		t.Fatalf("stats: %d %+v", code, stats)
	}
}
