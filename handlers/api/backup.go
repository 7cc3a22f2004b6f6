package api

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// Snapshot is a consistent copy of the log, as of one read transaction of
// the embedded store (*bolt.Snapshot in receiptd).
type Snapshot interface {
	// Head is the commit position of the last event it holds.
	Head() uint64
	// Size is the number of bytes WriteTo writes.
	Size() int64
	// WriteTo writes the store's file as of the snapshot.
	WriteTo(w io.Writer) (int64, error)
	// Close ends the snapshot.
	Close() error
}

// Snapshotter begins a Snapshot of the log. receiptd wires the embedded
// store's Snapshot method; a log that cannot be copied this way (a
// KurrentDB cluster) has none.
type Snapshotter func() (Snapshot, error)

// ErrBackupUnsupported: the server's log cannot be backed up through
// receiptd (it is not the embedded store); back it up with its own tools.
var ErrBackupUnsupported = errors.New("api: the log cannot be backed up through receiptd")

// BackupFormat is the format of the data a Backup stream carries (its
// header's format): a bbolt file of the embedded event store.
const BackupFormat = "bolt"

// backupChunkBytes is the most data bytes one Backup message carries, far
// below any gRPC message limit.
const backupChunkBytes = 256 << 10

// BackupService implements receiptdv1.BackupServiceServer over a
// Snapshotter. Its RPC is administrative (the access rules give it the
// admin scope) and runs for as long as the copy takes.
type BackupService struct {
	receiptdv1.UnsafeBackupServiceServer

	snapshot Snapshotter
	options
}

var _ receiptdv1.BackupServiceServer = (*BackupService)(nil)

// NewBackupService returns the BackupService copying the log through
// snapshot. With a nil snapshot (a log that is not the embedded store)
// Backup answers FAILED_PRECONDITION.
func NewBackupService(snapshot Snapshotter, opts ...Option) (*BackupService, error) {
	o, err := newOptions("backup service", opts)
	if err != nil {
		return nil, err
	}
	return &BackupService{snapshot: snapshot, options: o}, nil
}

// Backup implements receiptdv1.BackupServiceServer: the header, the file's
// bytes, the trailer with their SHA-256.
func (s *BackupService) Backup(_ *receiptdv1.BackupRequest, stream grpc.ServerStreamingServer[receiptdv1.BackupChunk]) error {
	const op, subject = "Backup", "the log"
	ctx := stream.Context()
	if s.snapshot == nil {
		return toStatus(ctx, s.log, op, subject, ErrBackupUnsupported)
	}
	start := time.Now()
	sn, err := s.snapshot()
	if err != nil {
		return toStatus(ctx, s.log, op, subject, fmt.Errorf("begin a snapshot: %w", err))
	}
	defer sn.Close()
	head, size := sn.Head(), sn.Size()
	err = stream.Send(&receiptdv1.BackupChunk{Part: &receiptdv1.BackupChunk_Header{Header: &receiptdv1.BackupHeader{
		Format: BackupFormat, HeadPosition: head, SizeBytes: uint64(size), TakenAt: timestamppb.New(start),
	}}})
	if err != nil {
		return err // the client is gone; its stream already has a status
	}
	w := &chunkWriter{stream: stream, sum: sha256.New(), buf: make([]byte, 0, backupChunkBytes)}
	n, err := sn.WriteTo(w)
	if err == nil {
		err = w.flush()
	}
	if w.sendErr != nil {
		return w.sendErr
	}
	if err != nil {
		return toStatus(ctx, s.log, op, subject, err)
	}
	if n != size {
		return toStatus(ctx, s.log, op, subject, fmt.Errorf("the snapshot wrote %d bytes, announced %d", n, size))
	}
	// The snapshot ends here: the trailer need not hold the store.
	if err := sn.Close(); err != nil {
		return toStatus(ctx, s.log, op, subject, err)
	}
	if err := stream.Send(&receiptdv1.BackupChunk{Part: &receiptdv1.BackupChunk_Trailer{Trailer: &receiptdv1.BackupTrailer{Sha256: w.sum.Sum(nil)}}}); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "backup", "head", head, "bytes", n, "took", time.Since(start).String())
	return nil
}

// chunkWriter sends what it is written in data messages of
// backupChunkBytes, hashing it.
type chunkWriter struct {
	stream  grpc.ServerStreamingServer[receiptdv1.BackupChunk]
	sum     hash.Hash
	buf     []byte
	sendErr error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush sends the buffered bytes, if any.
func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.sum.Write(w.buf)
	if err := w.stream.Send(&receiptdv1.BackupChunk{Part: &receiptdv1.BackupChunk_Data{Data: w.buf}}); err != nil {
		w.sendErr = err
		return err
	}
	// A sent message may still be read (by a stats handler): never reuse
	// its bytes.
	w.buf = make([]byte, 0, backupChunkBytes)
	return nil
}
