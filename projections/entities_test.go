package projections_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
	bolt "go.etcd.io/bbolt"
)

func at(minute int) *time.Time {
	t := time.Date(2025, 11, 21, 15, minute, 0, 0, time.UTC)
	return &t
}

func amount(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

func (l *log) entity(f aggregate.EntityEventRecorded) eventstore.RecordedEvent {
	if f.Source == "" {
		f.Source = "reusely"
	}
	if f.Kind == "" {
		f.Kind = aggregate.CategoryOffer
	}
	return l.add(aggregate.TypeEntityEventRecorded, f)
}

func mustEntity(t *testing.T, db *projections.DB, source, kind, id string) projections.Entity {
	t.Helper()
	v, err := db.Entity(context.Background(), source, kind, id)
	if err != nil {
		t.Fatalf("Entity(%s/%s/%s): %v", source, kind, id, err)
	}
	return v
}

// permutations calls f with every permutation of 0..n-1.
func permutations(n int, f func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			f(slices.Clone(p))
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}

// TestEntityStatusIndependentOfOrder applies every permutation of one set
// of events (each permutation to its own entity, in batches that cut
// across entities) and checks that every entity ends with the same status,
// amount and user.
func TestEntityStatusIndependentOfOrder(t *testing.T) {
	events := []aggregate.EntityEventRecorded{
		{EventType: "offer.created", Status: "Active Leads", StatusAt: at(1), BodySHA256: "a1"},
		{EventType: "offer.status.updated", Status: "In-Transit", StatusAt: at(3), BodySHA256: "b"},
		// The same StatusAt as In-Transit: the greater body hash wins.
		{EventType: "offer.status.updated", Status: "Delivered", StatusAt: at(3), BodySHA256: "c"},
		// No StatusAt: below every status with one, wherever it arrives.
		{EventType: "offer.status.updated", Status: "Cancelled", BodySHA256: "z"},
		// No status; the latest provider time of the amounts and users.
		{EventType: "offer.updated", OccurredAt: at(5), Amount: amount("960.00"), Currency: "USD", UserID: "u7", BodySHA256: "e"},
		{EventType: "offer.status.updated", Status: "Expired", StatusAt: at(2), OccurredAt: at(0), Amount: amount("10"), Currency: "GBP", UserID: "u6", BodySHA256: "d"},
	}
	var l log
	n := 0
	permutations(len(events), func(p []int) {
		for _, i := range p {
			f := events[i]
			f.EntityID = fmt.Sprintf("o%03d", n)
			l.entity(f)
		}
		n++
	})
	db := openDB(t)
	for i := 0; i < len(l.events); i += 7 {
		if err := db.Apply(l.events[i:min(i+7, len(l.events))]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("o%03d", i)
		v := mustEntity(t, db, "reusely", aggregate.CategoryOffer, id)
		if v.Status != "Delivered" || v.StatusAt == nil || !v.StatusAt.Equal(*at(3)) {
			t.Fatalf("%s: status %q at %v, want Delivered at %v", id, v.Status, v.StatusAt, at(3))
		}
		if v.Amount == nil || v.Amount.String() != "960" || v.Currency != "USD" || v.UserID != "u7" {
			t.Fatalf("%s: amount %v %s, user %s; want 960 USD, u7", id, v.Amount, v.Currency, v.UserID)
		}
		if v.EventCount != int64(len(events)) || len(v.Timeline) != len(events) {
			t.Fatalf("%s: %d events, timeline of %d", id, v.EventCount, len(v.Timeline))
		}
		if first := uint64(i*len(events) + 1); v.FirstPosition != first || v.LastPosition != first+5 || !v.FirstSeen.Equal(recordedAt(first)) || !v.LastSeen.Equal(recordedAt(first+5)) {
			t.Fatalf("%s: seen %d..%d (%s..%s)", id, v.FirstPosition, v.LastPosition, v.FirstSeen, v.LastSeen)
		}
	}
}

// TestEntityStatusRule walks the rule through arrival sequences.
func TestEntityStatusRule(t *testing.T) {
	type ev struct {
		status string
		at     *time.Time
		hash   string
	}
	for _, tc := range []struct {
		name   string
		events []ev
		want   string
		wantAt *time.Time
	}{
		{"newer StatusAt wins", []ev{{"A", at(1), "x"}, {"B", at(2), "y"}}, "B", at(2)},
		{"an older StatusAt arriving later never overrides", []ev{{"B", at(2), "x"}, {"A", at(1), "y"}}, "B", at(2)},
		{"without StatusAt, the later in the log wins", []ev{{"A", nil, "z"}, {"B", nil, "a"}}, "B", nil},
		{"a StatusAt outranks none", []ev{{"A", nil, "z"}, {"B", at(1), "a"}, {"C", nil, "z2"}}, "B", at(1)},
		{"a tie goes to the greater body hash", []ev{{"A", at(1), "b"}, {"B", at(1), "a"}}, "A", at(1)},
		{"a tie goes to the greater body hash, either order", []ev{{"B", at(1), "a"}, {"A", at(1), "b"}}, "A", at(1)},
		{"an event with no status changes nothing", []ev{{"A", at(1), "a"}, {"", at(9), "b"}}, "A", at(1)},
		{"no status ever", []ev{{"", at(1), "a"}}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			var l log
			for _, e := range tc.events {
				l.entity(aggregate.EntityEventRecorded{EntityID: "o1", Status: e.status, StatusAt: e.at, BodySHA256: e.hash})
			}
			if err := db.Apply(l.events); err != nil {
				t.Fatal(err)
			}
			v := mustEntity(t, db, "reusely", aggregate.CategoryOffer, "o1")
			if v.Status != tc.want || (v.StatusAt == nil) != (tc.wantAt == nil) || (v.StatusAt != nil && !v.StatusAt.Equal(*tc.wantAt)) {
				t.Errorf("status %q at %v, want %q at %v", v.Status, v.StatusAt, tc.want, tc.wantAt)
			}
		})
	}
}

func TestEntityTimelineBounded(t *testing.T) {
	db := openDB(t)
	var l log
	const n = projections.MaxTimeline + 50
	for i := range n {
		l.entity(aggregate.EntityEventRecorded{
			Source: "reap", Kind: aggregate.CategoryAccount, EntityID: "acc", EventType: "account_status_change",
			Status: "PENDING", StatusAt: at(i % 60), BodySHA256: fmt.Sprint("h", i),
			Attributes: map[string]string{"event_id": fmt.Sprint(i)},
		})
		if i%10 == 0 { // another entity in between, which must keep its own timeline
			l.entity(aggregate.EntityEventRecorded{Source: "reap", Kind: aggregate.CategoryAccount, EntityID: "acc2", EventType: "account_status_change", BodySHA256: fmt.Sprint("o", i)})
		}
	}
	// In several transactions, as the runner applies them.
	for i := 0; i < len(l.events); i += 64 {
		if err := db.Apply(l.events[i:min(i+64, len(l.events))]); err != nil {
			t.Fatal(err)
		}
	}
	v := mustEntity(t, db, "reap", aggregate.CategoryAccount, "acc")
	if v.EventCount != n || len(v.Timeline) != projections.MaxTimeline {
		t.Fatalf("event count %d, timeline %d; want %d and %d", v.EventCount, len(v.Timeline), n, projections.MaxTimeline)
	}
	// The latest MaxTimeline events, oldest first.
	for i, e := range v.Timeline {
		want := fmt.Sprint(n - projections.MaxTimeline + i)
		if e.Attributes["event_id"] != want || e.EventType != "account_status_change" || e.Status != "PENDING" || e.RecordedAt.IsZero() {
			t.Fatalf("timeline[%d] = %+v, want event %s", i, e, want)
		}
		if i > 0 && e.Position <= v.Timeline[i-1].Position {
			t.Fatalf("timeline not in log order at %d", i)
		}
	}
	if last := v.Timeline[len(v.Timeline)-1]; last.Position != v.LastPosition || !last.RecordedAt.Equal(v.LastSeen) {
		t.Errorf("last entry %+v, entity last seen %d at %s", last, v.LastPosition, v.LastSeen)
	}
	if v.FirstPosition != 1 || !v.FirstSeen.Equal(recordedAt(1)) {
		t.Errorf("first seen %d at %s: the timeline's bound must not move it", v.FirstPosition, v.FirstSeen)
	}
	if v2 := mustEntity(t, db, "reap", aggregate.CategoryAccount, "acc2"); v2.EventCount != n/10 || len(v2.Timeline) != n/10 {
		t.Errorf("acc2: %d events, timeline %d", v2.EventCount, len(v2.Timeline))
	}
}

func TestEntitiesPagination(t *testing.T) {
	db := openDB(t)
	var l log
	const n = 23
	for i := range n {
		l.entity(aggregate.EntityEventRecorded{EntityID: fmt.Sprintf("o%02d", i), BodySHA256: fmt.Sprint(i)})
	}
	l.entity(aggregate.EntityEventRecorded{EntityID: "o00", Status: "Completed", StatusAt: at(1), BodySHA256: "later"}) // keeps its place
	l.entity(aggregate.EntityEventRecorded{Kind: aggregate.CategoryOrder, EntityID: "x1", BodySHA256: "x1"})
	l.entity(aggregate.EntityEventRecorded{Source: "reusely2", EntityID: "o99", BodySHA256: "y"})
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []string
	token := ""
	pages := 0
	for {
		views, next, err := db.Entities(ctx, "reusely", aggregate.CategoryOffer, 5, token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range views {
			if v.Source != "reusely" || v.Kind != aggregate.CategoryOffer || v.Timeline != nil {
				t.Fatalf("listed %+v", v)
			}
			got = append(got, v.ID)
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(got) != n || pages != 5 {
		t.Fatalf("got %d entities in %d pages: %v", len(got), pages, got)
	}
	for i, id := range got { // newest first by first seen
		if want := fmt.Sprintf("o%02d", n-1-i); id != want {
			t.Fatalf("item %d = %s, want %s", i, id, want)
		}
	}

	if _, _, err := db.Entities(ctx, "reusely", aggregate.CategoryOffer, 5, "garbage!"); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("bad token: %v", err)
	}
	if _, _, err := db.Entities(ctx, "reusely", aggregate.CategoryOffer, 0, ""); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("page size 0: %v", err)
	}
	_, next, _ := db.Entities(ctx, "reusely", aggregate.CategoryOffer, 5, "")
	if _, _, err := db.Entities(ctx, "reusely", aggregate.CategoryOrder, 5, next); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("another kind's token: %v", err)
	}
	if _, _, err := db.Entities(ctx, "reusely2", aggregate.CategoryOffer, 5, next); !errors.Is(err, projections.ErrBadPageToken) {
		t.Errorf("another source's token: %v", err)
	}
	if views, next, err := db.Entities(ctx, "reusely", aggregate.CategoryOrder, 5, ""); err != nil || len(views) != 1 || views[0].ID != "x1" || next != "" {
		t.Errorf("orders = %v, %q, %v", views, next, err)
	}
	for _, kind := range []string{"redemption", "off", "offer\x00"} {
		if views, next, err := db.Entities(ctx, "reusely", kind, 5, ""); err != nil || len(views) != 0 || next != "" {
			t.Errorf("kind %q with no entities = %v, %q, %v; want an empty list", kind, views, next, err)
		}
	}

	if v := mustEntity(t, db, "reusely", aggregate.CategoryOffer, "o00"); v.Status != "Completed" || v.EventCount != 2 || v.FirstPosition != 1 || v.LastPosition != n+1 {
		t.Errorf("o00 = %+v", v)
	}
	for _, k := range [][3]string{
		{"reusely", aggregate.CategoryOffer, "nope"},
		{"reusely", aggregate.CategoryOrder, "o00"},
		{"reusely2", aggregate.CategoryOffer, "o00"},
		{"reusely", "", "o00"},
	} {
		if _, err := db.Entity(ctx, k[0], k[1], k[2]); !errors.Is(err, projections.ErrNotFound) {
			t.Errorf("Entity(%q): %v, want ErrNotFound", k, err)
		}
	}
}

// TestEntityUsersHaveBalances: a user seen in any event has a balance view,
// whether the event is the user's own (kind user) or names its user.
func TestEntityUsersHaveBalances(t *testing.T) {
	db := openDB(t)
	var l log
	l.entity(aggregate.EntityEventRecorded{Source: "reward", Kind: aggregate.CategoryUser, EntityID: "u5", EventType: "trigger_event.created", Attributes: map[string]string{"trigger_id": "t1", "value": "3"}, BodySHA256: "a"})
	l.entity(aggregate.EntityEventRecorded{Source: "reusely", EntityID: "o1", UserID: "u8", BodySHA256: "b"})
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	wantPoints(t, balanceOf(t, db, "reward", "u5"), "0", "0", "0")
	wantPoints(t, balanceOf(t, db, "reusely", "u8"), "0", "0", "0")
	v := mustEntity(t, db, "reward", aggregate.CategoryUser, "u5")
	if len(v.Timeline) != 1 || v.Timeline[0].EventType != "trigger_event.created" || v.Timeline[0].Attributes["trigger_id"] != "t1" {
		t.Errorf("user entity = %+v", v)
	}
}

func TestBadEntityEventIsSkipped(t *testing.T) {
	db := openDB(t)
	var l log
	l.add(aggregate.TypeEntityEventRecorded, aggregate.EntityEventRecorded{Source: "reusely", EntityID: "o1", BodySHA256: "a"}) // no kind
	l.add(aggregate.TypeEntityEventRecorded, aggregate.EntityEventRecorded{Source: "reusely", Kind: "off\x00er", EntityID: "o1", BodySHA256: "b"})
	l.add(aggregate.TypeEntityEventRecorded, `not an object`)
	l.entity(aggregate.EntityEventRecorded{EntityID: "o2", BodySHA256: "c"})
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	if db.Checkpoint().Commit != l.pos {
		t.Fatalf("checkpoint = %v", db.Checkpoint())
	}
	mustEntity(t, db, "reusely", aggregate.CategoryOffer, "o2")
	if views, _, err := db.Entities(context.Background(), "reusely", aggregate.CategoryOffer, 10, ""); err != nil || len(views) != 1 {
		t.Errorf("entities = %v, %v", views, err)
	}
}

// TestOpenDiscardsOtherSchema: read models written by a version with
// another schema are discarded, checkpoint included, so the runner
// rebuilds them from the log.
func TestOpenDiscardsOtherSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "views.db")
	old, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = old.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema"), []byte("1")); err != nil {
			return err
		}
		cp := make([]byte, 16)
		cp[7], cp[15] = 9, 9
		if err := meta.Put([]byte("checkpoint"), cp); err != nil {
			return err
		}
		users, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		if err := users.Put([]byte("reewild\x00u1"), []byte(`{"totals":{"points":"5"}}`)); err != nil {
			return err
		}
		retired, err := tx.CreateBucket([]byte("retired_bucket"))
		if err != nil {
			return err
		}
		for i := range 2000 { // ~8 MiB: discarded by replacing the file, not by freeing its pages
			if err := retired.Put(fmt.Appendf(nil, "k%05d", i), make([]byte, 4096)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	db, err := projections.Open(path)
	if st, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if st.Size() > 1<<20 {
		t.Errorf("the discarded file is still %d bytes, not replaced", st.Size())
	}
	if m, _ := filepath.Glob(path + ".scratch-discard-*"); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := db.DiscardedSchema(); got != "1" {
		t.Errorf("DiscardedSchema = %q, want 1", got)
	}
	if !db.Checkpoint().IsStart() {
		t.Errorf("checkpoint = %v, want the start of the log", db.Checkpoint())
	}
	if _, err := db.Balance(context.Background(), "reewild", "u1"); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("a balance of the discarded schema survived: %v", err)
	}
	var l log
	l.award("r1", "u1", "1", "a", nil)
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = projections.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.DiscardedSchema(); got != "" {
		t.Errorf("DiscardedSchema on reopen = %q, want none", got)
	}
	if b := mustBalance(t, db, "u1"); b.DerivedPoints.String() != "1" || db.Checkpoint().Commit != 1 {
		t.Errorf("after reopen: %+v at %v", b, db.Checkpoint())
	}
	db.Close()
	check, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	if err := check.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("retired_bucket")) != nil {
			return errors.New("a bucket of the old schema survived")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
