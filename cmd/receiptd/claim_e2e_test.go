package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

// Issue 12 item 3: Reusely signs only (object_id, timestamp), not the body.
// A captured Authorization value carried a second body — another box, a
// payout of 9999.00 — once the process that had seen the pair restarted,
// or on another ingest node. These tests run the real binary: the claim on
// the pair is in the log, so neither a restart nor a second node lets a
// second body through.

func reuselyOnlyConfig(store string) string {
	return "store: " + store + `
sources:
  - {name: reusely, kind: reusely, secrets: ["env:E2E_REUSELY_SECRET"]}
`
}

// reuselyOffer is the example offer.created with the given pair, box and
// payout.
func reuselyOffer(t *testing.T, objectID, ts, box, payout string) []byte {
	t.Helper()
	offer := template(t, "reusely/offer.created.json")
	offer["object_id"] = json.Number(objectID)
	offer["timestamp"] = ts
	data := sub(offer, "data")
	data["box_id"] = box
	data["payout_amount"] = payout
	return mustJSON(offer)
}

// postReusely sends body with the Authorization value of (objectID, ts)
// and returns the status and the Receiptd-Position.
func postReusely(t *testing.T, s *server, body []byte, objectID, ts string) (int, uint64) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url("/webhooks/reusely"), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(reusely.SignatureHeader, reusely.Sign([]byte(e2eReuselyKey), objectID, ts))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST reusely: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pos, _ := strconv.ParseUint(resp.Header.Get("Receiptd-Position"), 10, 64)
	return resp.StatusCode, pos
}

// checkOffers checks that the reusely offer list holds exactly the box
// wanted, with its genuine payout, once the views reach minPos.
func checkOffers(t *testing.T, s *server, box, payout string, minPos uint64) {
	t.Helper()
	var e restEntity
	if code := s.getJSON(t, fmt.Sprintf("/v1/entities/offer/%s?source=reusely&min_position=%d", box, minPos), &e); code != http.StatusOK || e.Amount != payout {
		t.Fatalf("offer %s: %d %+v, want amount %s", box, code, e, payout)
	}
	var page struct {
		Entities []restEntity `json:"entities"`
	}
	if code := s.getJSON(t, "/v1/entities/offer?source=reusely", &page); code != http.StatusOK || len(page.Entities) != 1 || page.Entities[0].EntityID != box {
		t.Fatalf("offers: %d %+v, want %s alone", code, page.Entities, box)
	}
}

func TestReuselyClaimSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	cfg := reuselyOnlyConfig("{kind: embedded}")
	env := "E2E_REUSELY_SECRET=" + e2eReuselyKey
	s := startServer(t, dataDir, cfg, env)

	const objectID = "93092"
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	genuine := reuselyOffer(t, objectID, ts, "STAG03U2O", "960.00")
	forged := reuselyOffer(t, objectID, ts, "FORGED01", "9999.00")
	forgedSameBox := reuselyOffer(t, objectID, ts, "STAG03U2O", "9999.00")

	code, pos := postReusely(t, s, genuine, objectID, ts)
	if code != http.StatusOK || pos == 0 {
		t.Fatalf("genuine delivery: %d at %d", code, pos)
	}
	if code, _ := postReusely(t, s, forged, objectID, ts); code != http.StatusUnauthorized {
		t.Fatalf("forged body for another box before the restart: %d, want 401", code)
	}

	// Killed and restarted: nothing of the pair is left in memory.
	s.kill()
	s = startServer(t, dataDir, cfg, env)
	if code, _ := postReusely(t, s, forged, objectID, ts); code != http.StatusUnauthorized {
		t.Fatalf("forged body for another box after the restart: %d, want 401", code)
	}
	if code, _ := postReusely(t, s, forgedSameBox, objectID, ts); code != http.StatusConflict {
		t.Fatalf("forged body for the same box after the restart: %d, want 409", code)
	}
	if code, again := postReusely(t, s, genuine, objectID, ts); code != http.StatusOK || again != pos {
		t.Fatalf("genuine retry after the restart: %d at %d, want 200 at %d", code, again, pos)
	}
	checkOffers(t, s, "STAG03U2O", "960", pos)
	if code := s.getJSON(t, "/v1/entities/offer/FORGED01?source=reusely", nil); code != http.StatusNotFound {
		t.Fatalf("forged offer: %d, want 404", code)
	}
	// The forged bodies were refused by the claim before any decision; the
	// genuine retry filled the restarted server's decision cache with the
	// offer's stream.
	m := scrape(t, s, "receiptd_webhook_decision_cache_streams", "receiptd_webhook_decision_cache_bytes")
	if m["receiptd_webhook_decision_cache_streams"] != 1 || m["receiptd_webhook_decision_cache_bytes"] <= 0 {
		t.Fatalf("decision cache metrics %v, want one stream held", m)
	}
}

func TestReuselyClaimSharedByTwoKurrentDBServers(t *testing.T) {
	d := startKurrentDB(t)
	cfg := reuselyOnlyConfig(fmt.Sprintf("{kind: kurrentdb, url: %q}", d.URL()))
	env := "E2E_REUSELY_SECRET=" + e2eReuselyKey
	a := startServer(t, t.TempDir(), cfg, env)
	b := startServer(t, t.TempDir(), cfg, env)

	const objectID = "93187"
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	genuine := reuselyOffer(t, objectID, ts, "STAG03U2O", "960.00")
	code, pos := postReusely(t, a, genuine, objectID, ts)
	if code != http.StatusOK || pos == 0 {
		t.Fatalf("genuine delivery to A: %d at %d", code, pos)
	}
	// The same signature at the other node, which has never seen it.
	if code, _ := postReusely(t, b, reuselyOffer(t, objectID, ts, "FORGED02", "9999.00"), objectID, ts); code != http.StatusUnauthorized {
		t.Fatalf("forged body for another box at B: %d, want 401", code)
	}
	if code, _ := postReusely(t, b, reuselyOffer(t, objectID, ts, "STAG03U2O", "9999.00"), objectID, ts); code != http.StatusConflict {
		t.Fatalf("forged body for the same box at B: %d, want 409", code)
	}
	if code, again := postReusely(t, b, genuine, objectID, ts); code != http.StatusOK || again != pos {
		t.Fatalf("genuine retry at B: %d at %d, want 200 at %d", code, again, pos)
	}
	for _, s := range []*server{a, b} {
		checkOffers(t, s, "STAG03U2O", "960", pos)
	}
	claims := d.StreamEvents("claim-reusely." + objectID + ":" + ts)
	if len(claims) != 1 || len(d.StreamEvents("offer-reusely.STAG03U2O")) != 1 || len(d.StreamEvents("offer-reusely.FORGED02")) != 0 {
		t.Fatalf("the server holds %d claims and %d+%d offer events; want 1, 1+0", len(claims),
			len(d.StreamEvents("offer-reusely.STAG03U2O")), len(d.StreamEvents("offer-reusely.FORGED02")))
	}
	if !strings.Contains(string(claims[0].Data), `"stream":"offer-reusely.STAG03U2O"`) {
		t.Fatalf("claim %s", claims[0].Data)
	}
}
