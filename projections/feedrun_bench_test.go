package projections

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkFeedOutEvents gives a bulk build's feedOut events of ~1 KB
// (what the workers derive for nearly every log event) through its chunks
// (room, took), spilling a sorted run every 4 MiB, and reports the bytes
// allocated per event: with a pool the chunks come back from the runs
// written; without one (pool=false) every chunk is new.
//
//	go test -run '^$' -bench FeedOutEvents -benchmem ./projections/
func BenchmarkFeedOutEvents(b *testing.B) {
	for _, pooled := range []bool{true, false} {
		b.Run(fmt.Sprintf("pool=%v", pooled), func(b *testing.B) {
			var pool *chunkPool
			if pooled {
				pool = newChunkPool(8 << 20)
			}
			o := newFeedOut(b.TempDir(), "bench.", 4<<20, pool)
			defer o.remove()
			body := bytes.Repeat([]byte("e"), 1000)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for i := range b.N {
				c := o.room(len(body))
				start := len(c)
				if err := o.event(uint64(b.N-i), o.took(append(c, body...), start)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
