package finalize_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
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

const csvHeader = "PrincipalId,PrincipalType,PermissionId,PermissionName,PermissionDescription,PermissionType,ScopeId,ScopeDisplayName,EntitlementOwners_Users,EntitlementOwners_Groups,CustomData\n"
const csvRow = "00000000-1111-4111-8111-111111111111,EntraIdUser,p,P,d,t,s,S,,,\n"

// uploadTo ingests one file named name into review t.
func uploadTo(t *testing.T, w *harness.World, target review.Target, name string) {
	t.Helper()
	key := harness.KeyFor(target, name)
	if err := w.IngestRecords(context.Background(), w.Put(key, []byte(csvHeader+csvRow))); err != nil {
		t.Fatal(err)
	}
	if r := w.Report(key); r.Status != review.Uploaded {
		t.Fatalf("report of %s = %+v", key, r)
	}
}

// at returns a clock d from now.
func at(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

func patches(w *harness.World) int {
	n := 0
	for _, r := range w.Emu.Journal() {
		if r.Op == "patch" {
			n++
		}
	}
	return n
}

func run(t *testing.T, c *finalize.Closer) finalize.Summary {
	t.Helper()
	s, err := c.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v (summary %+v)", err, s)
	}
	return s
}

func TestManifestCompleteCloses(t *testing.T) {
	w := harness.New(t, harness.Options{})
	uploadTo(t, w, harness.Target(), "a.csv")
	// The manifest is recorded without ingest's own immediate close, as if
	// that close had failed: the finalizer applies the same rule.
	_, err := w.Ledger.UpdateSession(context.Background(), harness.Target(), func(s *ledger.Session, _ bool) error {
		s.Manifest = &ledger.Manifest{Key: harness.Key("manifest.json"), Files: []string{"a.csv"}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, w.Closer("run"))
	if len(s.Closed) != 1 || s.Closed[0].Reason != review.ReasonManifestComplete {
		t.Fatalf("summary = %+v", s)
	}
	if patches(w) != 1 || !w.Emu.Sessions()[0].IsUploadDone {
		t.Fatalf("want one PATCH and a closed session")
	}
}

func TestQuietPeriod(t *testing.T) {
	w := harness.New(t, harness.Options{})
	uploadTo(t, w, harness.Target(), "a.csv")
	c := w.Closer("run")
	c.Now = at(w.Settings.QuietPeriod - time.Minute)
	if s := run(t, c); len(s.Open) != 1 || len(s.Closed) != 0 {
		t.Fatalf("closed before the quiet period passed: %+v", s)
	}
	if patches(w) != 0 {
		t.Fatalf("no PATCH before the quiet period")
	}
	c.Now = at(w.Settings.QuietPeriod + time.Minute)
	s := run(t, c)
	if len(s.Closed) != 1 || s.Closed[0].Reason != review.ReasonQuietPeriod {
		t.Fatalf("summary = %+v, want closed after the quiet period", s)
	}
	rec, _ := w.Ledger.Session(context.Background(), harness.Target())
	if rec.State != ledger.Complete || rec.CloseReason != review.ReasonQuietPeriod {
		t.Fatalf("ledger = %+v", rec)
	}
	if keys, _ := w.Ledger.OpenSessions(context.Background()); len(keys) != 0 {
		t.Fatalf("a closed session must leave the open index: %v", keys)
	}
}

func TestDeadlineCloseNamesMissingFiles(t *testing.T) {
	var logs bytes.Buffer
	w := harness.New(t, harness.Options{Log: &logs})
	mustIngestManifest(t, w, `{"files":["a.csv","b.csv"]}`)
	uploadTo(t, w, harness.Target(), "a.csv")
	c := w.Closer("run")
	c.Now = at(w.Settings.QuietPeriod * 3)
	if s := run(t, c); len(s.Open) != 1 || len(s.Open[0].Missing) != 1 {
		t.Fatalf("an incomplete manifest waits past the quiet period: %+v", s)
	}
	c.Now = at(w.Settings.UploadWindow - w.Settings.CloseMargin + time.Minute)
	s := run(t, c)
	if len(s.Closed) != 1 || s.Closed[0].Reason != review.ReasonDeadline || fmt.Sprint(s.Closed[0].Missing) != "[b.csv]" {
		t.Fatalf("summary = %+v, want a deadline close missing b.csv", s)
	}
	if !strings.Contains(logs.String(), "b.csv") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Fatalf("the warning must name the missing file; logs:\n%s", logs.String())
	}
}

func mustIngestManifest(t *testing.T, w *harness.World, body string) {
	t.Helper()
	if err := w.IngestRecords(context.Background(), w.Put(harness.Key("manifest.json"), []byte(body))); err != nil {
		t.Fatal(err)
	}
}

// emptySession makes a session exist in Graph and the ledger with no file,
// as when its only upload failed.
func emptySession(t *testing.T, w *harness.World) string {
	t.Helper()
	ctx := context.Background()
	gs, err := w.Graph.Create(ctx, harness.Target())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ledger.MarkOpen(ctx, harness.Target()); err != nil {
		t.Fatal(err)
	}
	_, err = w.Ledger.UpdateSession(ctx, harness.Target(), func(s *ledger.Session, _ bool) error {
		s.SessionID, s.State = gs.ID, ledger.Open
		s.CreatedAt, s.WindowEnds = gs.CreatedDateTime, gs.CreatedDateTime.Add(w.Settings.UploadWindow)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return gs.ID
}

func TestEmptySessionIsNeverClosed(t *testing.T) {
	w := harness.New(t, harness.Options{})
	emptySession(t, w)
	c := w.Closer("run")
	c.Now = at(w.Settings.UploadWindow - time.Minute) // past the deadline
	s := run(t, c)
	if len(s.Open) != 1 || !strings.Contains(s.Open[0].Reason, "never closed") {
		t.Fatalf("summary = %+v, want the empty session left open and reported", s)
	}
	if patches(w) != 0 {
		t.Fatalf("an empty session must not be closed")
	}
}

func TestEmptySessionExpiresWhenItsWindowEnds(t *testing.T) {
	w := harness.New(t, harness.Options{})
	emptySession(t, w)
	c := w.Closer("run")
	c.Now = at(w.Settings.UploadWindow + time.Minute)
	s := run(t, c)
	if len(s.Expired) != 1 || patches(w) != 0 {
		t.Fatalf("summary = %+v, %d patches; want the empty session expired, never closed", s, patches(w))
	}
	if open, _ := w.Ledger.OpenSessions(context.Background()); len(open) != 0 {
		t.Fatalf("open index = %v, want empty", open)
	}
}

func TestSessionExpiredInGraph(t *testing.T) {
	w := harness.New(t, harness.Options{})
	uploadTo(t, w, harness.Target(), "a.csv")
	rec, _ := w.Ledger.Session(context.Background(), harness.Target())
	w.Emu.ExpireSession(rec.SessionID)
	s := run(t, w.Closer("run"))
	if len(s.Expired) != 1 || patches(w) != 0 {
		t.Fatalf("summary = %+v patches = %d, want one expired and no PATCH", s, patches(w))
	}
	rec, _ = w.Ledger.Session(context.Background(), harness.Target())
	if rec.State != ledger.Expired {
		t.Fatalf("ledger state = %s", rec.State)
	}
	r := w.Report(harness.Key("a.csv"))
	if r.Status != review.Expired || len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "not process") {
		t.Fatalf("report = %+v, want expired saying the data was not processed", r)
	}
	if s := run(t, w.Closer("again")); s.Checked != 0 {
		t.Fatalf("an expired session must leave the open index: %+v", s)
	}
}

func TestRefusedPatchOfAnActiveSessionIsRetriedNotExpired(t *testing.T) {
	w := harness.New(t, harness.Options{})
	uploadTo(t, w, harness.Target(), "a.csv")
	// Graph refuses the PATCH (a 4xx, not a throttle) yet still reports the
	// session active, within its window: nothing ended, so nothing may be
	// recorded expired; the next run closes it.
	w.Emu.Inject(graphemu.Fault{Op: "patch", Status: 400, Times: 1})
	w.Emu.ResetJournal()
	c := w.Closer("run")
	c.Now = at(time.Hour)
	s, err := c.Run(context.Background())
	if err == nil || len(s.Expired) != 0 || len(s.Errors) != 1 {
		t.Fatalf("summary = %+v, %v; want an error for the next run, nothing expired", s, err)
	}
	if rec, err := w.Ledger.Session(context.Background(), harness.Target()); err != nil || rec.State != ledger.Open || rec.Closing != nil {
		t.Fatalf("ledger = %+v, %v; want open with its closing lease given back", rec, err)
	}
	again := run(t, c)
	if len(again.Closed) != 1 || patches(w) != 2 {
		t.Fatalf("the next run must close it: %+v, %d patches", again, patches(w))
	}
}

func TestRefusedPatchPastTheWindowIsRecordedExpired(t *testing.T) {
	w := harness.New(t, harness.Options{})
	uploadTo(t, w, harness.Target(), "a.csv")
	// Past the window (the emulator's clock still calls it active): the
	// refusal ends it, once, and every file's report says so.
	w.Emu.Inject(graphemu.Fault{Op: "patch", Status: 400, Times: 1})
	c := w.Closer("run")
	c.Now = at(3 * time.Hour)
	s := run(t, c)
	if len(s.Expired) != 1 {
		t.Fatalf("summary = %+v, want the refused session recorded expired", s)
	}
	if r := w.Report(harness.Key("a.csv")); r.Status != review.Expired {
		t.Fatalf("report = %+v, want expired", r)
	}
	again := run(t, c)
	if again.Checked != 0 || patches(w) > 1 {
		t.Fatalf("the refused session was tried again: %+v, %d patches", again, patches(w))
	}
}

func TestConcurrentRunsPatchOnce(t *testing.T) {
	w := harness.New(t, harness.Options{})
	uploadTo(t, w, harness.Target(), "a.csv")
	var wg sync.WaitGroup
	var closed atomic.Int32
	for i := range 4 {
		c := w.Closer(fmt.Sprintf("run-%d", i))
		c.Now = at(time.Hour)
		wg.Go(func() {
			s, err := c.Run(context.Background())
			if err != nil {
				t.Errorf("run: %v", err)
			}
			closed.Add(int32(len(s.Closed)))
		})
	}
	wg.Wait()
	if patches(w) != 1 || closed.Load() != 1 {
		t.Fatalf("patches = %d, closed = %d; want exactly one", patches(w), closed.Load())
	}
}

// countingStore counts the requests made to a store.
type countingStore struct {
	blob.Store
	n atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, k string) (blob.Object, error) {
	c.n.Add(1)
	return c.Store.Get(ctx, k)
}
func (c *countingStore) Create(ctx context.Context, k string, d []byte) (string, error) {
	c.n.Add(1)
	return c.Store.Create(ctx, k, d)
}
func (c *countingStore) Replace(ctx context.Context, k string, d []byte, e string) (string, error) {
	c.n.Add(1)
	return c.Store.Replace(ctx, k, d, e)
}
func (c *countingStore) Put(ctx context.Context, k string, d []byte) (string, error) {
	c.n.Add(1)
	return c.Store.Put(ctx, k, d)
}
func (c *countingStore) Delete(ctx context.Context, k string) error {
	c.n.Add(1)
	return c.Store.Delete(ctx, k)
}
func (c *countingStore) List(ctx context.Context, p string) ([]string, error) {
	c.n.Add(1)
	return c.Store.List(ctx, p)
}

func TestRunCostGrowsWithOpenSessionsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1,000 ledger records")
	}
	w := harness.New(t, harness.Options{})
	ctx := context.Background()
	// 1,000 finished sessions in the ledger's history.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range 1000 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tg := harness.Target()
			tg.ReviewInstanceID = fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
			_, err := w.Ledger.UpdateSession(ctx, tg, func(s *ledger.Session, _ bool) error {
				s.SessionID, s.State, s.ClosedAt = fmt.Sprintf("%08x-aaaa-4aaa-8aaa-aaaaaaaaaaaa", i), ledger.Complete, time.Now()
				s.Files = []ledger.File{{Name: "a.csv", Key: harness.KeyFor(tg, "a.csv"), Size: 10}}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// 3 open ones.
	for i := range 3 {
		tg := harness.Target()
		tg.ReviewInstanceID = fmt.Sprintf("%08x-1111-4111-8111-111111111111", i)
		uploadTo(t, w, tg, "a.csv")
	}
	counting := &countingStore{Store: w.Ledger.Store()}
	c := w.Closer("run")
	c.Ledger = ledger.New(counting, w.Settings.StatePrefix)
	w.Emu.ResetJournal()
	s := run(t, c) // within the quiet period: all three stay open
	graphCalls := len(w.Emu.Journal())
	t.Logf("one run with 3 open and 1,000 finished sessions: %d S3 requests, %d Graph requests", counting.n.Load(), graphCalls)
	if s.Checked != 3 || len(s.Open) != 3 {
		t.Fatalf("summary = %+v, want the 3 open sessions checked", s)
	}
	// Per open session: the record, the Graph refresh and its write-back;
	// plus the one LIST of the index.
	if got := counting.n.Load(); got > 1+3*4 {
		t.Errorf("S3 requests = %d, want at most %d", got, 1+3*4)
	}
	if graphCalls != 3 {
		t.Errorf("Graph requests = %d, want 3 (one GET per open session)", graphCalls)
	}
}

func TestAbandonedCreationLeavesTheIndex(t *testing.T) {
	w := harness.New(t, harness.Options{})
	ctx := context.Background()
	// Graph refused the creation for good: the ledger has a pending record
	// with no session, and the index entry written before the attempt.
	w.Emu.Inject(graphemu.Fault{Op: "create", Status: 403, Times: -1})
	key := harness.Key("a.csv")
	if err := w.IngestRecords(ctx, w.Put(key, []byte(csvHeader+csvRow))); err == nil {
		t.Fatal("a refused creation must return an error for Lambda's retry")
	}
	w.Emu.ClearFaults()
	if keys, _ := w.Ledger.OpenSessions(ctx); len(keys) != 1 {
		t.Fatalf("index = %v, want the attempted session", keys)
	}
	s := run(t, w.Closer("run"))
	if len(s.Skipped) != 1 || !strings.HasPrefix(s.Skipped[0].Reason, "Graph refused to create the session: graph create: 403") {
		t.Fatalf("summary = %+v", s)
	}
	if keys, _ := w.Ledger.OpenSessions(ctx); len(keys) != 0 {
		t.Fatalf("index = %v, want it empty", keys)
	}
	// The retry creates the session and indexes it again.
	if err := w.IngestRecords(ctx, w.Put(key, []byte(csvHeader+csvRow+csvRow))); err != nil {
		t.Fatal(err)
	}
	if keys, _ := w.Ledger.OpenSessions(ctx); len(keys) != 1 {
		t.Fatalf("index = %v, want the new session", keys)
	}
}
