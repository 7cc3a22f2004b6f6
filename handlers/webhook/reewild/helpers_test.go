package reewild_test

import (
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
)

// examplesDir holds the seed's example payloads, one file per event type.
const examplesDir = "../../../examples/reewild"

// loadExamples reads every example, sorted by name.
func loadExamples(tb testing.TB) []webhooktest.Example {
	return webhooktest.Examples(tb, examplesDir, 8)
}

// loadExample reads the example of one event type.
func loadExample(tb testing.TB, name string) []byte {
	return webhooktest.ReadExample(tb, examplesDir, name)
}
