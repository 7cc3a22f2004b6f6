package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
)

// fakeSnapshot is a Snapshot of fixed bytes.
type fakeSnapshot struct {
	data   []byte
	head   uint64
	closed *atomic.Int32
}

func (f fakeSnapshot) Head() uint64 { return f.head }
func (f fakeSnapshot) Size() int64  { return int64(len(f.data)) }
func (f fakeSnapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := io.Copy(w, bytes.NewReader(f.data))
	return n, err
}
func (f fakeSnapshot) Close() error { f.closed.Add(1); return nil }

// backupClient serves svc on a loopback port and returns a client of it.
func backupClient(t *testing.T, svc *api.BackupService) receiptdv1.BackupServiceClient {
	t.Helper()
	srv := grpc.NewServer()
	receiptdv1.RegisterBackupServiceServer(srv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return receiptdv1.NewBackupServiceClient(conn)
}

// TestBackupStream: the header announces the head and size, the data
// messages carry the snapshot's bytes in order (none above 256 KiB), the
// trailer their SHA-256; the snapshot is closed.
func TestBackupStream(t *testing.T) {
	data := make([]byte, 700<<10+13)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var closed atomic.Int32
	svc, err := api.NewBackupService(func() (api.Snapshot, error) {
		return fakeSnapshot{data: data, head: 4242, closed: &closed}, nil
	}, api.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := backupClient(t, svc).Backup(t.Context(), &receiptdv1.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		header  *receiptdv1.BackupHeader
		trailer *receiptdv1.BackupTrailer
		got     []byte
		chunks  int
	)
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case m.GetHeader() != nil:
			if header != nil || chunks > 0 || trailer != nil {
				t.Fatal("a header that is not the first message")
			}
			header = m.GetHeader()
		case m.GetTrailer() != nil:
			if trailer != nil {
				t.Fatal("two trailers")
			}
			trailer = m.GetTrailer()
		default:
			if header == nil || trailer != nil {
				t.Fatal("data outside header and trailer")
			}
			if len(m.GetData()) == 0 || len(m.GetData()) > 256<<10 {
				t.Fatalf("a data message of %d bytes", len(m.GetData()))
			}
			got = append(got, m.GetData()...)
			chunks++
		}
	}
	if header.GetFormat() != api.BackupFormat || header.GetHeadPosition() != 4242 || header.GetSizeBytes() != uint64(len(data)) || header.GetTakenAt() == nil {
		t.Errorf("header %v", header)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("received %d bytes that differ from the %d of the snapshot", len(got), len(data))
	}
	if sum := sha256.Sum256(data); !bytes.Equal(trailer.GetSha256(), sum[:]) {
		t.Errorf("trailer sha256 %x, want %x", trailer.GetSha256(), sum)
	}
	if chunks != 3 {
		t.Errorf("%d data messages for %d bytes, want 3", chunks, len(data))
	}
	if closed.Load() == 0 {
		t.Error("the snapshot was not closed")
	}
}

// TestBackupRefusals: a server whose log is not the embedded store answers
// FAILED_PRECONDITION; a snapshot that cannot begin is INTERNAL, logged,
// its text not sent.
func TestBackupRefusals(t *testing.T) {
	recv := func(svc *api.BackupService) error {
		stream, err := backupClient(t, svc).Backup(context.Background(), &receiptdv1.BackupRequest{})
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err != nil {
				return err
			}
		}
	}
	none, err := api.NewBackupService(nil, api.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if st := status.Convert(recv(none)); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "embedded store") {
		t.Errorf("backup of a log that is not the embedded store: %v", st)
	}
	var logged syncBuffer
	failing, err := api.NewBackupService(func() (api.Snapshot, error) {
		return nil, errors.New("bolt: snapshot /var/lib/secret/events.db: closed")
	}, api.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	if err != nil {
		t.Fatal(err)
	}
	st := status.Convert(recv(failing))
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "secret") {
		t.Errorf("a snapshot that fails: %v", st)
	}
	if !strings.Contains(logged.String(), "secret/events.db") {
		t.Errorf("the internal error was not logged: %q", logged.String())
	}
}
