package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/gen"
	"github.com/receiptd/receiptd/projections"
)

// get fetches path from the REST server and decodes the JSON body.
func get(t *testing.T, env *testEnv, path string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.rest.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := env.rest.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return resp.StatusCode, out
}

func fieldNames(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func wantKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := fieldNames(m); !slices.Equal(got, want) {
		t.Errorf("%s has fields %q, want exactly %q", what, got, want)
	}
}

// wantFields checks m's values, compared as JSON.
func wantFields(t *testing.T, what string, m map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		gotJSON, _ := json.Marshal(m[k])
		wantJSON, _ := json.Marshal(w)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("%s.%s = %s, want %s", what, k, gotJSON, wantJSON)
		}
	}
}

var receiptFields = []string{
	"receiptId", "source", "userId", "status", "points", "totalCo2e", "stages", "failure", "anomalies",
	"userIds", "merchant", "currency", "amount", "healthPoints", "bonusPoints", "greenProducts", "transactionId",
}

func TestRESTGetReceipt(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) {
		f.receipts["reewild/fb2c91"] = completedReceipt()
		f.receipts["reap/r-fail"] = failedReceipt()
	})

	code, r := get(t, env, "/v1/receipts/fb2c91", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, r)
	}
	wantKeys(t, "Receipt", r, receiptFields...)
	wantFields(t, "Receipt", r, map[string]any{
		"receiptId":     "fb2c91",
		"source":        "reewild",
		"userId":        "027KO2",
		"status":        "RECEIPT_STATUS_COMPLETED",
		"points":        "1656.54",
		"totalCo2e":     "3.217",
		"failure":       nil,
		"anomalies":     []any{map[string]any{"kind": "correction", "detail": "EXTRACTED reported with 2 different bodies"}},
		"userIds":       []any{"027KO2"},
		"merchant":      "Tesco",
		"currency":      "GBP",
		"amount":        "23.4",
		"healthPoints":  "12.5",
		"bonusPoints":   "100",
		"greenProducts": 4, // int32: a JSON number
		"transactionId": "tx-77",
	})
	stages, _ := r["stages"].([]any)
	if len(stages) != len(aggregate.Stages) {
		t.Fatalf("stages = %v, want %d", r["stages"], len(aggregate.Stages))
	}
	extracted, _ := stages[1].(map[string]any)
	wantKeys(t, "stages[1]", extracted, "stage", "reported", "occurredAt", "corrections", "recordedAt")
	wantFields(t, "stages[1]", extracted, map[string]any{
		"stage": "STAGE_EXTRACTED", "reported": true, "occurredAt": "2025-03-01T12:30:00Z", "corrections": 1,
		"recordedAt": "2025-03-01T12:30:01.500Z",
	})
	enriched, _ := stages[2].(map[string]any)
	wantFields(t, "stages[2]", enriched, map[string]any{
		"stage": "STAGE_ENRICHED", "reported": false, "occurredAt": nil, "corrections": 0,
	})

	code, r = get(t, env, "/v1/receipts/r-fail?source=reap", nil)
	if code != http.StatusOK {
		t.Fatalf("source=reap: status %d: %v", code, r)
	}
	// amount is optional: absent when no event reported it; every other
	// field is present, zeros included.
	wantKeys(t, "failed Receipt", r, slices.DeleteFunc(slices.Clone(receiptFields), func(k string) bool { return k == "amount" })...)
	wantFields(t, "failed Receipt", r, map[string]any{
		"status":        "RECEIPT_STATUS_FAILED",
		"points":        "0",
		"totalCo2e":     "0",
		"greenProducts": 0,
		"anomalies":     []any{},
		"userIds":       []any{},
		"merchant":      "",
		"failure":       map[string]any{"code": 5, "name": "FAILED_VALIDATE", "message": "total mismatch"},
	})
}

func TestRESTGetBalance(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) {
		f.balances["reewild/027KO2"] = projections.Balance{
			Source: "reewild", UserID: "027KO2",
			Reported:           &aggregate.Snapshot{AvailablePoints: dec("1656.54"), LifetimePoints: dec("2000"), NumTransactions: 12},
			AwardedPoints:      dec("1999.49"),
			CreditedPoints:     dec("0.5"),
			DerivedPoints:      dec("1999.99"),
			Reconciled:         false,
			ReceiptsCompleted:  3,
			ReceiptsInProgress: 1,
			TotalCO2e:          dec("7.5"),
			TotalGreenProducts: 9,
			TotalHealthPoints:  dec("40"),
			Enrolled:           true,
			AmountAnomalies:    2,
		}
		f.balances["reap/new"] = projections.Balance{Source: "reap", UserID: "new"}
	})

	code, b := get(t, env, "/v1/users/027KO2/balance", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, b)
	}
	balanceFields := []string{
		"userId", "source", "reportedAvailablePoints", "reportedLifetimePoints", "reportedNumTransactions",
		"awardedPoints", "creditedPoints", "derivedPoints", "reconciled", "receiptsCompleted", "receiptsFailed",
		"receiptsInProgress", "totalCo2e", "totalGreenProducts", "totalHealthPoints", "enrolled", "amountAnomalies",
		"forgotten", "forgottenAt",
	}
	wantKeys(t, "Balance", b, balanceFields...)
	wantFields(t, "Balance", b, map[string]any{
		"userId":                  "027KO2",
		"source":                  "reewild",
		"reportedAvailablePoints": "1656.54",
		"reportedLifetimePoints":  "2000",
		"reportedNumTransactions": 12,
		"awardedPoints":           "1999.49",
		"creditedPoints":          "0.5",
		"derivedPoints":           "1999.99",
		"reconciled":              false,
		"receiptsCompleted":       3,
		"receiptsFailed":          0,
		"receiptsInProgress":      1,
		"totalCo2e":               "7.5",
		"totalGreenProducts":      9,
		"totalHealthPoints":       "40",
		"enrolled":                true,
		"amountAnomalies":         2,
	})

	// A user seen but never awarded: every field present, zeros included.
	code, b = get(t, env, "/v1/users/new/balance?source=reap", nil)
	if code != http.StatusOK {
		t.Fatalf("source=reap: status %d: %v", code, b)
	}
	wantKeys(t, "zero Balance", b, balanceFields...)
	wantFields(t, "zero Balance", b, map[string]any{
		"source":                  "reap",
		"reportedAvailablePoints": "0",
		"reportedLifetimePoints":  "0",
		"reportedNumTransactions": 0,
		"awardedPoints":           "0",
		"creditedPoints":          "0",
		"derivedPoints":           "0",
		"reconciled":              false,
		"receiptsCompleted":       0,
		"receiptsFailed":          0,
		"receiptsInProgress":      0,
		"totalCo2e":               "0",
		"totalGreenProducts":      0,
		"totalHealthPoints":       "0",
		"enrolled":                false,
	})
}

func TestRESTListUserReceipts(t *testing.T) {
	env := newTestEnv(t)
	a, b := completedReceipt(), completedReceipt()
	b.ReceiptID = "second"
	env.reader.Set(func(f *fakeReader) { f.lists["reewild/027KO2"] = []aggregate.ReceiptView{a, b} })

	code, page := get(t, env, "/v1/users/027KO2/receipts?page_size=1", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, page)
	}
	wantKeys(t, "ListUserReceiptsResponse", page, "receipts", "nextPageToken")
	receipts, _ := page["receipts"].([]any)
	if len(receipts) != 1 {
		t.Fatalf("receipts = %v, want 1", page["receipts"])
	}
	wantKeys(t, "receipts[0]", receipts[0].(map[string]any), receiptFields...)
	token, _ := page["nextPageToken"].(string)
	if token == "" {
		t.Fatalf("nextPageToken empty on the first of two pages")
	}

	code, page = get(t, env, "/v1/users/027KO2/receipts?pageSize=1&pageToken="+token, nil)
	if code != http.StatusOK {
		t.Fatalf("page 2: status %d: %v", code, page)
	}
	wantFields(t, "page 2", page, map[string]any{"nextPageToken": ""})
	if receipts, _ := page["receipts"].([]any); len(receipts) != 1 || receipts[0].(map[string]any)["receiptId"] != "second" {
		t.Errorf("page 2 receipts = %v", page["receipts"])
	}
}

var entityFields = []string{
	"kind", "entityId", "source", "status", "statusAt", "amount", "currency", "userId",
	"firstSeen", "lastSeen", "firstPosition", "lastPosition", "eventCount", "timeline", "forgotten",
}

func TestRESTGetEntity(t *testing.T) {
	env := newTestEnv(t)
	bare := projections.Entity{Source: "reap", Kind: "account", ID: "acc-1", FirstSeen: offerEntity().FirstSeen, LastSeen: offerEntity().FirstSeen, FirstPosition: 3, LastPosition: 3, EventCount: 1,
		Timeline: []projections.EntityEvent{{EventType: "account_status_change", BodySHA256: "cc", Position: 3, RecordedAt: offerEntity().FirstSeen}}}
	env.reader.Set(func(f *fakeReader) {
		f.entities["reewild/offer/93092"] = offerEntity()
		f.entities["reap/account/acc-1"] = bare
	})

	code, e := get(t, env, "/v1/entities/offer/93092", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, e)
	}
	wantKeys(t, "Entity", e, entityFields...)
	wantFields(t, "Entity", e, map[string]any{
		"kind":          "offer",
		"entityId":      "93092",
		"source":        "reewild",
		"status":        "Delivered",
		"statusAt":      "2025-11-21T16:00:00Z",
		"amount":        "960",
		"currency":      "$",
		"userId":        "027KO2",
		"firstSeen":     "2025-11-21T15:00:01Z",
		"lastSeen":      "2025-11-21T16:00:01Z",
		"firstPosition": "7",                   // uint64: a JSON string
		"lastPosition":  "1152921504606846976", // beyond 2^53: exact as a string
		"eventCount":    2,                     // int32: a JSON number
	})
	timeline, _ := e["timeline"].([]any)
	if len(timeline) != 2 {
		t.Fatalf("timeline = %v, want 2 events", e["timeline"])
	}
	eventFields := []string{"eventType", "status", "statusAt", "occurredAt", "amount", "currency", "userId", "attributes", "bodySha256", "position", "recordedAt", "forgotten"}
	created, _ := timeline[0].(map[string]any)
	wantKeys(t, "timeline[0]", created, slices.DeleteFunc(slices.Clone(eventFields), func(k string) bool { return k == "amount" })...)
	wantFields(t, "timeline[0]", created, map[string]any{
		"eventType":  "offer.created",
		"status":     "Active Leads",
		"statusAt":   "2025-11-21T15:00:00Z",
		"occurredAt": "2025-11-21T15:00:00Z",
		"attributes": map[string]any{"status_id": "1"},
		"bodySha256": "aa",
		"position":   "7",
		"recordedAt": "2025-11-21T15:00:01Z",
		"currency":   "",
		"userId":     "",
	})
	updated, _ := timeline[1].(map[string]any)
	wantKeys(t, "timeline[1]", updated, eventFields...)
	wantFields(t, "timeline[1]", updated, map[string]any{
		"status": "Delivered", "occurredAt": nil, "amount": "960", "currency": "$", "userId": "027KO2", "attributes": map[string]any{},
	})

	// An entity with no status, amount or user: every field but the
	// optional amount present, zeros and nulls included.
	code, e = get(t, env, "/v1/entities/account/acc-1?source=reap", nil)
	if code != http.StatusOK {
		t.Fatalf("source=reap: status %d: %v", code, e)
	}
	wantKeys(t, "bare Entity", e, slices.DeleteFunc(slices.Clone(entityFields), func(k string) bool { return k == "amount" })...)
	wantFields(t, "bare Entity", e, map[string]any{
		"kind": "account", "entityId": "acc-1", "source": "reap", "status": "", "statusAt": nil,
		"currency": "", "userId": "", "eventCount": 1, "firstPosition": "3", "lastPosition": "3",
	})
}

func TestRESTListEntities(t *testing.T) {
	env := newTestEnv(t)
	a, b := offerEntity(), offerEntity()
	a.Timeline, b.Timeline = nil, nil
	b.ID = "second"
	env.reader.Set(func(f *fakeReader) { f.kinds["reewild/offer"] = []projections.Entity{a, b} })

	code, page := get(t, env, "/v1/entities/offer?page_size=1", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, page)
	}
	wantKeys(t, "ListEntitiesResponse", page, "entities", "nextPageToken")
	entities, _ := page["entities"].([]any)
	if len(entities) != 1 {
		t.Fatalf("entities = %v, want 1", page["entities"])
	}
	first, _ := entities[0].(map[string]any)
	wantKeys(t, "entities[0]", first, entityFields...)
	wantFields(t, "entities[0]", first, map[string]any{"entityId": "93092", "timeline": []any{}})
	token, _ := page["nextPageToken"].(string)
	if token == "" {
		t.Fatalf("nextPageToken empty on the first of two pages")
	}

	code, page = get(t, env, "/v1/entities/offer?pageSize=1&pageToken="+token, nil)
	if code != http.StatusOK {
		t.Fatalf("page 2: status %d: %v", code, page)
	}
	wantFields(t, "page 2", page, map[string]any{"nextPageToken": ""})
	if entities, _ := page["entities"].([]any); len(entities) != 1 || entities[0].(map[string]any)["entityId"] != "second" {
		t.Errorf("page 2 entities = %v", page["entities"])
	}

	code, page = get(t, env, "/v1/entities/customer?source=reap", nil)
	if code != http.StatusOK {
		t.Fatalf("empty kind: status %d: %v", code, page)
	}
	wantFields(t, "empty list", page, map[string]any{"entities": []any{}, "nextPageToken": ""})
}

func TestRESTQueryParameters(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) {
		f.receipts["reap/r-fail"] = failedReceipt()
		f.balances["reewild/027KO2"] = projections.Balance{Source: "reewild", UserID: "027KO2"}
		f.lists["reap/u9"] = []aggregate.ReceiptView{failedReceipt()}
		f.entities["reap/offer/93092"] = offerEntity()
	})
	for _, path := range []string{
		"/v1/receipts/r-fail?source=reap&min_position=42",
		"/v1/users/027KO2/balance?minPosition=43",
		"/v1/users/u9/receipts?source=reap&min_position=44&page_size=10",
		"/v1/entities/offer/93092?source=reap&min_position=45",
		"/v1/entities/order?source=reap&minPosition=46&pageSize=10",
	} {
		if code, body := get(t, env, path, nil); code != http.StatusOK {
			t.Errorf("GET %s: status %d: %v", path, code, body)
		}
	}
	want := []string{
		"WaitFor 42", "Receipt reap r-fail",
		"WaitFor 43", "Balance reewild 027KO2",
		"WaitFor 44", `UserReceipts reap u9 10 ""`,
		"WaitFor 45", "Entity reap offer 93092",
		"WaitFor 46", `Entities reap order 10 ""`,
	}
	if calls := env.reader.Calls(); !slices.Equal(calls, want) {
		t.Errorf("reader calls = %q, want %q", calls, want)
	}
}

func TestRESTErrors(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) {
		f.lists["reewild/027KO2"] = []aggregate.ReceiptView{completedReceipt()}
		f.balances["reewild/027KO2"] = projections.Balance{Source: "reewild", UserID: "027KO2"}
	})
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/v1/receipts/missing", http.StatusNotFound},
		{"/v1/users/nobody/balance", http.StatusNotFound},
		{"/v1/users/nobody/receipts", http.StatusNotFound},
		{"/v1/users/027KO2/balance?source=nope", http.StatusNotFound},
		{"/v1/users/027KO2/receipts?page_token=forged", http.StatusBadRequest},
		{"/v1/users/027KO2/receipts?page_size=-5", http.StatusBadRequest},
		{"/v1/users/027KO2/receipts?page_size=many", http.StatusBadRequest},
		{"/v1/receipts/" + strings.Repeat("x", 300), http.StatusBadRequest},
		{"/v1/entities/offer/missing", http.StatusNotFound},
		{"/v1/entities/offer/93092?source=nope", http.StatusNotFound},
		{"/v1/entities/off%20er/93092", http.StatusBadRequest},
		{"/v1/entities/" + strings.Repeat("k", 65), http.StatusBadRequest},
		{"/v1/entities/offer?page_token=forged", http.StatusBadRequest},
		{"/v1/entities/offer?page_size=-1", http.StatusBadRequest},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, env, tc.path, nil)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if msg, _ := body["message"].(string); msg == "" {
				t.Errorf("error body %v has no message", body)
			}
		})
	}

	env.reader.Set(func(f *fakeReader) { f.waitErr = projections.ErrBehind })
	if code, body := get(t, env, "/v1/users/027KO2/balance?min_position=99", nil); code != http.StatusServiceUnavailable {
		t.Errorf("behind: status %d, want 503: %v", code, body)
	}
}

// TestRESTPassesThroughGRPC checks that a REST call reaches the gRPC
// server's interceptors with the Authorization header as metadata, once.
func TestRESTPassesThroughGRPC(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) {
		f.balances["reewild/027KO2"] = projections.Balance{Source: "reewild", UserID: "027KO2"}
	})
	h := http.Header{
		"Authorization":               {"Bearer user-jwt"},
		"Grpc-Metadata-Authorization": {"Bearer forged"},
		"Grpc-Metadata-X-Api-Key":     {"forged"},
	}
	if code, body := get(t, env, "/v1/users/027KO2/balance", h); code != http.StatusOK {
		t.Fatalf("status %d: %v", code, body)
	}
	md := env.LastMD()
	if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer user-jwt"}) {
		t.Errorf("authorization metadata = %q, want exactly [\"Bearer user-jwt\"]", got)
	}
	if got := md.Get("x-api-key"); len(got) != 0 {
		t.Errorf("x-api-key metadata = %q: a REST client set arbitrary metadata", got)
	}
	if got := md.Get("x-forwarded-for"); len(got) != 1 || !strings.HasSuffix(got[0], "127.0.0.1") {
		t.Errorf("x-forwarded-for metadata = %q, want the REST client's address last", got)
	}
}

func TestOpenAPIHandler(t *testing.T) {
	env := newTestEnv(t)
	code, doc := get(t, env, "/openapi.json", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if doc["swagger"] != "2.0" {
		t.Errorf("swagger = %v, want 2.0", doc["swagger"])
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range []string{"/v1/receipts/{receiptId}", "/v1/users/{userId}/balance", "/v1/users/{userId}/receipts", "/v1/entities/{kind}", "/v1/entities/{kind}/{entityId}"} {
		if _, ok := paths[p]; !ok {
			t.Errorf("paths %q lack %s", fieldNames(paths), p)
		}
	}
	var embedded map[string]any
	if err := json.Unmarshal(gen.OpenAPI, &embedded); err != nil {
		t.Fatalf("gen.OpenAPI: %v", err)
	}
	if len(embedded) != len(doc) {
		t.Errorf("served document differs from gen.OpenAPI")
	}

	resp, err := env.rest.Client().Post(env.rest.URL+"/openapi.json", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}
