package standing

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

func ver(id string, pos int64, status review.Status) Version {
	return Version{VersionID: id, ETag: "e" + id, Position: pos, Status: status}
}

func ids(r *Record) string {
	var s string
	for _, v := range r.Versions {
		s += v.VersionID
	}
	return s
}

func TestRecordOrdersByPositionWhateverTheArrival(t *testing.T) {
	var r Record
	for _, v := range []Version{ver("c", 3, review.Rejected), ver("a", 1, review.Ready), ver("b", 2, review.Ready), ver("a", 1, review.Ready)} {
		r.add(v)
	}
	if got := ids(&r); got != "abc" {
		t.Fatalf("order %q, want abc", got)
	}
	newest, i := r.newest()
	if newest.VersionID != "c" || r.fallback(i).VersionID != "b" {
		t.Errorf("newest %v fallback %v", newest, r.fallback(i))
	}
	if r.fallback(0) != nil {
		t.Error("the oldest has a fallback")
	}
}

func TestRecordOrderWithoutPositions(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var r Record
	r.add(Version{VersionID: "late", LastModified: t0.Add(time.Second)})
	r.add(Version{VersionID: "seq2", LastModified: t0, Sequencer: "0055AED6DCD90281E6"})
	r.add(Version{VersionID: "seq1", LastModified: t0, Sequencer: "0055AED6DCD90281E5"})
	if got := ids(&r); got != "seq1seq2late" {
		t.Errorf("order %q", got)
	}
}

func TestRecordPruningKeepsTheNewestReady(t *testing.T) {
	var r Record
	r.add(ver("ready", 1, review.Ready))
	for i := range maxVersions + 5 {
		r.add(ver(fmt.Sprintf("bad%02d", i), int64(i+2), review.Rejected))
	}
	if len(r.Versions) != maxVersions {
		t.Fatalf("%d versions kept, want %d", len(r.Versions), maxVersions)
	}
	if r.Versions[0].VersionID != "ready" || r.Versions[1].VersionID != "bad06" {
		t.Errorf("kept %s, %s first; want ready, then the newest rejections", r.Versions[0].VersionID, r.Versions[1].VersionID)
	}
	_, i := r.newest()
	if fb := r.fallback(i); fb == nil || fb.VersionID != "ready" {
		t.Errorf("fallback %v", fb)
	}
}

func TestRecordUnversionedIdentityIsTheETag(t *testing.T) {
	var r Record
	if !r.add(Version{ETag: "x"}) || r.add(Version{ETag: "x"}) || !r.add(Version{ETag: "y"}) {
		t.Error("ETag identity")
	}
}

// FuzzRecordMergeIsOrderIndependent checks that any arrival order of the
// same versions, repeats included, gives the same record, so that
// concurrent drops agree whatever the interleaving.
func FuzzRecordMergeIsOrderIndependent(f *testing.F) {
	f.Add(uint64(1), uint8(5))
	f.Add(uint64(42), uint8(40))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		rng := rand.New(rand.NewPCG(seed, seed>>1))
		var vs []Version
		for i := range int(n%50) + 1 {
			st := review.Rejected
			if rng.IntN(3) == 0 {
				st = review.Ready
			}
			vs = append(vs, ver(fmt.Sprint(i), int64(i+1), st))
		}
		build := func(order []int) string {
			var r Record
			for _, i := range order {
				r.add(vs[i])
			}
			b, _ := json.Marshal(r)
			return string(b)
		}
		a := build(rng.Perm(len(vs)))
		perm := rng.Perm(len(vs))
		perm = append(perm, perm[:len(perm)/2]...) // repeated events
		// Past maxVersions, pruning depends on what had arrived when it
		// ran; up to it, the records must be identical.
		if b := build(perm); a != b && len(vs) <= maxVersions {
			t.Fatalf("records differ:\n%s\n%s", a, b)
		}
	})
}

func TestRecordKey(t *testing.T) {
	st := New(Config{Ledger: ledger.New(nil, "state/")})
	if got := st.RecordKey("standing/badges/a.csv"); got != "state/standing/badges/a.csv.json" {
		t.Errorf("record key %q", got)
	}
	long := "standing/badges/" + strings.Repeat("x", 1000) + ".csv"
	a, b := st.RecordKey(long), st.RecordKey(long+"x")
	if !strings.HasPrefix(a, "state/standing/long-keys/") || len(a) > maxKey || a == b {
		t.Errorf("long keys %q, %q", a, b)
	}
	// A route called long-keys cannot collide with the hashed records.
	if got := st.RecordKey("standing/long-keys/a.csv"); !strings.HasPrefix(got, "state/standing/long-keys/") || strings.HasSuffix(got, "a.csv.json") {
		t.Errorf("record key %q", got)
	}
}
