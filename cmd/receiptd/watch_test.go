package main_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// reportedStages lists the stages a gRPC receipt shows as reported.
func reportedStages(r *receiptdv1.Receipt) []string {
	var out []string
	for _, s := range r.GetStages() {
		if s.GetReported() {
			out = append(out, s.GetStage().String())
		}
	}
	return out
}

// ndjsonStream reads a REST watch: one JSON object per line.
type ndjsonStream struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func openRESTWatch(t *testing.T, ctx context.Context, url string) *ndjsonStream {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	return &ndjsonStream{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next returns the stages the next message reports, its status, or io.EOF
// when the stream has ended.
func (s *ndjsonStream) next() ([]string, string, error) {
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			return nil, "", err
		}
		return nil, "", io.EOF
	}
	var msg struct {
		Result *restReceipt    `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(s.sc.Bytes(), &msg); err != nil {
		return nil, "", fmt.Errorf("%v in %s", err, s.sc.Bytes())
	}
	if msg.Result == nil {
		return nil, "", fmt.Errorf("stream error: %s", msg.Error)
	}
	var out []string
	for _, st := range msg.Result.Stages {
		if st.Reported {
			out = append(out, st.Stage)
		}
	}
	return out, msg.Result.Status, nil
}

// TestWatchReceiptLive: a receipt's deliveries arrive out of order, one
// of them twice; a gRPC watcher and a REST watcher, both started before
// the first delivery, each see every change exactly once, and the
// terminal view last. Then its history, its user's ledger, the statistics
// and the metrics tell the same story.
func TestWatchReceiptLive(t *testing.T) {
	s := startServer(t, t.TempDir(), reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const receipt, user = "5c1e0a77-watch-4a95-ad87-2ae6de6e8df0", "u-watch"

	grpcWatch, err := receiptdv1.NewReceiptServiceClient(dialGRPC(t, s)).WatchReceipt(ctx, &receiptdv1.WatchReceiptRequest{ReceiptId: receipt, AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	userWatch, err := receiptdv1.NewReceiptServiceClient(dialGRPC(t, s)).WatchUser(ctx, &receiptdv1.WatchUserRequest{UserId: user, AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	// The REST watch answers 200 at once: the receipt does not exist yet.
	restWatch := openRESTWatch(t, ctx, s.url("/v1/receipts/"+receipt+"/watch?allow_missing=true"))

	stage := func(event string) []byte {
		data := map[string]any{"applicationDetails": app(), "userID": user, "receiptID": receipt, "currency": "GBP", "subTotal": json.Number("6.33")}
		if event == "receipt.uploaded" {
			data = map[string]any{"applicationDetails": app(), "profileID": user, "receiptID": receipt, "merchantName": "Tesco", "uploadedAt": "2025-11-21T15:05:02.5569459Z"}
		}
		return mustJSON(map[string]any{"eventType": event, "data": data})
	}
	awarded := mustJSON(map[string]any{"eventType": "rewards.awarded", "data": map[string]any{
		"applicationDetails": app(),
		"user":               map[string]any{"id": user, "availablePoints": json.Number("15.5"), "lifetimePoints": json.Number("15.5"), "numOfTransactions": 1},
		"transaction": map[string]any{"externalTransactionID": receipt, "transactionID": "tx-watch", "totalPoints": json.Number("15.5"),
			"totalCO2e": json.Number("0.42"), "totalGreenProducts": 2, "totalHealthPoints": json.Number("3"), "totalBonusPoints": 0},
	}})
	steps := []struct {
		body []byte
		want []string // reported stages after the delivery; nil for a duplicate
	}{
		{stage("receipt.validated"), []string{"STAGE_VALIDATED"}},
		{stage("receipt.uploaded"), []string{"STAGE_UPLOADED", "STAGE_VALIDATED"}},
		{stage("receipt.validated"), nil}, // an exact re-delivery
		{stage("receipt.extracted"), []string{"STAGE_UPLOADED", "STAGE_EXTRACTED", "STAGE_VALIDATED"}},
		{stage("receipt.scored"), []string{"STAGE_UPLOADED", "STAGE_EXTRACTED", "STAGE_VALIDATED", "STAGE_SCORED"}},
		{awarded, []string{"STAGE_UPLOADED", "STAGE_EXTRACTED", "STAGE_VALIDATED", "STAGE_SCORED", "STAGE_AWARDED"}},
	}
	var last uint64
	for i, st := range steps {
		code, pos := s.post(t, "reewild", st.body, sign(st.body), "application/json")
		if code != http.StatusOK {
			t.Fatalf("step %d: delivery answered %d", i, code)
		}
		if st.want == nil {
			continue // the next message must be the next change's, not this one's
		}
		last = pos
		got, err := grpcWatch.Recv()
		if err != nil {
			t.Fatalf("step %d: gRPC watch: %v", i, err)
		}
		if r := reportedStages(got); !slices.Equal(r, st.want) {
			t.Fatalf("step %d: gRPC watch shows %v, want %v", i, r, st.want)
		}
		stages, status, err := restWatch.next()
		if err != nil {
			t.Fatalf("step %d: REST watch: %v", i, err)
		}
		if !slices.Equal(stages, st.want) {
			t.Fatalf("step %d: REST watch shows %v, want %v", i, stages, st.want)
		}
		terminal := i == len(steps)-1
		if (status == "RECEIPT_STATUS_COMPLETED") != terminal || (got.GetStatus() == receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED) != terminal {
			t.Fatalf("step %d: status %s / %s", i, status, got.GetStatus())
		}
	}
	// The terminal view was the last message: both streams end.
	if m, err := grpcWatch.Recv(); err != io.EOF {
		t.Fatalf("gRPC watch after the terminal view: %v %v, want EOF", m, err)
	}
	if stages, _, err := restWatch.next(); err != io.EOF {
		t.Fatalf("REST watch after the terminal view: %v %v, want EOF", stages, err)
	}

	// The user's watch saw their balance move to the award (the messages
	// before it are the receipt in progress).
	for {
		b, err := userWatch.Recv()
		if err != nil {
			t.Fatalf("user watch: %v", err)
		}
		if b.GetReceiptsCompleted() == 1 {
			if b.GetDerivedPoints() != "15.5" || !b.GetReconciled() {
				t.Fatalf("balance after the award: %v", b)
			}
			break
		}
		if b.GetReceiptsInProgress() != 1 {
			t.Fatalf("balance before the award: %v", b)
		}
	}

	// The events behind the view: five distinct deliveries, from the log.
	var events struct {
		Events []struct {
			Position string `json:"position"`
			Stage    string `json:"stage"`
			Delivery struct {
				ProviderEventType string `json:"providerEventType"`
				Scheme            string `json:"scheme"`
				KeyID             string `json:"keyId"`
				BodySha256        string `json:"bodySha256"`
				ReceivedAt        string `json:"receivedAt"`
			} `json:"delivery"`
		} `json:"events"`
	}
	if code := s.getJSON(t, fmt.Sprintf("/v1/receipts/%s/events?min_position=%d", receipt, last), &events); code != http.StatusOK || len(events.Events) != 5 {
		t.Fatalf("events: %d %+v", code, events)
	}
	bodyHash := func(b []byte) string { sum := sha256.Sum256(b); return hex.EncodeToString(sum[:]) }
	if e := events.Events[0]; e.Stage != "STAGE_VALIDATED" || e.Delivery.ProviderEventType != "receipt.validated" || e.Delivery.Scheme != "hmac-sha256" ||
		!strings.HasPrefix(e.Delivery.KeyID, "sha256:") || e.Delivery.BodySha256 != bodyHash(steps[0].body) || e.Delivery.ReceivedAt == "" {
		t.Errorf("first event %+v", e)
	}
	if e := events.Events[4]; e.Stage != "STAGE_AWARDED" || e.Position != fmt.Sprint(last) {
		t.Errorf("last event %+v, want the award at %d", e, last)
	}

	// The ledger: one award, its running total the derived balance.
	var ledger struct {
		Entries []struct {
			Kind, Points, Total, ReceiptID string
		} `json:"entries"`
	}
	if code := s.getJSON(t, "/v1/users/"+user+"/ledger", &ledger); code != http.StatusOK || len(ledger.Entries) != 1 ||
		ledger.Entries[0].Kind != "LEDGER_ENTRY_KIND_AWARD" || ledger.Entries[0].Total != "15.5" {
		t.Fatalf("ledger: %d %+v", code, ledger)
	}

	// The statistics count it, and so do the metrics.
	var stats struct {
		Sources []struct {
			Source string `json:"source"`
			Total  struct {
				Completed      int    `json:"completed"`
				Points         string `json:"points"`
				TimeToTerminal struct {
					Count int `json:"count"`
				} `json:"timeToTerminal"`
			} `json:"total"`
		} `json:"sources"`
	}
	if code := s.getJSON(t, "/v1/stats?source=reewild", &stats); code != http.StatusOK || len(stats.Sources) != 1 ||
		stats.Sources[0].Total.Completed != 1 || stats.Sources[0].Total.Points != "15.5" || stats.Sources[0].Total.TimeToTerminal.Count != 1 {
		t.Fatalf("stats: %d %+v", code, stats)
	}
	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`receiptd_pipeline_receipts{source="reewild",status="completed"} 1`, `receiptd_pipeline_points{source="reewild"} 15.5`, `receiptd_pipeline_time_to_terminal_seconds{quantile="0.5",source="reewild"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
