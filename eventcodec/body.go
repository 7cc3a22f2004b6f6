package eventcodec

import (
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

// compress returns raw as one zstd frame.
func compress(raw []byte) ([]byte, error) {
	enc, err := encoder()
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return enc.EncodeAll(raw, make([]byte, 0, len(raw)/2+64)), nil
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
