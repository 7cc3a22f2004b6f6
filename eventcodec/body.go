package eventcodec

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxBodyBytes bounds a decompressed raw body: RawBody refuses a frame that
// would decompress to more (a corrupt or hostile log cannot make it
// allocate without bound). It is far above any webhook body receiptd
// accepts.
const MaxBodyBytes = 64 << 20

// bodyLevel is the zstd level of raw bodies. On the bench's bodies (mean
// 1,071 B) the levels make frames of 447 (fastest), 439 (default), 438
// (better) and 437 B (best), for 10.5, 11.6, 18.6 and 64.3 us of CPU per
// body on this project's 2-core test machine (BenchmarkBodyLevel, same
// run, medians of 4): the 8 B that default saves cost 11% more CPU on the
// ingest path, so fastest.
const bodyLevel = zstd.SpeedFastest

// The encoder and decoder are shared: their EncodeAll and DecodeAll are safe
// for concurrent use, and building one costs far more than a body.
var (
	encoder = sync.OnceValues(func() (*zstd.Encoder, error) {
		// No frame checksum: RawBody checks the whole body against the
		// metadata's SHA-256 instead, end to end.
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(bodyLevel), zstd.WithEncoderConcurrency(4), zstd.WithEncoderCRC(false))
	})
	decoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecoderMaxMemory(MaxBodyBytes))
	})
)

// compress returns raw as one zstd frame, in a slice of the frame's size.
func compress(raw []byte) ([]byte, error) {
	return compressTo(raw, func(frame []byte) ([]byte, error) { return bytes.Clone(frame), nil })
}

// compressTo compresses raw into a scratch buffer and returns what use
// makes of the frame, which use must not keep. The buffer has room for
// the largest frame raw can make: the encoder writes it in place, where a
// smaller one (it was len(raw)/2+64) made it grow the buffer, copying,
// for one delivery in three of the bench's (BenchmarkEncode: 2,028 B and
// 14 allocations an event before, of which 856 B the frame; see the
// commit).
func compressTo(raw []byte, use func(frame []byte) ([]byte, error)) ([]byte, error) {
	enc, err := encoder()
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	buf := scratch.get(frameBound(len(raw)))
	*buf = enc.EncodeAll(raw, (*buf)[:0])
	out, err := use(*buf)
	scratch.put(buf)
	return out, err
}

// frameBound is the largest frame of n bytes (zstd's ZSTD_COMPRESSBOUND,
// plus room for the frame header), so that the encoder never grows its
// output.
func frameBound(n int) int { return n + n>>7 + 64 }

// scratch holds compression buffers between deliveries. Buffers above
// maxScratch (bodies of more than ~250 KB, rare) are left to the GC rather
// than kept.
var scratch bufferPool

const maxScratch = 256 << 10

// bufferPool is a sync.Pool of buffers, each held by a pointer that goes
// back with it (a slice put in a sync.Pool would allocate its header).
type bufferPool struct{ p sync.Pool }

// get returns a buffer with room for n bytes.
func (b *bufferPool) get(n int) *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		if cap(*v) < n {
			*v = make([]byte, 0, n)
		}
		return v
	}
	buf := make([]byte, 0, max(n, 4<<10))
	return &buf
}

func (b *bufferPool) put(buf *[]byte) {
	if cap(*buf) > maxScratch {
		return
	}
	b.p.Put(buf)
}

// decompress returns the bytes of a zstd frame.
func decompress(frame []byte) ([]byte, error) {
	dec, err := decoder()
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	out, err := dec.DecodeAll(frame, nil)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}
