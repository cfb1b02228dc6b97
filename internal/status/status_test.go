package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/status"
	"github.com/byodrop/byodrop/internal/testenv"
)

func sample(t *testing.T, name string) []byte {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "events", "data", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fakeQueue answers GetQueueAttributes as SQS does, and keeps the request.
type fakeQueue struct {
	in    *sqs.GetQueueAttributesInput
	attrs map[string]string
}

func (f *fakeQueue) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	f.in = in
	return &sqs.GetQueueAttributesOutput{Attributes: f.attrs}, nil
}

// world is a ledger made by the real ingest and finalize handlers on
// versitygw: review A closed by its manifest with a rejected file beside
// it, review B open within its quiet period, review C expired in Graph and
// recorded so by the finalizer.
type world struct {
	*harness.World
	a, b, c       review.Target
	badKey        string
	uploadB       time.Time
	sessionOf     map[string]string // review instance -> Graph session id
	reportsWanted int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{World: harness.New(t, harness.Options{}), sessionOf: map[string]string{}}
	ctx := context.Background()
	w.a = harness.Target()
	w.b, w.c = w.a, w.a
	w.b.ReviewInstanceID = "77777777-6666-4555-8444-333333333333"
	w.c.ReviewInstanceID = "55555555-4444-4333-8222-111111111111"
	valid := sample(t, "badge-access.csv")
	ingest := func(key string, body []byte) {
		t.Helper()
		if err := w.IngestRecords(ctx, w.Put(key, body)); err != nil {
			t.Fatalf("ingest %s: %v", key, err)
		}
		w.reportsWanted++
	}
	w.badKey = harness.KeyFor(w.a, "bad-principal.csv")
	ingest(harness.KeyFor(w.a, "badge-access.csv"), valid)
	ingest(w.badKey, sample(t, "bad-principal.csv"))
	ingest(harness.KeyFor(w.a, "manifest.json"), []byte(`{"files": ["badge-access.csv"]}`))
	ingest(harness.KeyFor(w.c, "badge-access.csv"), valid)
	w.uploadB = time.Now()
	ingest(harness.KeyFor(w.b, "badge-access.csv"), valid)
	for _, s := range w.Emu.Sessions() {
		w.sessionOf[s.ReviewInstanceID] = s.ID
	}
	w.Emu.ExpireSession(w.sessionOf[w.c.ReviewInstanceID])
	if _, err := w.Closer("status-test").Run(ctx); err != nil {
		t.Fatalf("finalizer run: %v", err)
	}
	return w
}

func TestStatusOfALedgerMadeByTheFunctions(t *testing.T) {
	w := newWorld(t)
	q := &fakeQueue{attrs: map[string]string{"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "1"}}
	policy := review.Policy{QuietPeriod: 10 * time.Minute, CloseMargin: 15 * time.Minute}
	st, err := status.Read(context.Background(), status.Clients{S3: w.S3Client, SQS: q}, status.Options{
		Bucket: w.State, Prefix: "state", QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/failures", Policy: policy,
	})
	if err != nil {
		t.Fatal(err)
	}

	// Review B is the one open session; the quiet period closes it.
	if len(st.Open) != 1 {
		t.Fatalf("open sessions %+v, want review B only", st.Open)
	}
	o := st.Open[0]
	rec, err := w.Ledger.Session(context.Background(), w.b)
	if err != nil {
		t.Fatal(err)
	}
	if o.Key != w.b.SessionKey() || o.SessionID != w.sessionOf[w.b.ReviewInstanceID] || o.State != ledger.Open || o.Files != 1 {
		t.Errorf("open session %+v, want review B's, open, one file", o)
	}
	if !o.WindowEnds.Equal(rec.WindowEnds) || o.CloseReason != review.ReasonQuietPeriod || !o.CloseAt.Equal(rec.LastUploadAt.Add(policy.QuietPeriod)) {
		t.Errorf("closes %s at %v (window %v), want quiet-period at %v", o.CloseReason, o.CloseAt, o.WindowEnds, rec.LastUploadAt.Add(policy.QuietPeriod))
	}

	// A closed by its manifest, C expired, latest first.
	ended := map[string]status.EndedSession{}
	for _, e := range st.Ended {
		ended[e.Target.ReviewInstanceID] = e
	}
	if len(st.Ended) != 2 {
		t.Fatalf("ended sessions %+v, want A and C", st.Ended)
	}
	if a := ended[w.a.ReviewInstanceID]; a.State != ledger.Complete || a.CloseReason != review.ReasonManifestComplete || a.Files != 1 || a.SessionID != w.sessionOf[w.a.ReviewInstanceID] {
		t.Errorf("review A %+v, want complete by manifest-complete with one file", a)
	}
	if c := ended[w.c.ReviewInstanceID]; c.State != ledger.Expired || c.EndedAt.IsZero() || c.Note == "" {
		t.Errorf("review C %+v, want expired, when and why", c)
	}
	if st.Ended[0].EndedAt.Before(st.Ended[1].EndedAt) {
		t.Errorf("ended sessions not latest first: %v then %v", st.Ended[0].EndedAt, st.Ended[1].EndedAt)
	}

	// Every report is counted; the rejected file comes with its first error.
	total := 0
	for _, n := range st.Files {
		total += n
	}
	if total != w.reportsWanted || st.Files[review.Rejected] != 1 || st.Files[review.Expired] != 1 {
		t.Errorf("files %v, want %d reports with 1 rejected and 1 expired", st.Files, w.reportsWanted)
	}
	if len(st.Problems) != 1 {
		t.Fatalf("problems %+v, want the rejected file", st.Problems)
	}
	p := st.Problems[0]
	if p.Key != w.badKey || p.Status != review.Rejected || p.Error.Line != 4 || p.Error.Column != "PrincipalId" || !strings.Contains(p.Error.Message, "bob") {
		t.Errorf("problem %+v, want %s rejected at line 4, PrincipalId, naming bob", p, w.badKey)
	}

	// The failure queue's depth, asked with exactly the two attributes.
	if st.FailureQueue == nil || st.FailureQueue.Waiting != 3 || st.FailureQueue.InFlight != 1 {
		t.Errorf("failure queue %+v, want 3 waiting and 1 in flight", st.FailureQueue)
	}
	if q.in == nil || len(q.in.AttributeNames) != 2 {
		t.Errorf("queue request %+v", q.in)
	}

	// The text names each of them; the JSON carries the same.
	var text bytes.Buffer
	if err := status.WriteText(&text, st); err != nil {
		t.Fatal(err)
	}
	t.Logf("byodrop status:\n%s", text.String())
	for _, want := range []string{
		"Open sessions: 1", w.b.SessionKey(), "closes: quiet-period at",
		"Sessions ended in the last 7 days: 2", "complete (manifest-complete)", "expired",
		"1 rejected", w.badKey, `line 4, column PrincipalId: not a GUID: "bob"`,
		"Failure queue: 3 waiting, 1 being received", "make replay",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q", want)
		}
	}
	var js bytes.Buffer
	if err := status.WriteJSON(&js, st); err != nil {
		t.Fatal(err)
	}
	var back status.Status
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Open) != 1 || len(back.Ended) != 2 || len(back.Problems) != 1 || back.FailureQueue.Waiting != 3 || back.Prefix != "state/" {
		t.Errorf("JSON round trip lost something: %s", js.String())
	}
}

// Only what happened in the window is shown; open sessions always are.
func TestStatusWindowLeavesOutOlderSessionsAndFiles(t *testing.T) {
	w := newWorld(t)
	later := time.Now().Add(10 * 24 * time.Hour)
	st, err := status.Read(context.Background(), status.Clients{S3: w.S3Client}, status.Options{
		Bucket: w.State, Days: 7, Now: func() time.Time { return later },
		Policy: review.Policy{QuietPeriod: 10 * time.Minute, CloseMargin: 15 * time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ended) != 0 || len(st.Files) != 0 || len(st.Problems) != 0 {
		t.Errorf("10 days later, a 7-day window shows ended %v, files %v, problems %v", st.Ended, st.Files, st.Problems)
	}
	// B is still open in the ledger, and now past its window with a file:
	// due at once, by the deadline rule.
	if len(st.Open) != 1 || st.Open[0].CloseReason != review.ReasonDeadline || !st.Open[0].CloseAt.Equal(later.UTC()) {
		t.Errorf("open %+v, want review B due now at the deadline", st.Open)
	}
	if st.FailureQueue != nil {
		t.Errorf("failure queue %+v read without a URL", st.FailureQueue)
	}
}

func TestStatusNeedsABucket(t *testing.T) {
	_, err := status.Read(context.Background(), status.Clients{}, status.Options{})
	if err == nil || !strings.Contains(err.Error(), "-bucket") {
		t.Errorf("error %v, want one naming -bucket", err)
	}
}

// What the status says of an open session, for each state the close rules
// know.
func TestOpenSessionSaysWhatClosesItWhen(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	policy := review.Policy{QuietPeriod: 10 * time.Minute, CloseMargin: 15 * time.Minute}
	file := ledger.File{Name: "a.csv", Key: "incoming/x/a.csv", ETag: "e", UploadedAt: now.Add(-2 * time.Minute)}
	for _, tc := range []struct {
		name    string
		s       ledger.Session
		reason  string
		closeAt time.Time
		nextHas string
	}{
		{"no file: never closed", ledger.Session{State: ledger.Open, SessionID: "s", WindowEnds: now.Add(time.Hour)}, "", time.Time{}, "never closed empty"},
		{"no file past the window: expires", ledger.Session{State: ledger.Open, SessionID: "s", WindowEnds: now.Add(-time.Minute)}, "", time.Time{}, "expired"},
		{"file, no manifest: quiet period", ledger.Session{State: ledger.Open, SessionID: "s", WindowEnds: now.Add(time.Hour), LastUploadAt: file.UploadedAt, Files: []ledger.File{file}},
			review.ReasonQuietPeriod, file.UploadedAt.Add(10 * time.Minute), "quiet period"},
		{"file near the window's end: deadline first", ledger.Session{State: ledger.Open, SessionID: "s", WindowEnds: now.Add(20 * time.Minute), LastUploadAt: file.UploadedAt, Files: []ledger.File{file}},
			review.ReasonDeadline, now.Add(5 * time.Minute), "deadline"},
		{"manifest incomplete: the deadline", ledger.Session{State: ledger.Open, SessionID: "s", WindowEnds: now.Add(time.Hour), LastUploadAt: file.UploadedAt, Files: []ledger.File{file},
			Manifest: &ledger.Manifest{Files: []string{"a.csv", "b.csv"}}}, review.ReasonDeadline, now.Add(45 * time.Minute), "1 file(s) of the manifest"},
		{"manifest complete: due now", ledger.Session{State: ledger.Open, SessionID: "s", WindowEnds: now.Add(time.Hour), LastUploadAt: file.UploadedAt, Files: []ledger.File{file},
			Manifest: &ledger.Manifest{Files: []string{"a.csv"}}}, review.ReasonManifestComplete, now, "due now"},
		{"pending without a Graph session", ledger.Session{State: ledger.Pending}, "", time.Time{}, "no Graph session yet"},
		{"create outcome unknown: by hand", ledger.Session{State: ledger.CreateUnknown, Note: "the create's answer was lost"}, "", time.Time{}, "resolve it by hand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := status.DescribeOpen("c/r/i", &tc.s, policy, now)
			if got.CloseReason != tc.reason || !got.CloseAt.Equal(tc.closeAt) || !strings.Contains(got.Next, tc.nextHas) {
				t.Errorf("got %s at %v (%q), want %s at %v (%q)", got.CloseReason, got.CloseAt, got.Next, tc.reason, tc.closeAt, tc.nextHas)
			}
			if tc.s.Manifest != nil && !slices.Equal(got.Manifest, tc.s.Manifest.Files) {
				t.Errorf("manifest %v", got.Manifest)
			}
		})
	}
}
