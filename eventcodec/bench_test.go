package eventcodec_test

import (
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
)

// benchKinds are the facts each benchmark runs over, by name: the bench's
// load (bench/benchdata: receipts' six deliveries and enrolments) and, for
// the kinds the bench does not send, the seed examples and odd facts.
func benchKinds(b *testing.B) []struct {
	name  string
	facts []testFact
} {
	b.Helper()
	bench := benchFacts(b, 64)
	var stages, awarded, enrolled []testFact
	for _, f := range bench {
		switch {
		case f.fact.Type == aggregate.TypeUserEnrolled:
			enrolled = append(enrolled, f)
		case f.name == "rewards.awarded":
			awarded = append(awarded, f)
			stages = append(stages, f)
		default:
			stages = append(stages, f)
		}
	}
	byType := map[string][]testFact{}
	for _, f := range append(seedFacts(b), oddFacts()...) {
		if f.body != nil && len(f.body) > 0 {
			byType[f.fact.Type] = append(byType[f.fact.Type], f)
		}
	}
	return []struct {
		name  string
		facts []testFact
	}{
		{"stage_recorded", stages},
		{"stage_recorded_awarded", awarded},
		{"user_enrolled", enrolled},
		{"quarantined", byType[aggregate.TypeDeliveryQuarantined]},
		{"points_credited", byType[aggregate.TypeUserPointsCredited]},
		{"entity_event_recorded", byType[aggregate.TypeEntityEventRecorded]},
	}
}

func encodeV1(b *testing.B, f testFact) aggregate.Event { return v1Event(b, f) }

func encodeV2(b *testing.B, f testFact) aggregate.Event {
	e, err := eventcodec.Encode(f.id, f.fact, f.meta, f.body)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// reportCPU reports the process's CPU time per operation since c0.
func reportCPU(b *testing.B, c0 int64) {
	if c := cpuTime(); c > 0 && b.N > 0 {
		b.ReportMetric(float64(c-c0)/float64(b.N), "cpu-ns/op")
	}
}

func size(e aggregate.Event) int { return len(e.Data) + len(e.Metadata) + len(e.Body) }

// BenchmarkEncode: one event from a normalized fact, as the handler makes
// it: v1 (JSON with the raw body inside, JSON metadata) and v2. B/event is
// the mean of Data + Metadata + Body, body-B the mean raw body.
func BenchmarkEncode(b *testing.B) {
	for _, k := range benchKinds(b) {
		for _, v := range []struct {
			name string
			enc  func(*testing.B, testFact) aggregate.Event
		}{{"v1", encodeV1}, {"v2", encodeV2}} {
			b.Run(k.name+"/"+v.name, func(b *testing.B) {
				stored, body := 0, 0
				for _, f := range k.facts {
					stored += size(v.enc(b, f))
					body += len(f.body)
				}
				b.ReportAllocs()
				b.ResetTimer()
				c0 := cpuTime()
				for i := 0; i < b.N; i++ {
					v.enc(b, k.facts[i%len(k.facts)])
				}
				reportCPU(b, c0)
				b.ReportMetric(float64(stored)/float64(len(k.facts)), "B/event")
				b.ReportMetric(float64(body)/float64(len(k.facts)), "body-B")
			})
		}
	}
}

func events(b *testing.B, facts []testFact) (v1, v2 []aggregate.Event) {
	for _, f := range facts {
		v1, v2 = append(v1, encodeV1(b, f)), append(v2, encodeV2(b, f))
	}
	return v1, v2
}

// BenchmarkDecode: the data of one event, as a projection reads it, v1 and
// v2.
func BenchmarkDecode(b *testing.B) {
	for _, k := range benchKinds(b) {
		v1, v2 := events(b, k.facts)
		for _, v := range []struct {
			name string
			evs  []aggregate.Event
		}{{"v1", v1}, {"v2", v2}} {
			b.Run(k.name+"/"+v.name, func(b *testing.B) {
				b.ReportAllocs()
				c0 := cpuTime()
				for i := 0; i < b.N; i++ {
					if _, err := decode(v.evs[i%len(v.evs)]); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, c0)
			})
		}
	}
}

// BenchmarkMetadata: the metadata of one event (what deciding and the
// statistics read), v1 and v2, over the bench's deliveries.
func BenchmarkMetadata(b *testing.B) {
	v1, v2 := events(b, benchFacts(b, 64))
	for _, v := range []struct {
		name string
		evs  []aggregate.Event
	}{{"v1", v1}, {"v2", v2}} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := eventcodec.Metadata(v.evs[i%len(v.evs)]); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, c0)
		})
	}
}

// BenchmarkRawBody: the provider's raw body of one event (re-processing,
// the console), v1 and v2, over the bench's deliveries.
func BenchmarkRawBody(b *testing.B) {
	v1, v2 := events(b, benchFacts(b, 64))
	for _, v := range []struct {
		name string
		evs  []aggregate.Event
	}{{"v1", v1}, {"v2", v2}} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := eventcodec.RawBody(v.evs[i%len(v.evs)]); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, c0)
		})
	}
}
