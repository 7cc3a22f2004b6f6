package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/receiptd/receiptd/eventstore/bolt"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
)

// Offline backs up the store file at path (events.db) of a stopped server
// to the file to. A server holding the file makes it fail with an error
// matching bolt.ErrLocked (after a second): back up through that server
// instead (Receive).
func Offline(path, to string) (Header, error) {
	sn, err := bolt.OpenSnapshot(path, time.Second)
	if err != nil {
		return Header{}, err
	}
	defer sn.Close()
	w, err := Create(to, Header{Head: sn.Head(), Size: uint64(sn.Size()), TakenAt: time.Now().UTC()})
	if err != nil {
		return Header{}, err
	}
	if _, err := sn.WriteTo(w); err != nil {
		w.Abort()
		return Header{}, err
	}
	return w.Finish()
}

// Stream is the client side of BackupService.Backup.
type Stream interface {
	Recv() (*receiptdv1.BackupChunk, error)
}

var _ Stream = receiptdv1.BackupService_BackupClient(nil)

// Receive writes a Backup stream (a header, the data, a trailer with its
// SHA-256) to the file to.
func Receive(stream Stream, to string) (Header, error) {
	first, err := stream.Recv()
	if err != nil {
		return Header{}, err
	}
	h := first.GetHeader()
	if h == nil {
		return Header{}, errors.New("the stream did not start with a header")
	}
	if h.GetFormat() != api.BackupFormat {
		return Header{}, fmt.Errorf("the server sends data of format %q; this receiptd writes %q", h.GetFormat(), api.BackupFormat)
	}
	w, err := Create(to, Header{Head: h.GetHeadPosition(), Size: h.GetSizeBytes(), TakenAt: h.GetTakenAt().AsTime().UTC()})
	if err != nil {
		return Header{}, err
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			w.Abort()
			return Header{}, errors.New("the stream ended without its trailer")
		}
		if err != nil {
			w.Abort()
			return Header{}, err
		}
		if t := m.GetTrailer(); t != nil {
			if !bytes.Equal(t.GetSha256(), w.DataSum()) {
				w.Abort()
				return Header{}, fmt.Errorf("the data received does not match the server's SHA-256 %x", t.GetSha256())
			}
			return w.Finish()
		}
		if _, err := w.Write(m.GetData()); err != nil {
			w.Abort()
			return Header{}, err
		}
	}
}
