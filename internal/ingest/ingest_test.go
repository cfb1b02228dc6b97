package ingest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

const header = "PrincipalId,PrincipalType,PermissionId,PermissionName,PermissionDescription,PermissionType,ScopeId,ScopeDisplayName,EntitlementOwners_Users,EntitlementOwners_Groups,CustomData\r\n"

// csvRows returns a valid Entra-template CSV with n data rows.
func csvRows(n int) []byte {
	var b strings.Builder
	b.WriteString(header)
	for i := range n {
		fmt.Fprintf(&b, "%08x-1111-4111-8111-111111111111,EntraIdUser,door-%d,Door %d,Badge access,Access,site-1,HQ,\"aaaaaaaa-1111-4111-8111-111111111111,bbbbbbbb-1111-4111-8111-111111111111\",cccccccc-1111-4111-8111-111111111111,\r\n", i, i, i)
	}
	return []byte(b.String())
}

func mustIngest(t *testing.T, w *harness.World, recs ...events.S3EventRecord) {
	t.Helper()
	if err := w.IngestRecords(context.Background(), recs...); err != nil {
		t.Fatalf("ingest: %v", err)
	}
}

func sessionFiles(t *testing.T, w *harness.World) (sessions int, files []graphemu.FileView) {
	t.Helper()
	for _, s := range w.Emu.Sessions() {
		sessions++
		files = append(files, s.Files...)
	}
	return sessions, files
}

func TestHappyPathEveryProfile(t *testing.T) {
	routes := `{"badges":{"catalogId":"` + harness.Catalog + `","resourceId":"` + harness.Resource + `","source":"Badge system"}}`
	for _, profile := range []string{"v1.0", "beta", "beta-2025"} {
		t.Run(profile, func(t *testing.T) {
			w := harness.New(t, harness.Options{Profile: profile, Routes: routes})
			key := harness.Key("badge-access.csv")
			if profile == "beta-2025" {
				// beta-2025 needs the resource's display name: a route gives it.
				key = "incoming/badges/" + harness.Definition + "/" + harness.Instance + "/badge-access.csv"
			}
			body := csvRows(5)
			mustIngest(t, w, w.Put(key, body))
			r := w.Report(key)
			if r.Status != review.Uploaded || r.Rows != 5 || r.Bytes != int64(len(body)) || r.SessionID == "" {
				t.Fatalf("report = %+v, want uploaded with 5 rows and %d bytes", r, len(body))
			}
			if r.ReviewInstanceID != harness.Instance || r.CatalogID != harness.Catalog {
				t.Errorf("report names review %q catalog %q", r.ReviewInstanceID, r.CatalogID)
			}
			n, files := sessionFiles(t, w)
			if n != 1 || len(files) != 1 || files[0].Name != "badge-access.csv" || files[0].Size != int64(len(body)) {
				t.Fatalf("emulator has %d sessions, files %+v", n, files)
			}
			rec, err := w.Ledger.Session(context.Background(), harness.Target())
			if err != nil || rec.State != ledger.Open || len(rec.Files) != 1 || rec.SessionID != r.SessionID {
				t.Fatalf("ledger record = %+v, %v", rec, err)
			}
		})
	}
}

func TestBeta2025CanonicalKeyWithoutSourceIsRejected(t *testing.T) {
	w := harness.New(t, harness.Options{Profile: "beta-2025"})
	key := harness.Key("a.csv")
	mustIngest(t, w, w.Put(key, csvRows(1)))
	r := w.Report(key)
	if r.Status != review.Rejected || len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "ROUTES") {
		t.Fatalf("report = %+v, want rejected pointing at ROUTES", r)
	}
	if w.Uploads() != 0 || len(w.Emu.Sessions()) != 0 {
		t.Fatalf("nothing may reach Graph")
	}
}

func TestEncodedKeys(t *testing.T) {
	w := harness.New(t, harness.Options{})
	names := []string{"Badge access.csv", "a+b.csv", "export (2026).csv", "accès-badges é 日本.csv", "50% off + more (x).csv"}
	for _, name := range names {
		key := harness.Key(name)
		rec := w.Put(key, csvRows(2))
		if rec.S3.Object.Key == key && strings.ContainsAny(name, " +(") {
			t.Fatalf("the event key must be URL-encoded, got %q", rec.S3.Object.Key)
		}
		mustIngest(t, w, rec)
		if r := w.Report(key); r.Status != review.Uploaded {
			t.Errorf("%q: report = %+v", name, r)
		}
	}
	_, files := sessionFiles(t, w)
	got := map[string]bool{}
	for _, f := range files {
		got[f.Name] = true
	}
	for _, name := range names {
		if !got[name] {
			t.Errorf("file %q not uploaded under its own name; got %v", name, got)
		}
	}
}

func TestDuplicateEventsUploadOnce(t *testing.T) {
	t.Run("two in sequence", func(t *testing.T) {
		w := harness.New(t, harness.Options{})
		key := harness.Key("dup.csv")
		rec := w.Put(key, csvRows(3))
		mustIngest(t, w, rec)
		mustIngest(t, w, rec)
		if w.Uploads() != 1 {
			t.Fatalf("uploads = %d, want 1", w.Uploads())
		}
		if r := w.Report(key); r.Status != review.Duplicate || r.SessionID == "" {
			t.Fatalf("second report = %+v, want duplicate with the session", r)
		}
	})
	t.Run("four at once", func(t *testing.T) {
		w := harness.New(t, harness.Options{})
		key := harness.Key("dup.csv")
		rec := w.Put(key, csvRows(3))
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() { errs <- w.IngestRecords(context.Background(), rec) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("ingest: %v", err)
			}
		}
		_, files := sessionFiles(t, w)
		if w.Uploads() != 1 || len(files) != 1 {
			t.Fatalf("uploads = %d, files = %d; want 1", w.Uploads(), len(files))
		}
	})
}

func TestEightFilesAtOnceShareOneSession(t *testing.T) {
	w := harness.New(t, harness.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		rec := w.Put(harness.Key(fmt.Sprintf("part-%d.csv", i)), csvRows(i+1))
		wg.Go(func() { errs <- w.IngestRecords(context.Background(), rec) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("ingest: %v", err)
		}
	}
	n, files := sessionFiles(t, w)
	if n != 1 || len(files) != 8 {
		t.Fatalf("sessions = %d, files = %d; want 1 and 8", n, len(files))
	}
	creates := 0
	for _, r := range w.Emu.Journal() {
		if r.Op == "create" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("create requests = %d, want 1", creates)
	}
	rec, err := w.Ledger.Session(context.Background(), harness.Target())
	if err != nil || len(rec.Files) != 8 {
		t.Fatalf("ledger = %+v, %v; want 8 files", rec, err)
	}
}

func TestBadInputIsRejectedWithNothingSent(t *testing.T) {
	valid := string(csvRows(2))
	tests := []struct {
		name    string
		key     string
		body    string
		line    int
		column  string
		message string
	}{
		{"not a GUID principal", harness.Key("a.csv"), valid + "bob,EntraIdUser,p,P,d,t,s,S,,,\r\n", 4, "PrincipalId", "GUID"},
		{"bad principal type", harness.Key("a.csv"), valid + "00000000-1111-4111-8111-111111111111,Robot,p,P,d,t,s,S,,,\r\n", 4, "PrincipalType", ""},
		{"wrong field count", harness.Key("a.csv"), valid + "00000000-1111-4111-8111-111111111111,EntraIdUser\r\n", 4, "", ""},
		{"bad owner GUID", harness.Key("a.csv"), valid + "00000000-1111-4111-8111-111111111111,EntraIdUser,p,P,d,t,s,S,\"aaaaaaaa-1111-4111-8111-111111111111,nope\",,\r\n", 4, "EntitlementOwners_Users", "GUID"},
		{"unterminated quote", harness.Key("a.csv"), valid + "\"00000000-1111-4111-8111-111111111111,EntraIdUser\r\n", 4, "PrincipalId", "quote"},
		{"empty file", harness.Key("a.csv"), "", 0, "", "PrincipalId"},
		{"header only", harness.Key("a.csv"), header, 0, "", ""},
		{"unknown header", harness.Key("a.csv"), "name,email\r\nbob,bob@example.com\r\n", 1, "", "PrincipalId"},
		{"key with a non-GUID id", "incoming/" + harness.Catalog + "/not-a-guid/" + harness.Definition + "/" + harness.Instance + "/a.csv", valid, 0, "", "GUID"},
		{"key with wrong depth", "incoming/" + harness.Catalog + "/a.csv", valid, 0, "", ""},
		{"key with ..", "incoming/" + harness.Catalog + "/" + harness.Resource + "/../" + harness.Instance + "/a.csv", valid, 0, "", ".."},
		{"key with unknown route", "incoming/nowhere/" + harness.Definition + "/" + harness.Instance + "/a.csv", valid, 0, "", "nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := harness.New(t, harness.Options{})
			mustIngest(t, w, w.Put(tt.key, []byte(tt.body)))
			r := w.Report(tt.key)
			if r.Status != review.Rejected || len(r.Errors) != 1 {
				t.Fatalf("report = %+v, want rejected with one error", r)
			}
			e := r.Errors[0]
			if e.Line != tt.line || e.Column != tt.column || !strings.Contains(e.Message, tt.message) {
				t.Errorf("error = %+v, want line %d column %q message containing %q", e, tt.line, tt.column, tt.message)
			}
			if w.Uploads() != 0 || len(w.Emu.Sessions()) != 0 {
				t.Errorf("a rejected file must send nothing to Graph: uploads %d, sessions %d", w.Uploads(), len(w.Emu.Sessions()))
			}
		})
	}
}

func TestGraphFaultsStillUploadOnce(t *testing.T) {
	faults := []struct {
		name  string
		fault graphemu.Fault
	}{
		{"429 with Retry-After", graphemu.Fault{Status: 429, RetryAfter: "1"}},
		{"503", graphemu.Fault{Status: 503}},
		{"connection reset", graphemu.Fault{ResetAfterBytes: 10}},
	}
	for _, op := range []string{"token", "create", "upload", "patch"} {
		for _, f := range faults {
			t.Run(op+"/"+f.name, func(t *testing.T) {
				w := harness.New(t, harness.Options{})
				fault := f.fault
				fault.Op = op
				if op == "patch" {
					// The manifest makes the upload close the session at once.
					mustIngest(t, w, w.Put(harness.Key("manifest.json"), []byte(`{"files":["a.csv"]}`)))
				}
				w.Emu.Inject(fault)
				key := harness.Key("a.csv")
				mustIngest(t, w, w.Put(key, csvRows(4)))
				if r := w.Report(key); r.Status != review.Uploaded {
					t.Fatalf("report = %+v", r)
				}
				_, files := sessionFiles(t, w)
				if len(files) != 1 || len(w.Emu.Sessions()) != 1 {
					t.Fatalf("files = %d sessions = %d, want exactly one of each", len(files), len(w.Emu.Sessions()))
				}
				if op == "patch" {
					s := w.Emu.Sessions()[0]
					if !s.IsUploadDone {
						t.Errorf("the session should be closed after the manifest completed")
					}
				}
			})
		}
	}
}

func TestLateFile(t *testing.T) {
	w := harness.New(t, harness.Options{})
	mustIngest(t, w, w.Put(harness.Key("manifest.json"), []byte(`{"files":["a.csv"]}`)))
	mustIngest(t, w, w.Put(harness.Key("a.csv"), csvRows(1)))
	if s := w.Emu.Sessions(); len(s) != 1 || !s[0].IsUploadDone {
		t.Fatalf("the complete manifest should have closed the session: %+v", s)
	}
	key := harness.Key("b.csv")
	mustIngest(t, w, w.Put(key, csvRows(1)))
	r := w.Report(key)
	if r.Status != review.Late || r.SessionID == "" {
		t.Fatalf("report = %+v, want late", r)
	}
	if w.Uploads() != 1 {
		t.Errorf("uploads = %d, want 1 (the late file must not be sent)", w.Uploads())
	}
}

func TestManifestFirstOrLastClosesAtOnce(t *testing.T) {
	for _, order := range []string{"manifest first", "manifest last"} {
		t.Run(order, func(t *testing.T) {
			w := harness.New(t, harness.Options{})
			m := &countingMetrics{}
			w.Ingest.Metrics = m
			manifest := w.Put(harness.Key("manifest.json"), []byte(`{"files":["a.csv","b.csv"]}`))
			if order == "manifest first" {
				mustIngest(t, w, manifest)
			}
			mustIngest(t, w, w.Put(harness.Key("a.csv"), csvRows(1)))
			if s := w.Emu.Sessions(); len(s) != 1 || s[0].IsUploadDone {
				t.Fatalf("closed too early: %+v", s)
			}
			mustIngest(t, w, w.Put(harness.Key("b.csv"), csvRows(1)))
			if order == "manifest last" {
				mustIngest(t, w, manifest)
			}
			s := w.Emu.Sessions()
			if len(s) != 1 || !s[0].IsUploadDone || len(s[0].Files) != 2 {
				t.Fatalf("session = %+v, want closed with 2 files", s)
			}
			rec, err := w.Ledger.Session(context.Background(), harness.Target())
			if err != nil || rec.State != ledger.Complete || rec.CloseReason != review.ReasonManifestComplete {
				t.Fatalf("ledger = %+v, %v", rec, err)
			}
			if m.closed.Load() != 1 || m.uploaded.Load() != 2 {
				t.Errorf("metrics: %d sessions closed, %d files uploaded; want 1 and 2", m.closed.Load(), m.uploaded.Load())
			}
		})
	}
}

func TestRetryAfterCrashFollowingUploadSendsNoSecondFile(t *testing.T) {
	w := harness.New(t, harness.Options{})
	ctx := context.Background()
	// A first file makes the session exist.
	mustIngest(t, w, w.Put(harness.Key("first.csv"), csvRows(1)))
	key := harness.Key("crash.csv")
	body := csvRows(7)
	rec := w.Put(key, body)
	ref := harness.RefOf(rec)
	// The crashed attempt: it claimed the object, uploaded it, and died
	// before the ledger commit; its claim lapsed a lease later.
	claims := claim.New(w.Ledger)
	claims.Now = func() time.Time { return time.Now().Add(-2 * claim.DefaultLease) }
	taken, err := claims.Take(ctx, ref, "crashed")
	if err != nil || !taken.Acquired {
		t.Fatalf("claim: %+v %v", taken, err)
	}
	sess, err := w.Ledger.Session(ctx, harness.Target())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Graph.UploadFile(ctx, harness.Target(), sess.SessionID, "crash.csv", int64(len(body)), harness.Opener(body)); err != nil {
		t.Fatal(err)
	}
	before := w.Uploads()
	mustIngest(t, w, rec)
	if w.Uploads() != before {
		t.Fatalf("the retry uploaded again: %d uploads, want %d", w.Uploads(), before)
	}
	if r := w.Report(key); r.Status != review.Uploaded {
		t.Fatalf("report = %+v, want uploaded", r)
	}
	got, _ := w.Ledger.Session(ctx, harness.Target())
	if len(got.Files) != 2 {
		t.Fatalf("ledger files = %d, want 2", len(got.Files))
	}
}

func TestS3TestEventIsIgnored(t *testing.T) {
	w := harness.New(t, harness.Options{})
	payload := []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-28T10:00:00.000Z","Bucket":"` + w.Drop + `","RequestId":"R","HostId":"H"}`)
	if err := w.Ingest.Handle(context.Background(), payload); err != nil {
		t.Fatalf("test event: %v", err)
	}
	if len(w.Emu.Journal()) != 0 {
		t.Errorf("the test event must not reach Graph")
	}
}

func TestBadRowPastThePrecheckAbortsTheUpload(t *testing.T) {
	w := harness.New(t, harness.Options{})
	w.Ingest.PrecheckBytes = 64 << 10 // so that the bad row is found while streaming
	// Good rows for more than two reads, so that the upload has sent data
	// when the bad row is read; a bad row in the first read is found
	// before the request leaves, and Graph may never see it.
	const rows = 12000
	body := append(csvRows(rows), []byte("bob,EntraIdUser,p,P,d,t,s,S,,,\r\n")...)
	if len(body) < 2<<20+int(w.Ingest.PrecheckBytes) { // two reads of 1 MiB, past the precheck
		t.Fatalf("the file (%d bytes) must be well past the precheck and two reads", len(body))
	}
	key := harness.Key("big.csv")
	mustIngest(t, w, w.Put(key, body))
	r := w.Report(key)
	if r.Status != review.Rejected || len(r.Errors) != 1 || r.Errors[0].Line != rows+2 || r.Errors[0].Column != "PrincipalId" {
		t.Fatalf("report = %+v, want rejected at line %d, column PrincipalId", r, rows+2)
	}
	_, files := sessionFiles(t, w)
	if len(files) != 0 || w.Uploads() != 0 {
		t.Fatalf("the aborted upload must record nothing in Graph: files %d, uploads %d", len(files), w.Uploads())
	}
	// The emulator journals a request when its handler ends, which for an
	// aborted upload can be after the ingest has returned.
	for end := time.Now().Add(5 * time.Second); w.Emu.Count("upload", 0) == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := w.Emu.Count("upload", 0); n != 1 {
		t.Errorf("upload attempts = %d, want 1: a bad row is never retried", n)
	}
}

func TestPrecheckOfExactlyItsLimitChecksTheEnd(t *testing.T) {
	w := harness.New(t, harness.Options{})
	body := append(csvRows(3), []byte("\"00000000-1111-4111-8111-111111111111,EntraIdUser")...)
	w.Ingest.PrecheckBytes = int64(len(body))
	key := harness.Key("cut.csv")
	mustIngest(t, w, w.Put(key, body))
	if r := w.Report(key); r.Status != review.Rejected || r.Errors[0].Line != 5 {
		t.Fatalf("report = %+v, want rejected at line 5", r)
	}
	if len(w.Emu.Sessions()) != 0 {
		t.Fatalf("a file the precheck saw whole must be rejected before any session is created")
	}
}

func TestInvokeAnswersEachRecordsOutcome(t *testing.T) {
	w := harness.New(t, harness.Options{})
	good := w.Put(harness.Key("good.csv"), csvRows(1))
	bad := w.Put(harness.Key("bad.csv"), []byte("nope\r\n"))
	removed := good
	removed.EventName = "ObjectRemoved:Delete"
	res, err := w.Ingest.Invoke(context.Background(), harness.Payload(good, bad, removed, good))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Objects {
		got = append(got, o.Status)
	}
	if fmt.Sprint(got) != "[uploaded rejected ignored duplicate]" {
		t.Fatalf("outcomes = %v", got)
	}
	if res.Objects[0].Key != harness.Key("good.csv") || res.Objects[0].SessionID == "" {
		t.Errorf("outcome = %+v, want the decoded key and the session", res.Objects[0])
	}
}

// countingMetrics counts what ingest reports to its metrics.
type countingMetrics struct{ uploaded, closed, ready, rejected atomic.Int32 }

func (m *countingMetrics) Object(s review.Status, _, _ int64, _ time.Duration) {
	if s == review.Uploaded {
		m.uploaded.Add(1)
	}
}

func (m *countingMetrics) SessionEnded(o finalize.Outcome) {
	if o.Action == finalize.Closed {
		m.closed.Add(1)
	}
}

func (m *countingMetrics) Standing(s review.Status) {
	switch s {
	case review.Ready:
		m.ready.Add(1)
	case review.Rejected:
		m.rejected.Add(1)
	}
}

func TestStandingFilesAreValidatedOnDropAndNothingIsSent(t *testing.T) {
	w := harness.New(t, harness.Options{})
	m := &countingMetrics{}
	w.Ingest.Metrics = m
	folder := "standing/" + harness.Catalog + "/" + harness.Resource + "/"
	good := w.Put(folder+"access.csv", csvRows(3))
	bad := w.Put(folder+"broken.csv", []byte(header+"bob,EntraIdUser,d,D,,A,s,S,,,\r\n"))
	nested := w.Put(folder+"old/access.csv", csvRows(1))
	mustIngest(t, w, good, bad, nested)
	for key, want := range map[string]review.Status{
		folder + "access.csv": review.Ready, folder + "broken.csv": review.Rejected, folder + "old/access.csv": review.Rejected,
	} {
		if r := w.Report(key); r.Status != want {
			t.Errorf("%s: report %+v, want %s", key, r, want)
		}
	}
	if r := w.Report(folder + "broken.csv"); len(r.Errors) == 0 || r.Errors[0].Line != 2 {
		t.Errorf("the rejected standing file's report does not locate its error: %+v", r)
	}
	for _, j := range w.Emu.Journal() {
		if j.Op != "token" && j.Op != "discovery" {
			t.Errorf("a standing drop sent %s %s to Graph", j.Method, j.Path)
		}
	}
	if m.ready.Load() != 1 || m.rejected.Load() != 2 {
		t.Errorf("metrics: %d ready, %d rejected; want 1 and 2", m.ready.Load(), m.rejected.Load())
	}
}
