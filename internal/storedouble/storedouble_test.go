package storedouble_test

import (
	"context"
	"testing"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/storetest"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// TestConformance runs the store conformance suite on the double: what it
// implements behaves as the real stores do. It has no Subscribe (the suite
// checks that it says so) and cannot be reopened.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewLog: func(t *testing.T) storetest.OpenFunc {
			return func(context.Context) (eventstore.Store, error) { return storedouble.NewMemStoreDouble(), nil }
		},
		Features: storetest.Features{FreshLog: true},
	})
}
