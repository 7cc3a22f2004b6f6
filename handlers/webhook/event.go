package webhook

import (
	"github.com/google/uuid"
)

// eventNamespace is the UUIDv5 namespace of event ids. It never changes:
// ids already in the log were derived from it.
var eventNamespace = uuid.MustParse("17f9f96e-7593-488d-aee6-cdeca5bd484a")

// EventID returns the deterministic id of the event a delivery is recorded
// as: the UUIDv5, in namespace 17f9f96e-7593-488d-aee6-cdeca5bd484a, of
// source, dedupe key and body SHA-256 (hex) joined by NUL bytes. The same
// delivery to the same source always gets the same id; the store's event-id
// cache is never relied on for idempotency (aggregate.Decide is).
func EventID(source, dedupeKey, bodySHA256 string) string {
	name := make([]byte, 0, len(source)+len(dedupeKey)+len(bodySHA256)+2)
	name = append(name, source...)
	name = append(name, 0)
	name = append(name, dedupeKey...)
	name = append(name, 0)
	name = append(name, bodySHA256...)
	return uuid.NewSHA1(eventNamespace, name).String()
}
