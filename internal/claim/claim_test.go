package claim_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/lease"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

const session = "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d/99999999-8888-4777-8666-555555555555"

var obj = claim.Ref{Key: "incoming/x/a.csv", VersionID: "v1", Session: session}

// onS3 returns claims on a fresh bucket of the shared versitygw.
func onS3(t *testing.T) (*claim.Claims, blob.Store) {
	srv := testenv.SharedS3(t)
	store := &blob.S3{Client: srv.Client(), Bucket: srv.NewBucket(t, false)}
	return claim.New(ledger.New(store, "state/")), store
}

func TestClaimLifecycle(t *testing.T) {
	ctx := context.Background()
	c, _ := onS3(t)
	first, err := c.Take(ctx, obj, "a")
	if err != nil || !first.Acquired || first.Resumed {
		t.Fatalf("first claim = %+v, %v; want acquired, not resumed", first, err)
	}
	busy, err := c.Take(ctx, obj, "b")
	if err != nil || busy.Acquired || busy.Claim.Owner != "a" {
		t.Fatalf("a live claim must not be taken: %+v, %v", busy, err)
	}
	if err := c.Release(ctx, obj, "a"); err != nil {
		t.Fatal(err)
	}
	again, err := c.Take(ctx, obj, "b")
	if err != nil || !again.Acquired || !again.Resumed || again.Claim.Attempts != 2 {
		t.Fatalf("a released claim is taken over and marked resumed: %+v, %v", again, err)
	}
	if err := c.Finish(ctx, obj, "a", review.Uploaded, "s"); !claim.IsLost(err) {
		t.Fatalf("a former owner must not finish a claim taken over by another: %v", err)
	}
	if err := c.Finish(ctx, obj, "b", review.Uploaded, "s"); err != nil {
		t.Fatal(err)
	}
	done, err := c.Take(ctx, obj, "b")
	if err != nil || done.Acquired || done.Claim.State != claim.Done || done.Claim.Outcome != review.Uploaded {
		t.Fatalf("a done claim stays done, even for its last owner: %+v, %v", done, err)
	}
	other := obj
	other.VersionID = "v2"
	if r, err := c.Take(ctx, other, "c"); err != nil || !r.Acquired {
		t.Fatalf("another version of the key is another claim: %+v, %v", r, err)
	}
}

func TestLapsedClaimIsTakenOver(t *testing.T) {
	ctx := context.Background()
	c, _ := onS3(t)
	c.Now = func() time.Time { return time.Now().Add(-2 * claim.DefaultLease) }
	if _, err := c.Take(ctx, obj, "crashed"); err != nil {
		t.Fatal(err)
	}
	c.Now = time.Now
	r, err := c.Take(ctx, obj, "retry")
	if err != nil || !r.Acquired || !r.Resumed {
		t.Fatalf("the retry of a crashed invocation takes over its lapsed claim: %+v, %v", r, err)
	}
}

func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	ctx := context.Background()
	c, _ := onS3(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r, err := c.Take(ctx, obj, "owner-"+string(rune('a'+i)))
			if err != nil {
				t.Error(err)
			}
			if r.Acquired {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d invocations acquired the claim, want 1", won.Load())
	}
}

// lostCreate stores the first Create and answers it with an error, as a
// lost response does; the caller's retry then meets its own claim.
type lostCreate struct {
	blob.Store
	lost atomic.Bool
}

func (l *lostCreate) Create(ctx context.Context, key string, data []byte) (string, error) {
	etag, err := l.Store.Create(ctx, key, data)
	if err == nil && l.lost.CompareAndSwap(false, true) {
		// What the SDK's retry of a create whose answer was lost meets.
		return "", blob.ErrPrecondition
	}
	return etag, err
}

func TestOwnClaimRecognisedAfterLostCreateAnswer(t *testing.T) {
	ctx := context.Background()
	_, store := onS3(t)
	c := claim.New(ledger.New(&lostCreate{Store: store}, "state/"))
	r, err := c.Take(ctx, obj, "me")
	if err != nil || !r.Acquired || r.Claim.Owner != "me" {
		t.Fatalf("a claim whose create landed but was answered 412 is ours: %+v, %v", r, err)
	}
	if err := c.Finish(ctx, obj, "me", review.Uploaded, "s"); err != nil {
		t.Fatalf("finishing our own claim: %v", err)
	}
}

func TestHoldRenewsAndStopsWhenTakenOver(t *testing.T) {
	ctx := context.Background()
	c, _ := onS3(t)
	c.Lease = 600 * time.Millisecond
	if _, err := c.Take(ctx, obj, "holder"); err != nil {
		t.Fatal(err)
	}
	work, stop := c.Hold(ctx, obj, "holder")
	time.Sleep(3 * c.Lease) // three leases: alive only if renewed
	if work.Err() != nil {
		t.Fatalf("a held claim lapsed: %v", context.Cause(work))
	}
	if r, err := c.Take(ctx, obj, "other"); err != nil || r.Acquired {
		t.Fatalf("a renewed claim was taken over: %+v, %v", r, err)
	}
	stop()
	if cl, err := c.Read(ctx, obj); err != nil || cl.State != claim.Active || cl.Owner != "holder" {
		t.Fatalf("after stop: %+v, %v", cl, err)
	}

	// Taken over behind the holder's back (a clock past its lease): the
	// holder's work is cancelled at its next renewal.
	other := obj
	other.VersionID = "v2"
	if _, err := c.Take(ctx, other, "slow"); err != nil {
		t.Fatal(err)
	}
	work, stop = c.Hold(ctx, other, "slow")
	defer stop()
	thief := claim.New(ledger.New(mustStore(t, c), "state/"))
	thief.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if r, err := thief.Take(ctx, other, "thief"); err != nil || !r.Acquired {
		t.Fatalf("take-over: %+v, %v", r, err)
	}
	select {
	case <-work.Done():
		if !errors.Is(context.Cause(work), lease.ErrLost) {
			t.Fatalf("cause %v, want lease lost", context.Cause(work))
		}
	case <-time.After(5 * c.Lease):
		t.Fatal("the holder kept working on a claim taken over by another")
	}
}

// mustStore digs out the store of c through a claim it can read.
func mustStore(t *testing.T, c *claim.Claims) blob.Store {
	t.Helper()
	return c.Store()
}

func TestInFlightCountsRecentClaimsOfTheSession(t *testing.T) {
	ctx := context.Background()
	c, _ := onS3(t)
	if n, err := c.InFlight(ctx, session); err != nil || n != 0 {
		t.Fatalf("no claims: %d, %v", n, err)
	}
	if _, err := c.Take(ctx, obj, "a"); err != nil {
		t.Fatal(err)
	}
	elsewhere := obj
	elsewhere.Session = "other/session/key"
	if _, err := c.Take(ctx, elsewhere, "a"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.InFlight(ctx, session); err != nil || n != 1 {
		t.Fatalf("one claim of the session: %d, %v", n, err)
	}
	if err := c.Finish(ctx, obj, "a", review.Uploaded, "s"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.InFlight(ctx, session); err != nil || n != 0 {
		t.Fatalf("a finished claim is not in flight: %d, %v", n, err)
	}
	if _, err := c.Take(ctx, claim.Ref{Key: "incoming/x/b.csv", VersionID: "v1", Session: session}, "b"); err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return time.Now().Add(2 * claim.DefaultLease) }
	if n, err := c.InFlight(ctx, session); err != nil || n != 0 {
		t.Fatalf("a claim untouched for longer than a lease is not in flight: %d, %v", n, err)
	}
}
