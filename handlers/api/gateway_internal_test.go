package api

import (
	"testing"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// TestGatewayRoutes: the route table read from the OpenAPI document names
// every REST route with its RPC, whether it takes a body and whether it is
// long (its deadlines are lifted once its caller is checked).
func TestGatewayRoutes(t *testing.T) {
	routes, err := gatewayRoutes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]route{
		"GET /v1/receipts/*":            {rpc: receiptdv1.ReceiptService_GetReceipt_FullMethodName},
		"GET /v1/users/*/receipts":      {rpc: receiptdv1.ReceiptService_ListUserReceipts_FullMethodName},
		"GET /v1/receipts":              {rpc: receiptdv1.ReceiptService_ListReceipts_FullMethodName},
		"GET /v1/users/*/balance":       {rpc: receiptdv1.ReceiptService_GetBalance_FullMethodName},
		"GET /v1/entities/*/*":          {rpc: receiptdv1.ReceiptService_GetEntity_FullMethodName},
		"GET /v1/entities/*":            {rpc: receiptdv1.ReceiptService_ListEntities_FullMethodName},
		"GET /v1/receipts/*/events":     {rpc: receiptdv1.ReceiptService_ListReceiptEvents_FullMethodName},
		"GET /v1/users/*/ledger":        {rpc: receiptdv1.ReceiptService_ListUserLedger_FullMethodName},
		"GET /v1/receipts/*/watch":      {rpc: receiptdv1.ReceiptService_WatchReceipt_FullMethodName, long: true},
		"GET /v1/users/*/watch":         {rpc: receiptdv1.ReceiptService_WatchUser_FullMethodName, long: true},
		"GET /v1/stats":                 {rpc: receiptdv1.StatsService_GetStats_FullMethodName},
		"GET /v1/audit":                 {rpc: receiptdv1.AuditService_Audit_FullMethodName, long: true},
		"POST /v1/rebuild":              {rpc: receiptdv1.AuditService_Rebuild_FullMethodName, body: true, long: true},
		"GET /v1/quarantine":            {rpc: receiptdv1.AuditService_ListQuarantined_FullMethodName},
		"POST /v1/quarantine/reprocess": {rpc: receiptdv1.AuditService_ReprocessQuarantined_FullMethodName, body: true},
		// Custom verbs (":forget", ":pause") stay in the key.
		"POST /v1/subjects/*:forget": {rpc: receiptdv1.PrivacyService_ForgetSubject_FullMethodName},
		"GET /v1/subjects/*:export":  {rpc: receiptdv1.PrivacyService_ExportSubject_FullMethodName, long: true},
		// The feed: served as Server-Sent Events, long like every stream.
		"GET /v1/feed":                        {rpc: receiptdv1.FeedService_Subscribe_FullMethodName, long: true},
		"GET /v1/destinations":                {rpc: receiptdv1.FeedService_ListDestinations_FullMethodName},
		"POST /v1/destinations/*:pause":       {rpc: receiptdv1.FeedService_PauseDestination_FullMethodName},
		"POST /v1/destinations/*:resume":      {rpc: receiptdv1.FeedService_ResumeDestination_FullMethodName},
		"POST /v1/destinations/*:redeliver":   {rpc: receiptdv1.FeedService_RedeliverDestination_FullMethodName, body: true},
		"GET /v1/destinations/*/dead-letters": {rpc: receiptdv1.FeedService_ListDeadLetters_FullMethodName},
	}
	for k, w := range want {
		if got, ok := routes[k]; !ok || got != w {
			t.Errorf("%s: %+v (found %v), want %+v", k, got, ok, w)
		}
	}
	for k := range routes {
		if _, ok := want[k]; !ok {
			t.Errorf("route %s is not in this test: add it, with whether it takes a body and is long", k)
		}
	}
	// A runtime.Pattern's template reads the same.
	if got := routeKey("GET", "/v1/receipts/{receipt_id=*}/watch"); got != "GET /v1/receipts/*/watch" {
		t.Errorf("routeKey of a pattern = %q", got)
	}
	if got := routeKey("POST", "/v1/destinations/{name=*}:pause"); got != "POST /v1/destinations/*:pause" {
		t.Errorf("routeKey of a pattern with a verb = %q", got)
	}
}
