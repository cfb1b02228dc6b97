package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/review"
)

var fuzzTarget = review.Target{
	CatalogID: "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c", ResourceID: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
	ReviewDefinitionID: "11111111-2222-4333-8444-555555555555", ReviewInstanceID: "99999999-8888-4777-8666-555555555555",
}

// FuzzDecodeSession stores arbitrary bytes as a session record and drives
// the ledger through it: reading, the close decision, and an update that
// adds a file. Nothing may panic; a document that decodes must survive the
// update (re-encode and decode again); one that does not decode must give
// an error naming the document, never a zero record taken for real.
func FuzzDecodeSession(f *testing.F) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	full, _ := json.Marshal(Session{
		Schema: 1, Target: fuzzTarget, Profile: "v1.0", SessionID: "23f27c15-72f9-45fe-9e9c-e3d8f75bdc44", State: Open,
		Creating: &Lease{Owner: "a", Until: now}, Closing: &Lease{Owner: "b", Until: now.Add(time.Minute)},
		CreatedAt: now, WindowEnds: now.Add(2 * time.Hour), LastUploadAt: now,
		Files:    []File{{Name: "a.csv", Key: "incoming/x/a.csv", VersionID: "v1", Size: 10, Rows: 2, UploadedAt: now}},
		Manifest: &Manifest{Key: "incoming/x/manifest.json", Files: []string{"a.csv", "b.csv"}, At: now},
	})
	for _, seed := range []string{
		string(full), `{}`, `null`, `[]`, `""`, `{"files":null}`, `{"state":"complete"}`,
		`{"windowEnds":"0001-01-01T00:00:00Z","files":[{"name":"","key":""}]}`,
		`{"manifest":{"files":["a.csv",null]}}`, `{"creating":{"until":"9999-12-31T23:59:59Z"}}`,
		`{"createdAt":"2026-13-40T99:00:00Z"}`, `{"files":[{"size":-1,"rows":1e400}]}`, "\xff\xfe{",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		store := blob.NewMem()
		l := New(store, "state/")
		l.Now = func() time.Time { return now }
		key := l.sessionKey(fuzzTarget.SessionKey())
		store.Set(key, data)

		var direct Session
		decodes := json.Unmarshal(data, &direct) == nil

		s, err := l.Session(ctx, fuzzTarget)
		if !decodes {
			if err == nil || review.KindOf(err) != review.Internal {
				t.Fatalf("undecodable record read as %+v, %v; want an Internal error", s, err)
			}
			if _, err := l.UpdateSession(ctx, fuzzTarget, func(*Session, bool) error { return nil }); err == nil {
				t.Fatal("an undecodable record was overwritten by an update")
			}
			return
		}
		if err != nil {
			t.Fatalf("decodable record refused: %v", err)
		}
		// The methods every caller uses on a record.
		_ = s.Ended()
		facts := s.Facts()
		_ = review.Decide(facts, review.Policy{QuietPeriod: 10 * time.Minute, CloseMargin: 15 * time.Minute}, now)
		for _, fl := range s.Files {
			if !s.HasFile(fl.Key, fl.VersionID) && !s.HasFile(fl.Key, fl.ETag) {
				t.Fatalf("HasFile misses recorded file %+v", fl)
			}
		}
		nf := File{Name: "new.csv", Key: "incoming/new.csv", VersionID: "fuzz-v", UploadedAt: now}
		before, had := len(s.Files), s.HasFile(nf.Key, nf.VersionID)
		if added := s.AddFile(nf); added == had || len(s.Files) != before+map[bool]int{true: 1}[added] {
			t.Fatalf("AddFile (recorded before: %v) added %v: files %d -> %d", had, added, before, len(s.Files))
		}
		if s.AddFile(nf) || !s.HasFile(nf.Key, nf.VersionID) {
			t.Fatal("AddFile recorded the same object version twice, or lost it")
		}

		// An update must write back what it read, plus the change.
		got, err := l.UpdateSession(ctx, fuzzTarget, func(s *Session, exists bool) error {
			if !exists {
				return errors.New("the record vanished")
			}
			s.AddFile(nf)
			return nil
		})
		if err != nil {
			// Only an encoding failure (a time outside what JSON dates
			// can hold) may stop it, and it must say so.
			if _, merr := json.Marshal(&direct); merr == nil {
				t.Fatalf("update of a decodable record: %v", err)
			}
			return
		}
		again, err := l.Session(ctx, fuzzTarget)
		if err != nil {
			t.Fatalf("the updated record does not read back: %v", err)
		}
		if !again.HasFile(nf.Key, nf.VersionID) || len(again.Files) != len(got.Files) {
			t.Fatalf("the update was lost: %d files, want %d with %s", len(again.Files), len(got.Files), nf.Key)
		}
	})
}
