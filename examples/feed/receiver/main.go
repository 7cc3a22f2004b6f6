// Command receiver is a receiptd feed destination: it checks each request's
// Standard Webhooks signature (FEED_SECRET, whsec_…) and prints the event.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(os.Getenv("FEED_SECRET"), "whsec_"))
	http.Handle("POST /hooks", receiver(key, os.Stdout))
	fmt.Println(http.ListenAndServe("127.0.0.1:9000", nil))
}

// receiver answers 204 to a request signed with key (and prints its body),
// 401 to any other. A retry repeats an event's webhook-id: dedupe by it.
func receiver(key []byte, out io.Writer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		fresh := time.Since(time.Unix(sec, 0)).Abs() < 5*time.Minute
		signed := slices.ContainsFunc(strings.Fields(r.Header.Get("webhook-signature")), func(s string) bool { return hmac.Equal([]byte(s), []byte(want)) })
		if !fresh || !signed {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(out, "%s %s\n", id, body)
		w.WriteHeader(http.StatusNoContent)
	}
}
