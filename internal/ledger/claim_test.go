package ledger_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

func newLedger(t *testing.T) *ledger.Ledger {
	srv := testenv.SharedS3(t)
	return ledger.New(&blob.S3{Client: srv.Client(), Bucket: srv.NewBucket(t, false)}, "state/")
}

var obj = ledger.ObjectRef{Key: "incoming/x/a.csv", VersionID: "v1"}

func TestClaimLifecycle(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	later := time.Now().Add(time.Minute)

	first, err := l.TakeClaim(ctx, obj, "a", later)
	if err != nil || !first.Acquired || first.Resumed {
		t.Fatalf("first claim = %+v, %v; want acquired, not resumed", first, err)
	}
	busy, err := l.TakeClaim(ctx, obj, "b", later)
	if err != nil || busy.Acquired || busy.Claim.Owner != "a" {
		t.Fatalf("a live claim must not be taken: %+v, %v", busy, err)
	}
	if err := l.ReleaseClaim(ctx, obj, "a"); err != nil {
		t.Fatal(err)
	}
	again, err := l.TakeClaim(ctx, obj, "b", later)
	if err != nil || !again.Acquired || !again.Resumed || again.Claim.Attempts != 2 {
		t.Fatalf("a released claim is taken over and marked resumed: %+v, %v", again, err)
	}
	if err := l.FinishClaim(ctx, obj, "a", review.Uploaded, "s"); err == nil {
		t.Fatal("a former owner must not finish a claim taken over by another")
	}
	if err := l.FinishClaim(ctx, obj, "b", review.Uploaded, "s"); err != nil {
		t.Fatal(err)
	}
	done, err := l.TakeClaim(ctx, obj, "c", later)
	if err != nil || done.Acquired || done.Claim.State != ledger.Done || done.Claim.Outcome != review.Uploaded {
		t.Fatalf("a done claim stays done: %+v, %v", done, err)
	}
	other := obj
	other.VersionID = "v2"
	if c, err := l.TakeClaim(ctx, other, "c", later); err != nil || !c.Acquired {
		t.Fatalf("another version of the key is another claim: %+v, %v", c, err)
	}
}

func TestLapsedClaimIsTakenOver(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	if _, err := l.TakeClaim(ctx, obj, "crashed", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := l.TakeClaim(ctx, obj, "retry", time.Now().Add(time.Minute))
	if err != nil || !c.Acquired || !c.Resumed {
		t.Fatalf("the retry of a crashed invocation takes over its lapsed claim: %+v, %v", c, err)
	}
}

func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c, err := l.TakeClaim(ctx, obj, time.Now().String(), time.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if c.Acquired {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d invocations acquired the claim, want 1", won.Load())
	}
}

func TestConcurrentSessionUpdatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	target := review.Target{CatalogID: "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c", ResourceID: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
		ReviewDefinitionID: "11111111-2222-4333-8444-555555555555", ReviewInstanceID: "99999999-8888-4777-8666-555555555555"}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := l.UpdateSession(ctx, target, func(s *ledger.Session, _ bool) error {
				s.AddFile(ledger.File{Name: "f.csv", Key: "k" + string(rune('a'+i)), VersionID: "v", UploadedAt: time.Now()})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s, err := l.Session(ctx, target)
	if err != nil || len(s.Files) != 10 || s.Target != target {
		t.Fatalf("record = %+v, %v; want all 10 files recorded", s, err)
	}
	if _, err := l.Session(ctx, review.Target{CatalogID: "x"}); !blob.IsNotFound(err) {
		t.Fatalf("a missing record is ErrNotFound, got %v", err)
	}
}

func TestReportKeyFitsS3(t *testing.T) {
	l := ledger.New(nil, "state/")
	for _, key := range []string{"incoming/a/b.csv", "incoming/" + strings.Repeat("x", 1005-len("incoming/"))} {
		if got := l.ReportKey(key); got != "state/reports/"+key+".json" {
			t.Errorf("a %d-byte key's report goes to %q", len(key), got)
		}
	}
	for _, n := range []int{1006, 1024} {
		key := "incoming/" + strings.Repeat("x", n-len("incoming/"))
		got := l.ReportKey(key)
		if len(got) > 1024 || !strings.HasPrefix(got, "state/reports/long-keys/") {
			t.Errorf("a %d-byte key's report goes to %q (%d bytes)", n, got, len(got))
		}
		if other := l.ReportKey(key[:len(key)-1] + "y"); other == got {
			t.Errorf("two long keys share a report")
		}
	}
}
