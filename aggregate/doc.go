// Package aggregate is receiptd's domain: the normalized events providers'
// deliveries become, the decision whether a delivery is new, a duplicate or a
// correction, and the receipt and user aggregates whose views are a function
// of the set of facts, never of their arrival order.
//
// # Basics
//
// A handler turns a verified delivery into a Fact (stream, event type,
// normalized data, dedupe key). Decide compares the Fact with the events
// already in its stream and says whether to append it. Receipt folds a
// receipt stream's facts into a ReceiptView; the rules are those of
// DESIGN.md, "Receipt aggregate rules".
//
// # Caveats
//
// The package is pure: no I/O, no clock reads, no randomness. Time is passed
// in. It imports only the standard library and github.com/shopspring/decimal;
// never gen, net/http, grpc or a store driver. Points, money and CO2e are
// decimal.Decimal, parsed from the JSON number text, never through float64.
package aggregate
