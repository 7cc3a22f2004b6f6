package feed

import (
	"sync"

	"github.com/klauspost/compress/s2"
)

// viewDictText is the S2 dictionary of stored events (formatS2): the
// kinds, then a view of each kind with typical values, in the field order
// the read models encode them. Events stored in formatS2 can only be read
// with these bytes: NEVER change them. A better dictionary is a new
// format, read beside this one.
const viewDictText = "evt_" +
	"receipt.progressed.v1" + "receipt.completed.v1" + "receipt.failed.v1" + "balance.changed.v1" +
	"user.enrolled.v1" + "entity.changed.v1" + "anomaly.detected.v1" +
	"reewild" + "receipt" + "balance" + "entity" +
	`{"source":"reewild","user_id":"user-","awarded_points":"0","credited_points":"0","derived_points":"0","reconciled":true,"receipts_completed":0,"receipts_failed":0,"receipts_in_progress":0,"total_co2e":"0","total_green_products":0,"total_health_points":"0","enrolled":true,"amount_anomalies":0}` +
	`{"source":"reewild","user_id":"user-","reported":{"available_points":"0","lifetime_points":"0","num_transactions":0},"awarded_points":"0","credited_points":"0","derived_points":"0","reconciled":false,"receipts_completed":1,"receipts_failed":0,"receipts_in_progress":1,"total_co2e":"0","total_green_products":0,"total_health_points":"0","enrolled":false,"amount_anomalies":0}` +
	`{"source":"reward","kind":"offer","id":"","status":"","status_at":"2026-03-01T09:00:00Z","amount":"0","currency":"GBP","user_id":"","first_seen":"2026-03-01T09:00:00Z","last_seen":"2026-03-01T09:00:00Z","first_position":0,"last_position":0}` +
	`{"receipt_id":"rcpt-","source":"reewild","user_id":"user-","status":"FAILED","points":"0","bonus_points":"0","health_points":"0","co2e":"0","green_products":0,"merchant":"","currency":"GBP","amount":"0","stages":[{"stage":"UPLOADED","reported":false},{"stage":"EXTRACTED","reported":false},{"stage":"ENRICHED","reported":false},{"stage":"VALIDATED","reported":false},{"stage":"SCORED","reported":false},{"stage":"AWARDED","reported":false},{"stage":"FAILED","reported":true,"occurred_at":"2026-03-01T09:00:00Z","recorded_at":"2026-03-01T09:00:00.000Z"}],"failure":{"code":5,"name":"FAILED_VALIDATE","message":"Receipt validation failed"},"anomalies":[{"kind":"","detail":""}],"user_ids":["user-"]}` +
	`{"receipt_id":"rcpt-","source":"reewild","user_id":"user-","status":"IN_PROGRESS","points":"0","bonus_points":"0","health_points":"0","co2e":"0","green_products":0,"transaction_id":"tx-rcpt-","stages":[{"stage":"UPLOADED","reported":true,"occurred_at":"2026-03-01T09:00:00Z","recorded_at":"2026-03-01T09:00:00.000Z"},{"stage":"EXTRACTED","reported":true,"occurred_at":"2026-03-01T09:00:00Z","recorded_at":"2026-03-01T09:00:00.000Z"},{"stage":"ENRICHED","reported":true,"occurred_at":"2026-03-01T09:00:00Z","recorded_at":"2026-03-01T09:00:00.000Z"},{"stage":"VALIDATED","reported":true,"occurred_at":"2026-03-01T09:00:00Z","recorded_at":"2026-03-01T09:00:00.000Z"},{"stage":"SCORED","reported":true,"occurred_at":"2026-03-01T09:00:00Z","recorded_at":"2026-03-01T09:00:00.000Z"},{"stage":"AWARDED","reported":true,"occurred_at":"2026-03-01T09:00:00Z","recorded_at":"2026-03-01T09:00:00.000Z"},{"stage":"FAILED","reported":false}],"user_ids":["user-"],"snapshot":{"available_points":"0","lifetime_points":"0","num_transactions":0}}` +
	`{"receipt_id":"rcpt-","source":"reewild","user_id":"user-","status":"COMPLETED","points":"0","bonus_points":"0","health_points":"0","co2e":"0","green_products":0`

// viewDict is viewDictText's dictionary, its first repeat offset 0.
var viewDict = sync.OnceValue(func() *s2.Dict { return s2.MakeDictManual([]byte(viewDictText), 0) })
