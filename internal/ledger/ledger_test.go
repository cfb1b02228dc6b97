package ledger_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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

func TestEndedSessionRecordIsTaggedForTheLifecycleRule(t *testing.T) {
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, false)
	l := ledger.New(&blob.S3{Client: srv.Client(), Bucket: bucket}, "state/")
	target := review.Target{CatalogID: "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c", ResourceID: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
		ReviewDefinitionID: "11111111-2222-4333-8444-555555555555", ReviewInstanceID: "99999999-8888-4777-8666-555555555555"}
	key := "state/sessions/" + target.SessionKey() + ".json"
	tags := func() map[string]string {
		out, err := srv.Client().GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, tg := range out.TagSet {
			m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		return m
	}
	for _, st := range []ledger.State{ledger.Pending, ledger.Open} {
		if _, err := l.UpdateSession(ctx, target, func(s *ledger.Session, _ bool) error { s.State = st; return nil }); err != nil {
			t.Fatal(err)
		}
		if got := tags(); len(got) != 0 {
			t.Fatalf("a %s record is tagged %v; want no tag", st, got)
		}
	}
	if _, err := l.UpdateSession(ctx, target, func(s *ledger.Session, _ bool) error { s.State = ledger.Complete; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := tags(); got["byodrop-state"] != "ended" {
		t.Fatalf("a complete record is tagged %v; want byodrop-state=ended", got)
	}
}
