package lifecycle

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

var fuzzTarget = review.Target{
	CatalogID: "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c", ResourceID: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
	ReviewDefinitionID: "11111111-2222-4333-8444-555555555555", ReviewInstanceID: "99999999-8888-4777-8666-555555555555",
}

// FuzzReviewRecordEnd reads a review record as stored (any bytes), and
// brings it up to date with an ended session: an undecodable record is an
// error and never overwritten, a decodable one ends as its session did,
// and doing it again changes nothing.
func FuzzReviewRecordEnd(f *testing.F) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	full, _ := json.Marshal(ledger.Review{
		ReviewInstanceID: fuzzTarget.ReviewInstanceID, ResourceID: fuzzTarget.ResourceID, Status: ledger.ReviewUploading,
		Files: []ledger.ReviewFile{{Key: "standing/badges/a.csv", VersionID: "v1", Bytes: 10, Rows: 2, Status: "pending"}},
	})
	for _, seed := range []string{string(full), `{}`, `null`, `[]`, `{"files":null}`, `{"files":[{"key":"standing/badges/a.csv","etag":"e"}]}`,
		`{"status":"complete","closedAt":"9999-12-31T23:59:59Z"}`, `{"status":"late","files":[]}`, `{"windowEnds":"2026-13-40T99:00:00Z"}`, "\xff\xfe{"} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, complete bool) {
		ctx := context.Background()
		store := blob.NewMem()
		led := ledger.New(store, "state/")
		led.Now = func() time.Time { return now }
		key := led.ReviewKey(fuzzTarget.ReviewInstanceID, fuzzTarget.ResourceID)
		store.Set(key, data)
		rec := &ledger.Session{Target: fuzzTarget, SessionID: "s1", State: ledger.Expired, ExpiredAt: now, WindowEnds: now, ReviewRecord: true,
			Files: []ledger.File{{Name: "a.csv", Key: "standing/badges/a.csv", VersionID: "v1", ETag: "e"}}}
		want := ledger.ReviewExpired
		if complete {
			rec.State, rec.ClosedAt, rec.CloseReason, want = ledger.Complete, now, review.ReasonManifestComplete, ledger.ReviewComplete
		}
		var direct ledger.Review
		decodes := json.Unmarshal(data, &direct) == nil
		s := &Sessions{Ledger: led, Now: func() time.Time { return now }}
		err := s.endReview(ctx, rec)
		if !decodes {
			if err == nil {
				t.Fatal("an undecodable review record was accepted")
			}
			if obj, _ := store.Get(ctx, key); string(obj.Data) != string(data) {
				t.Fatal("an undecodable review record was overwritten")
			}
			return
		}
		if err != nil {
			if _, merr := json.Marshal(&direct); merr == nil {
				t.Fatalf("update of a decodable review record: %v", err)
			}
			return
		}
		rv, err := led.Review(ctx, fuzzTarget.ReviewInstanceID, fuzzTarget.ResourceID)
		if err != nil {
			t.Fatalf("the review record does not read back: %v", err)
		}
		if direct.Status == ledger.ReviewLate && !holdsAny(rec, direct.Files) {
			// A late record whose files never went in keeps its reason.
			want = ledger.ReviewLate
		}
		if rv.Status != want {
			t.Fatalf("status %q after the session ended %s", rv.Status, rec.State)
		}
		if ApplyEnd(rv, rec) {
			t.Fatal("applying the same end twice changed the record")
		}
	})
}
