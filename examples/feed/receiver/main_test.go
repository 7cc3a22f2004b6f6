package main

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook/signer"
)

// TestReceiver: the example receiver accepts what receiptd's pusher signs
// (signer.Standard) and refuses a changed body, another key and an old
// timestamp.
func TestReceiver(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("example feed key"))
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	var out bytes.Buffer
	h := receiver(key, &out)
	body := []byte(`{"id":"evt_1","kind":"receipt.completed.v1"}`)
	send := func(signWith string, ts time.Time, sent []byte) int {
		r := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(sent))
		r.Header.Set("webhook-id", "evt_1")
		r.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		r.Header.Set("webhook-signature", signer.Standard([]byte(signWith), "evt_1", ts, body))
		w := httptest.NewRecorder()
		h(w, r)
		return w.Code
	}
	now := time.Now()
	if c := send(secret, now, body); c != http.StatusNoContent || !strings.Contains(out.String(), "evt_1") {
		t.Fatalf("signed: %d %q", c, out.String())
	}
	for name, c := range map[string]int{
		"changed body": send(secret, now, []byte(`{"id":"evt_1","kind":"receipt.failed.v1"}`)),
		"other key":    send("whsec_"+base64.StdEncoding.EncodeToString([]byte("another key")), now, body),
		"old":          send(secret, now.Add(-time.Hour), body),
	} {
		if c != http.StatusUnauthorized {
			t.Errorf("%s: %d", name, c)
		}
	}
}
