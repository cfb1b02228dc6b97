package reliability_test

// The lifecycle suite: each test is a row of a state table in
// docs/lifecycles.md, driven through the real ingest handler and finalizer
// against versitygw and the Graph emulator, with the crash or the timing
// that made that row go wrong.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ingest"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// s3Killer carries one invocation's S3 requests until kill, and fails every
// one after it: what S3 sees of a process that died.
type s3Killer struct {
	next   http.RoundTripper
	killed atomic.Bool
	// failPut, when set, fails the PUTs it matches (body read into it).
	failPut func(req *http.Request, body []byte) bool
}

var errKilled = errors.New("dial tcp: connect: connection refused (the process is gone)")

func (k *s3Killer) RoundTrip(req *http.Request) (*http.Response, error) {
	if k.killed.Load() {
		return nil, errKilled
	}
	if k.failPut != nil && req.Method == http.MethodPut && req.Body != nil {
		data, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		if k.failPut(req, data) {
			return nil, errKilled
		}
	}
	return k.next.RoundTrip(req)
}

// handlerWith returns a copy of the rig's ingest handler whose S3 requests
// go through k.
func handlerWith(t *testing.T, r *rig, k *s3Killer) *ingest.Handler {
	t.Helper()
	k.next = http.DefaultTransport.(*http.Transport).Clone()
	o := r.S3Client.Options()
	o.HTTPClient = &http.Client{Transport: k}
	h := *r.handler
	h.S3 = newS3(o)
	return &h
}

// lambdaRetries invokes h with recs up to 3 times, as Lambda's asynchronous
// retries do, and returns the errors of the attempts made.
func lambdaRetries(ctx context.Context, h *ingest.Handler, recs ...eventRecord) []error {
	var errs []error
	for range 3 {
		ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := h.Handle(ictx, harness.Payload(recs...))
		cancel()
		errs = append(errs, err)
		if err == nil {
			break
		}
	}
	return errs
}

func TestSessionPendingIndexSurvivesACreateSlowerThanItsLease(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	// The create answers after 3 s: longer than the time the finalizer,
	// whose clock runs 2 minutes ahead, lets a creating lease live.
	r.Emu.Inject(graphemu.Fault{Op: "create", Delay: 3 * time.Second})
	key := harness.Key("a.csv")
	rec := r.Put(key, csvRows(3, 1))
	done := make(chan error, 1)
	go func() { done <- r.ingest(ctx, rec) }()
	time.Sleep(time.Second)
	if _, err := r.closer("finalizer", at(2*time.Minute)).Run(ctx); err != nil {
		t.Fatalf("finalizer during the create: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	open, err := r.Ledger.OpenSessions(ctx)
	if err != nil || len(open) != 1 {
		t.Fatalf("open index after a slow create = %v, %v; want the session (it exists in Graph)", open, err)
	}
	if _, err := r.finalizeLater(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Emu.Sessions(); len(s) != 1 || !s[0].IsUploadDone {
		t.Fatalf("sessions = %+v; want the one session closed", s)
	}
}

func TestObjectActiveClaimOfACrashedInvocationIsRetriedNotConsumed(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	setClaimLease(r.handler, 2*time.Second)
	key := harness.Key("a.csv")
	rec := r.Put(key, csvRows(5, 1))
	// The first invocation hangs in its upload, and its process dies
	// there: no release, no report, no further request.
	r.Emu.Inject(graphemu.Fault{Op: "upload", Delay: 30 * time.Second})
	k := &s3Killer{}
	first := handlerWith(t, r, k)
	setClaimLease(first, 2*time.Second)
	fctx, kill := context.WithTimeout(ctx, 10*time.Minute)
	crashed := make(chan struct{})
	go func() {
		defer close(crashed)
		_ = first.Handle(fctx, harness.Payload(rec))
	}()
	waitFor(t, "the first upload to reach Graph", func() bool { return r.Emu.PendingFaults() == 0 })
	k.killed.Store(true)
	kill()
	<-crashed
	r.Emu.ClearFaults()

	// Lambda's retries: none may end as a success unless the file is in.
	errs := lambdaRetries(ctx, r.handler, rec)
	rep := r.report(key)
	if errs[len(errs)-1] == nil && rep.Status != review.Uploaded {
		t.Fatalf("a retry ended as success with report %+v (attempts: %v): the event was consumed", rep, errs)
	}
	if rep.Status != review.Uploaded || len(r.files()) != 1 {
		t.Fatalf("report %+v, %d files in Graph; want uploaded once (attempts: %v)", rep, len(r.files()), errs)
	}
}

func TestObjectRecordedButUnfinishedIsFinishedNotResent(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	setClaimLease(r.handler, time.Second)
	key := harness.Key("a.csv")
	rec := r.Put(key, csvRows(5, 1))
	// The upload and the ledger commit succeed; the claim's final write
	// does not (the process died right after the commit).
	k := &s3Killer{failPut: func(req *http.Request, body []byte) bool {
		return strings.Contains(req.URL.Path, "/claims/") && bytes.Contains(body, []byte(`"state": "done"`))
	}}
	first := handlerWith(t, r, k)
	setClaimLease(first, time.Second)
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = first.Handle(fctx, harness.Payload(rec))
	cancel()
	if len(r.files()) != 1 {
		t.Fatalf("setup: %d files in Graph, want 1", len(r.files()))
	}
	time.Sleep(2500 * time.Millisecond) // the crashed claim lapses
	errs := lambdaRetries(ctx, r.handler, rec)
	if n := len(r.files()); n != 1 {
		t.Fatalf("%d copies of the file in Graph after the takeover (attempts: %v), want 1", n, errs)
	}
	if rep := r.report(key); rep.Status != review.Uploaded {
		t.Fatalf("report = %+v, want uploaded", rep)
	}
}

func TestSessionGoneFromGraphEndsWithItsReports(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	key := harness.Key("a.csv")
	if err := r.ingest(ctx, r.Put(key, csvRows(3, 1))); err != nil {
		t.Fatal(err)
	}
	rec, err := r.Ledger.Session(ctx, harness.Target())
	if err != nil {
		t.Fatal(err)
	}
	// An admin deletes the session (or Graph purges it).
	if err := r.graph.Delete(ctx, harness.Target(), rec.SessionID); err != nil {
		t.Fatal(err)
	}
	c := r.closer("finalizer", at(r.Settings.QuietPeriod+time.Minute))
	for i := range 2 {
		if _, err := c.Run(ctx); err != nil {
			t.Fatalf("run %d fails on a session Graph no longer has: %v", i+1, err)
		}
	}
	if open, _ := r.Ledger.OpenSessions(ctx); len(open) != 0 {
		t.Fatalf("open index = %v, want empty", open)
	}
	if rep := r.report(key); rep.Status != review.Expired || len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0].Message, "no longer has") {
		t.Fatalf("report = %+v, want expired, saying Graph no longer has the session", rep)
	}
}

func TestSessionExpiredReportsHalfWrittenAreCompletedByTheNextRun(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	keys := []string{harness.Key("a.csv"), harness.Key("b.csv")}
	for i, k := range keys {
		if err := r.ingest(ctx, r.Put(k, csvRows(3, i))); err != nil {
			t.Fatal(err)
		}
	}
	rec, _ := r.Ledger.Session(ctx, harness.Target())
	r.Emu.ExpireSession(rec.SessionID)
	// The first run stops after one report: the write of b's fails.
	k := &s3Killer{failPut: func(req *http.Request, body []byte) bool {
		return strings.Contains(req.URL.Path, "/reports/") && strings.Contains(req.URL.Path, "b.csv")
	}}
	k.next = http.DefaultTransport.(*http.Transport).Clone()
	o := r.S3Client.Options()
	o.HTTPClient = &http.Client{Transport: k}
	c := r.closer("finalizer", time.Now)
	c.Ledger = ledger.New(storeOn(newS3(o), r.State), r.Settings.StatePrefix)
	if _, err := c.Run(ctx); err == nil {
		t.Fatal("a run whose report write failed must say so")
	}
	if rep := r.report(keys[0]); rep.Status != review.Expired {
		t.Fatalf("setup: a's report = %+v, want expired", rep)
	}
	if _, err := r.closer("finalizer", time.Now).Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		if rep := r.report(key); rep.Status != review.Expired {
			t.Errorf("%s: report %q after the next run, want expired", key, rep.Status)
		}
	}
	if open, _ := r.Ledger.OpenSessions(ctx); len(open) != 0 {
		t.Fatalf("open index = %v, want empty", open)
	}
}

func TestSessionDuplicateCreateRefusedWith400IsRecovered(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	// The create lands but its answer is lost; the retry is refused as a
	// duplicate with 400, which the contract allows as well as 409.
	r.Emu.Inject(graphemu.Fault{Op: "create", DropResponse: true})
	r.Emu.Inject(graphemu.Fault{Op: "create", Status: 400, Message: "An upload session already exists for this resource and review instance."})
	key := harness.Key("a.csv")
	if err := r.ingest(ctx, r.Put(key, csvRows(3, 1))); err != nil {
		t.Fatalf("the first invocation must recover the session: %v", err)
	}
	if s := r.Emu.Sessions(); len(s) != 1 || len(s[0].Files) != 1 {
		t.Fatalf("sessions = %+v, want one with the file", s)
	}
}

func TestSessionLostCreateAnswerOnAProfileThatCannotListIsRecordedUnknown(t *testing.T) {
	routes := `{"badges":{"catalogId":"` + harness.Catalog + `","resourceId":"` + harness.Resource + `","source":"Badge system"}}`
	r := newRig(t, rigOptions{Options: harness.Options{Profile: "beta-2025", Routes: routes}})
	ctx := context.Background()
	r.Emu.Inject(graphemu.Fault{Op: "create", DropResponse: true})
	keyA := "incoming/badges/" + harness.Definition + "/" + harness.Instance + "/a.csv"
	if err := r.ingest(ctx, r.Put(keyA, csvRows(3, 1))); err == nil {
		t.Fatal("a create whose outcome is unknown must fail the invocation")
	}
	rec, err := r.Ledger.Session(ctx, harness.Target())
	if err != nil || rec.State != "create-unknown" {
		t.Fatalf("ledger = %+v, %v; want the create recorded as unknown", rec, err)
	}
	keyB := "incoming/badges/" + harness.Definition + "/" + harness.Instance + "/b.csv"
	if err := r.ingest(ctx, r.Put(keyB, csvRows(3, 2))); err == nil {
		t.Fatal("a later file must fail too until an operator resolves it")
	}
	if n := len(r.Emu.Journal()); r.Emu.Count("create", 0)+r.Emu.Count("create", 201)+r.Emu.Count("create", 409) != 1 {
		t.Fatalf("creates sent: %s (journal %d); want the one, never blind-retried", r.statuses("create"), n)
	}
	rep := r.report(keyB)
	if rep.Status != review.Failed || len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0].Message, "docs/operations.md") {
		t.Fatalf("report = %+v, want failed, pointing at the runbook", rep)
	}
}

func TestSessionQuietPeriodCloseWaitsForAnUploadInFlight(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	r.Settings.QuietPeriod = time.Second
	if err := r.ingest(ctx, r.Put(harness.Key("a.csv"), csvRows(3, 1))); err != nil {
		t.Fatal(err)
	}
	// b.csv takes 4 s to upload; the quiet period since a.csv passes.
	r.Emu.Inject(graphemu.Fault{Op: "upload", Delay: 4 * time.Second})
	keyB := harness.Key("b.csv")
	done := make(chan error, 1)
	go func() { done <- r.ingest(ctx, r.Put(keyB, csvRows(3, 2))) }()
	time.Sleep(2 * time.Second)
	if _, err := r.closer("finalizer", time.Now).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ingest of b.csv: %v", err)
	}
	if rep := r.report(keyB); rep.Status != review.Uploaded {
		t.Fatalf("b.csv: report %q, want uploaded (the quiet-period close must wait for it)", rep.Status)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := r.closer("finalizer", time.Now).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Emu.Sessions(); len(s) != 1 || !s[0].IsUploadDone || len(s[0].Files) != 2 {
		t.Fatalf("sessions = %+v, want one closed with both files", s)
	}
}

func TestSessionCheckOfOneHangingSessionDoesNotStarveTheRun(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	var targets []review.Target
	for _, inst := range []string{"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"} {
		tg := harness.Target()
		tg.ReviewInstanceID = inst
		targets = append(targets, tg)
		if err := r.ingest(ctx, r.Put(harness.KeyFor(tg, "a.csv"), csvRows(2, len(targets)))); err != nil {
			t.Fatal(err)
		}
	}
	hung, _ := r.Ledger.Session(ctx, targets[0])
	r.Emu.Inject(graphemu.Fault{Op: "get", Delay: time.Minute, Times: -1, Match: func(req *http.Request) bool {
		return strings.Contains(req.URL.Path, hung.SessionID)
	}})
	c := r.closer("finalizer", at(r.Settings.QuietPeriod+time.Minute))
	setPerSession(c, 2*time.Second)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, _ := c.Run(rctx)
	r.Emu.ClearFaults()
	if len(s.Closed) != 2 {
		t.Fatalf("summary = %+v; want the two other sessions closed despite the hanging one", s)
	}
}

func TestObjectOwnClaimIsRecognisedAfterItsAnswerWasLost(t *testing.T) {
	// The first conditional create of a claim reaches S3, and its answer
	// is lost: the SDK's retry then meets 412 on the claim it just made.
	var lost atomic.Bool
	r := newRig(t, rigOptions{S3Transport: func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(req)
			if err == nil && req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/claims/") &&
				req.Header.Get("If-None-Match") == "*" && resp.StatusCode == http.StatusOK && lost.CompareAndSwap(false, true) {
				resp.Body.Close()
				return nil, errors.New("read tcp 127.0.0.1: connection reset by peer (injected)")
			}
			return resp, err
		})
	}})
	ctx := context.Background()
	key := harness.Key("a.csv")
	errs := lambdaRetries(ctx, r.handler, r.Put(key, csvRows(3, 1)))
	if !lost.Load() {
		t.Fatal("setup: no claim create answer was lost")
	}
	if errs[0] != nil || r.report(key).Status != review.Uploaded || len(r.files()) != 1 {
		t.Fatalf("first attempt %v, report %q, %d files; want uploaded at once, once", errs[0], r.report(key).Status, len(r.files()))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func TestObjectUploadLandingAfterItsEmptySessionExpiredIsReportedExpired(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	// The session is made for the first file, whose upload is slow; the
	// finalizer, past the window, sees an empty session and records it
	// expired while the upload is still on its way.
	r.Emu.Inject(graphemu.Fault{Op: "upload", Delay: 3 * time.Second})
	key := harness.Key("big.csv")
	done := make(chan error, 1)
	go func() { done <- r.ingest(ctx, r.Put(key, csvRows(50, 1))) }()
	waitFor(t, "the session to be created", func() bool { return len(r.Emu.Sessions()) == 1 })
	time.Sleep(500 * time.Millisecond)
	if _, err := r.closer("finalizer", at(3*time.Hour)).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, _ := r.Ledger.Session(ctx, harness.Target()); rec == nil || rec.State != ledger.Expired {
		t.Fatalf("setup: ledger = %+v, want the empty session expired", rec)
	}
	<-done
	if rep := r.report(key); rep.Status != review.Expired {
		t.Fatalf("report = %+v; want expired (the upload landed in a session nobody will close)", rep)
	}
}

func TestSessionFilesGraphHasButTheLedgerLacksAreNotAnEmptySession(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	if err := r.ingest(ctx, r.Put(harness.Key("a.csv"), csvRows(3, 1))); err != nil {
		t.Fatal(err)
	}
	// The ledger lost the file (an upload whose commit never happened).
	rec, err := r.Ledger.UpdateSession(ctx, harness.Target(), func(s *ledger.Session, _ bool) error {
		s.Files, s.LastUploadAt = nil, time.Time{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// At the deadline, before the window ends: a session with a file in
	// Graph is closed, not left to expire as empty.
	deadline := time.Until(rec.WindowEnds.Add(-r.Settings.CloseMargin)) + time.Minute
	if _, err := r.closer("finalizer", at(deadline)).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Emu.Sessions(); len(s) != 1 || !s[0].IsUploadDone {
		t.Fatalf("sessions = %+v; want closed at its deadline", s)
	}
}

func TestObjectReportsAreNotOverwrittenByStaleEvents(t *testing.T) {
	t.Run("repeated event after the session expired", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		ctx := context.Background()
		key := harness.Key("a.csv")
		rec := r.Put(key, csvRows(3, 1))
		if err := r.ingest(ctx, rec); err != nil {
			t.Fatal(err)
		}
		s, _ := r.Ledger.Session(ctx, harness.Target())
		r.Emu.ExpireSession(s.SessionID)
		if _, err := r.closer("finalizer", time.Now).Run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.ingest(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if rep := r.report(key); rep.Status != review.Expired {
			t.Fatalf("report = %q after a repeated event, want expired still", rep.Status)
		}
	})
	t.Run("late duplicate of an older version", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		ctx := context.Background()
		key := harness.Key("a.csv")
		v1 := r.Put(key, csvRows(3, 1))
		if err := r.ingest(ctx, v1); err != nil {
			t.Fatal(err)
		}
		v2 := r.Put(key, csvRows(4, 2))
		if err := r.ingest(ctx, v2); err != nil {
			t.Fatal(err)
		}
		if err := r.ingest(ctx, v1); err != nil {
			t.Fatal(err)
		}
		if rep := r.report(key); rep.VersionID != v2.S3.Object.VersionID || rep.Status != review.Uploaded {
			t.Fatalf("report = %+v; want the newer version's, uploaded", rep)
		}
	})
	t.Run("older manifest after a newer one", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		ctx := context.Background()
		key := harness.Key("manifest.json")
		m1 := r.Put(key, []byte(`{"files":["a.csv"]}`))
		m2 := r.Put(key, []byte(`{"files":["a.csv","b.csv"]}`))
		if err := r.ingest(ctx, m2); err != nil {
			t.Fatal(err)
		}
		if err := r.ingest(ctx, m1); err != nil {
			t.Fatal(err)
		}
		rec, err := r.Ledger.Session(ctx, harness.Target())
		if err != nil || rec.Manifest == nil || len(rec.Manifest.Files) != 2 {
			t.Fatalf("ledger manifest = %+v, %v; want the newer one (2 files)", rec, err)
		}
		if rep := r.report(key); rep.VersionID != m2.S3.Object.VersionID {
			t.Fatalf("manifest report = %+v; want the newer version's", rep)
		}
	})
}

// newS3 is an S3 client with options o.
func newS3(o s3.Options) *s3.Client { return s3.New(o) }

// storeOn is the ledger's store on bucket through client c.
func storeOn(c *s3.Client, bucket string) blob.Store { return &blob.S3{Client: c, Bucket: bucket} }

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// at returns a clock d from now.
func at(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
