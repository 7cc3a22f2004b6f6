// Package examples holds example configs and one example payload per
// provider event (examples/{kind}/*.json), shaped like the seed documents'.
// The payloads are embedded for the console's "Send test event" page.
package examples

import "embed"

// Payloads holds {kind}/{name}.json for every provider kind.
//
//go:embed */*.json
var Payloads embed.FS
