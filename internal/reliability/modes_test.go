package reliability_test

import (
	"context"
	"sort"
	"testing"

	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// TestRefusalModes runs the cases whose outcome hangs on how Graph refuses
// something its documentation leaves open (a duplicate create, a change to
// a session that is no longer active) under every refusal mode of the
// emulator: status codes and wordings the client must not depend on.
func TestRefusalModes(t *testing.T) {
	modes := graphemu.RefusalModes()
	names := make([]string, 0, len(modes))
	for n := range modes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		mode := modes[name]
		newModeRig := func(t *testing.T) *rig {
			return newRig(t, rigOptions{Options: harness.Options{Emulator: graphemu.Options{Refusals: mode}}})
		}
		t.Run(name+"/lost create answer is recovered", func(t *testing.T) {
			t.Parallel()
			r := newModeRig(t)
			r.Emu.Inject(graphemu.Fault{Op: "create", DropResponse: true})
			if err := r.ingest(context.Background(), r.Put(harness.Key("a.csv"), csvRows(3, 1))); err != nil {
				t.Fatalf("ingest: %v (creates %s)", err, r.statuses("create"))
			}
			if s := r.Emu.Sessions(); len(s) != 1 || len(s[0].Files) != 1 {
				t.Fatalf("sessions %+v; want one with the file", s)
			}
		})
		t.Run(name+"/lost close answer is recorded complete", func(t *testing.T) {
			t.Parallel()
			r := newModeRig(t)
			ctx := context.Background()
			key := harness.Key("a.csv")
			if err := r.ingest(ctx, r.Put(key, csvRows(3, 1))); err != nil {
				t.Fatal(err)
			}
			r.Emu.Inject(graphemu.Fault{Op: "patch", DropResponse: true, Times: 3})
			for range 3 {
				if _, err := r.finalizeLater(ctx); err == nil {
					break
				}
			}
			rec, err := r.Ledger.Session(ctx, harness.Target())
			if err != nil || rec.State != ledger.Complete {
				t.Fatalf("ledger %+v, %v; want complete (patches %s)", rec, err, r.statuses("patch"))
			}
			if rep := r.report(key); rep.Status != review.Uploaded {
				t.Fatalf("report %q, want uploaded", rep.Status)
			}
		})
		t.Run(name+"/upload into a session closed elsewhere is late", func(t *testing.T) {
			t.Parallel()
			r := newModeRig(t)
			ctx := context.Background()
			if err := r.ingest(ctx, r.Put(harness.Key("a.csv"), csvRows(3, 1))); err != nil {
				t.Fatal(err)
			}
			rec, _ := r.Ledger.Session(ctx, harness.Target())
			if _, err := r.graph.MarkDone(ctx, harness.Target(), rec.SessionID); err != nil {
				t.Fatal(err)
			}
			key := harness.Key("b.csv")
			if err := r.ingest(ctx, r.Put(key, csvRows(3, 2))); err != nil {
				t.Fatalf("a late file is final, not an error: %v", err)
			}
			if rep := r.report(key); rep.Status != review.Late {
				t.Fatalf("report %+v, want late", rep)
			}
		})
		t.Run(name+"/upload into a session expired in Graph is late, the session expired", func(t *testing.T) {
			t.Parallel()
			r := newModeRig(t)
			ctx := context.Background()
			keyA := harness.Key("a.csv")
			if err := r.ingest(ctx, r.Put(keyA, csvRows(3, 1))); err != nil {
				t.Fatal(err)
			}
			rec, _ := r.Ledger.Session(ctx, harness.Target())
			r.Emu.ExpireSession(rec.SessionID)
			key := harness.Key("b.csv")
			if err := r.ingest(ctx, r.Put(key, csvRows(3, 2))); err != nil {
				t.Fatalf("ingest: %v", err)
			}
			if rep := r.report(key); rep.Status != review.Late {
				t.Fatalf("report %+v, want late", rep)
			}
			if rep := r.report(keyA); rep.Status != review.Expired {
				t.Fatalf("a.csv report %q, want expired", rep.Status)
			}
		})
	}
}
