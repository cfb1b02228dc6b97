package discover_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/discover"
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

const header = "principalId,principalType,permissionId,permissionName,permissionDescription,permissionType\n"

func csvRows(n int) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	for i := range n {
		fmt.Fprintf(&b, "00000000-0000-4000-8000-%012d,user,door-%d,Door %d,,badge\n", i, i%3, i%3)
	}
	return b.Bytes()
}

func badCSV() []byte {
	return []byte(header + "bob,user,door-1,Door 1,,badge\n")
}

// scene is a world with one catalog review in Initializing over a catalog
// with two custom data provided resources.
type scene struct {
	*harness.World
	catalog, def, inst string
	withData, noData   string
}

func newScene(t *testing.T) *scene {
	t.Helper()
	w := harness.New(t, harness.Options{})
	s := &scene{World: w, catalog: harness.Catalog}
	s.def = w.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Quarterly badge review", CatalogIDs: []string{s.catalog}})
	s.inst = w.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: s.def, Start: w.Emu.Now().Add(-10 * time.Minute), End: w.Emu.Now().Add(14 * 24 * time.Hour)})
	s.withData = w.Emu.AddResource(s.catalog, graphemu.CatalogResource{ID: harness.Resource, DisplayName: "Door badges"})
	s.noData = w.Emu.AddResource(s.catalog, graphemu.CatalogResource{DisplayName: "Legacy payroll"})
	return s
}

func (s *scene) standingKey(resource, file string) string {
	return "standing/" + s.catalog + "/" + resource + "/" + file
}

func (s *scene) run(t *testing.T) discover.Summary {
	t.Helper()
	sum, err := s.Discoverer(nil, nil).Run(context.Background())
	if err != nil {
		t.Fatalf("discovery run: %v (summary %+v)", err, sum)
	}
	return sum
}

func (s *scene) record(t *testing.T, resource string) *ledger.Review {
	t.Helper()
	rv, err := s.Ledger.Review(context.Background(), s.inst, resource)
	if err != nil {
		t.Fatalf("review record of %s: %v", resource, err)
	}
	return rv
}

func ops(w *harness.World, op string) int {
	n := 0
	for _, r := range w.Emu.Journal() {
		if r.Op == op && r.Status >= 200 && r.Status < 300 {
			n++
		}
	}
	return n
}

func TestDiscoverySendsStandingDataAndClosesAtOnce(t *testing.T) {
	s := newScene(t)
	s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(5))
	s.PutStanding(s.standingKey(s.withData, "owners.csv"), csvRows(2))
	if rep := s.Report(s.standingKey(s.withData, "access.csv")); rep.Status != review.Ready || rep.Rows != 5 {
		t.Fatalf("standing report: %+v", rep)
	}

	sum := s.run(t)
	if sum.Instances != 1 || sum.Covered != 1 || sum.Uploaded != 2 || sum.NoData != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	sessions := s.Emu.Sessions()
	if len(sessions) != 1 || !sessions[0].IsUploadDone || len(sessions[0].Files) != 2 {
		t.Fatalf("sessions: %+v", sessions)
	}
	if g := sessions[0]; g.ReviewInstanceID != s.inst || g.ReviewDefinitionID != s.def || g.ResourceID != s.withData {
		t.Fatalf("session for the wrong pair: %+v", g)
	}
	rv := s.record(t, s.withData)
	if rv.Status != ledger.ReviewComplete || rv.SessionID != sessions[0].ID || rv.ReviewName != "Quarterly badge review" ||
		rv.ResourceName != "Door badges" || rv.ClosedAt.IsZero() || rv.DiscoveredAt.IsZero() || len(rv.Files) != 2 {
		t.Fatalf("review record: %+v", rv)
	}
	for _, f := range rv.Files {
		if f.Status != "uploaded" || f.VersionID == "" || f.Rows == 0 {
			t.Fatalf("review record file: %+v", f)
		}
	}
	nd := s.record(t, s.noData)
	if nd.Status != ledger.ReviewNoData || !strings.Contains(nd.Message, "no usable standing data") {
		t.Fatalf("no-data record: %+v", nd)
	}
	if open, _ := s.Ledger.OpenSessions(context.Background()); len(open) != 0 {
		t.Fatalf("open index after the close: %v", open)
	}

	// A second run sends nothing and does not warn again.
	again := s.run(t)
	if again.Uploaded != 0 || again.NoData != 0 || ops(s.World, "upload") != 2 || ops(s.World, "patch") != 1 {
		t.Fatalf("second run: %+v", again)
	}
}

func TestDataDroppedAfterANoDataRecordIsStillSent(t *testing.T) {
	s := newScene(t)
	s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(1))
	s.run(t)
	if rv := s.record(t, s.noData); rv.Status != ledger.ReviewNoData {
		t.Fatalf("record: %+v", rv)
	}
	s.PutStanding(s.standingKey(s.noData, "late.csv"), csvRows(3))
	sum := s.run(t)
	if sum.Uploaded != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	if rv := s.record(t, s.noData); rv.Status != ledger.ReviewComplete || rv.Files[0].Rows != 3 {
		t.Fatalf("record after the data came: %+v", rv)
	}
}

func TestDiscoveryKeepsToCatalogReviewsInInitializingWithStandingData(t *testing.T) {
	s := newScene(t)
	s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(1))
	now := s.Emu.Now()
	// Another status, on the same catalog.
	notYet := s.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: s.def, Start: now.Add(time.Hour)})
	over := s.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: s.def, Start: now.Add(-3 * time.Hour)})
	// A catalog review of a catalog without standing data.
	other := "0f0e0d0c-0b0a-4909-8807-060504030201"
	otherDef := s.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Other", CatalogIDs: []string{other}})
	otherInst := s.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: otherDef, Start: now.Add(-time.Minute)})
	s.Emu.AddResource(other, graphemu.CatalogResource{DisplayName: "Other app"})
	// A review of groups.
	groupDef := s.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Groups", Scope: []byte(`{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/groups"}`)})
	s.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: groupDef, Start: now.Add(-time.Minute)})

	sum := s.run(t)
	if sum.Instances != 3 || sum.Covered != 1 || len(sum.Pairs) != 2 || len(sum.Catalogs) != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	if n := ops(s.World, "list-resources"); n != 1 {
		t.Fatalf("resource lists: %d, want 1 (only the catalog with standing data)", n)
	}
	for _, id := range []string{notYet, over, otherInst} {
		for _, res := range []string{s.withData, s.noData} {
			if _, err := s.Ledger.Review(context.Background(), id, res); err == nil {
				t.Fatalf("a review record for instance %s", id)
			}
		}
	}
	if rv := s.record(t, s.withData); rv.Status != ledger.ReviewComplete {
		t.Fatalf("record: %+v", rv)
	}
	if rv := s.record(t, s.noData); rv.Status != ledger.ReviewNoData {
		t.Fatalf("second resource: %+v", rv)
	}
}

func TestOverlappingRunsMakeOneSessionSendEachFileOnceAndCloseOnce(t *testing.T) {
	s := newScene(t)
	for _, f := range []string{"a.csv", "b.csv", "c.csv"} {
		s.PutStanding(s.standingKey(s.withData, f), csvRows(20))
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 4 {
		wg.Go(func() {
			if _, err := s.Discoverer(nil, nil).Run(context.Background()); err != nil {
				t.Log(err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	// A run that lost every race may leave work; one more run settles it.
	s.run(t)
	if n := ops(s.World, "create"); n != 1 {
		t.Fatalf("creates: %d", n)
	}
	if n := ops(s.World, "upload"); n != 3 {
		t.Fatalf("uploads: %d, want 3", n)
	}
	if n := ops(s.World, "patch"); n != 1 {
		t.Fatalf("patches: %d, want 1", n)
	}
	if rv := s.record(t, s.withData); rv.Status != ledger.ReviewComplete {
		t.Fatalf("record: %+v", rv)
	}
}

func TestARejectedExportFallsBackToTheLastReadyVersion(t *testing.T) {
	s := newScene(t)
	key := s.standingKey(s.withData, "access.csv")
	good := s.PutStanding(key, csvRows(4))
	s.PutStanding(key, badCSV())
	rep := s.Report(key)
	if rep.Status != review.Rejected || rep.FallbackVersionID != good.S3.Object.VersionID {
		t.Fatalf("report of the bad version: %+v", rep)
	}
	s.run(t)
	rv := s.record(t, s.withData)
	if rv.Status != ledger.ReviewComplete || len(rv.Files) != 1 || rv.Files[0].VersionID != good.S3.Object.VersionID || !rv.Files[0].Fallback {
		t.Fatalf("record: %+v", rv)
	}
	if g := s.Emu.Sessions(); len(g) != 1 || g[0].TotalBytes != int64(len(csvRows(4))) {
		t.Fatalf("sessions: %+v", g)
	}
}

func TestAStandingFileReplacedWhileItUploadsIsSentAsChosen(t *testing.T) {
	s := newScene(t)
	key := s.standingKey(s.withData, "access.csv")
	first := csvRows(200)
	s.PutStanding(key, first)
	var once sync.Once
	s.Emu.Inject(graphemu.Fault{Op: "upload", Delay: 300 * time.Millisecond, Match: func(*http.Request) bool {
		once.Do(func() {
			go s.Put(key, csvRows(7))
		})
		return true
	}})
	s.run(t)
	g := s.Emu.Sessions()
	if len(g) != 1 || len(g[0].Files) != 1 || g[0].TotalBytes != int64(len(first)) || !g[0].IsUploadDone {
		t.Fatalf("sessions: %+v", g)
	}
}

func TestFaultsOnTheReviewReadsAreRetried(t *testing.T) {
	cases := []struct {
		op   string
		flat int // ReviewsModes.FlatInstances: 400 makes the run list per definition
	}{
		{"list-instances", 0}, {"get-instance-definition", 0}, {"list-resources", 0},
		{"list-definitions", 400}, {"list-definition-instances", 400},
		{"create", 0}, {"upload", 0}, {"patch", 0},
	}
	for _, c := range cases {
		op := c.op
		for _, f := range []graphemu.Fault{{Status: 429, RetryAfter: "0"}, {Status: 503}, {ResetAfterBytes: 1}} {
			t.Run(fmt.Sprintf("%s/%d/%d", op, f.Status, f.ResetAfterBytes), func(t *testing.T) {
				s := newScene(t)
				s.Emu.SetReviewsModes(graphemu.ReviewsModes{FlatInstances: c.flat})
				s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
				f.Op = op
				s.Emu.Inject(f)
				s.run(t)
				if rv := s.record(t, s.withData); rv.Status != ledger.ReviewComplete {
					t.Fatalf("record: %+v", rv)
				}
				if n := ops(s.World, "upload"); n != 1 {
					t.Fatalf("uploads: %d", n)
				}
			})
		}
	}
}

func TestAMissingPermissionIsNamedAndFailsTheRun(t *testing.T) {
	for _, tt := range []struct{ op, perm string }{
		{"list-instances", "AccessReview.Read.All"},
		{"get-instance-definition", "AccessReview.Read.All"},
		{"list-resources", "EntitlementManagement.Read.All"},
	} {
		t.Run(tt.op, func(t *testing.T) {
			s := newScene(t)
			s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
			s.Emu.Inject(graphemu.Fault{Op: tt.op, Status: 403, Times: -1})
			sum, err := s.Discoverer(nil, nil).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.perm) {
				t.Fatalf("error %v, want one naming %s", err, tt.perm)
			}
			if len(sum.Missing) != 1 || sum.Missing[0] != tt.perm {
				t.Fatalf("missing: %v", sum.Missing)
			}
			if len(s.Emu.Sessions()) != 0 {
				t.Fatal("a session was created")
			}
		})
	}
}

func TestIngestChecksTheInstanceBeforeCreatingASession(t *testing.T) {
	s := newScene(t)
	target := review.Target{CatalogID: s.catalog, ResourceID: s.withData, ReviewDefinitionID: s.def, ReviewInstanceID: s.inst}
	s.Emu.SetInstanceStatus(s.inst, graphemu.InstanceInProgress)
	key := harness.KeyFor(target, "a.csv")
	if err := s.IngestRecords(context.Background(), s.Put(key, csvRows(2))); err != nil {
		t.Fatal(err)
	}
	rep := s.Report(key)
	if rep.Status != review.Late || len(rep.Errors) == 0 || rep.Errors[0].Message != "the review instance is InProgress: its upload window is over" {
		t.Fatalf("report: %+v", rep)
	}
	if len(s.Emu.Sessions()) != 0 || ops(s.World, "create") != 0 {
		t.Fatal("a session was created for an instance past Initializing")
	}

	// Throttling, server errors and resets on the read are retried.
	for i, f := range []graphemu.Fault{{Status: 429, RetryAfter: "0"}, {Status: 503}, {ResetAfterBytes: 1}} {
		f.Op = "get-instance"
		s.Emu.Inject(f)
		k := harness.KeyFor(target, fmt.Sprintf("retried-%d.csv", i))
		if err := s.IngestRecords(context.Background(), s.Put(k, csvRows(1))); err != nil {
			t.Fatal(err)
		}
		if rep := s.Report(k); rep.Status != review.Late {
			t.Fatalf("report after a %+v on the instance read: %+v", f, rep)
		}
	}

	// Without the permission, ingest goes on as before.
	s.Emu.SetInstanceStatus(s.inst, graphemu.InstanceInitializing)
	s.Emu.Inject(graphemu.Fault{Op: "get-instance", Status: 403, Times: -1})
	key2 := harness.KeyFor(target, "b.csv")
	if err := s.IngestRecords(context.Background(), s.Put(key2, csvRows(2))); err != nil {
		t.Fatal(err)
	}
	if rep := s.Report(key2); rep.Status != review.Uploaded {
		t.Fatalf("report without the permission: %+v", rep)
	}
}

func TestTheWindowIsAnchoredOnTheReviewStart(t *testing.T) {
	w := harness.New(t, harness.Options{})
	def := w.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Old review", CatalogIDs: []string{harness.Catalog}})
	started := w.Emu.Now().Add(-110 * time.Minute)
	inst := w.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: def, Start: started, Initializing: 4 * time.Hour})
	w.Emu.AddResource(harness.Catalog, graphemu.CatalogResource{ID: harness.Resource, DisplayName: "Door badges"})
	target := review.Target{CatalogID: harness.Catalog, ResourceID: harness.Resource, ReviewDefinitionID: def, ReviewInstanceID: inst}

	// A file in the drop zone: its session's window is the review's.
	if err := w.IngestRecords(context.Background(), w.Put(harness.KeyFor(target, "a.csv"), csvRows(2))); err != nil {
		t.Fatal(err)
	}
	rec, err := w.Ledger.Session(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	if want := started.Add(2 * time.Hour).UTC(); rec.WindowEnds.Sub(want).Abs() > time.Millisecond {
		t.Fatalf("window ends %v, want %v (the instance's start + 2h)", rec.WindowEnds, want)
	}
	// The finalizer closes it at the deadline, not after the quiet period.
	sum, err := w.Closer("fin").Run(context.Background())
	if err != nil || len(sum.Closed) != 1 || sum.Closed[0].Reason != review.ReasonDeadline {
		t.Fatalf("finalizer: %+v, %v", sum, err)
	}

	// Discovery records the same window in the review record.
	other := w.Emu.AddResource(harness.Catalog, graphemu.CatalogResource{DisplayName: "Second"})
	w.PutStanding("standing/"+harness.Catalog+"/"+other+"/x.csv", csvRows(1))
	if _, err := w.Discoverer(nil, nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rv, err := w.Ledger.Review(context.Background(), inst, other)
	if err != nil {
		t.Fatal(err)
	}
	if want := started.Add(2 * time.Hour).UTC(); rv.WindowEnds.Sub(want).Abs() > time.Millisecond || rv.Status != ledger.ReviewComplete {
		t.Fatalf("review record: %+v, want windowEnds %v", rv, want)
	}
}

// countingTransport counts S3 requests by method.
type countingTransport struct {
	rt                   http.RoundTripper
	gets, puts, lists, n atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	switch {
	case r.Method == http.MethodGet && (r.URL.Query().Has("list-type") || r.URL.Query().Has("versions")):
		c.lists.Add(1)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		c.gets.Add(1)
	default:
		c.puts.Add(1)
	}
	return c.rt.RoundTrip(r)
}

func counting(w *harness.World) (*s3.Client, *countingTransport) {
	ct := &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
	o := w.S3Client.Options()
	o.HTTPClient = &http.Client{Transport: ct}
	return s3.New(o), ct
}

func graphRequests(w *harness.World) (total int, byOp map[string]int) {
	byOp = map[string]int{}
	for _, r := range w.Emu.Journal() {
		if r.Op == "token" || r.Op == "discovery" {
			continue
		}
		total++
		byOp[r.Op]++
	}
	return total, byOp
}

func TestARunWithNothingToDoCostsOneGraphListAndAtMostOneS3List(t *testing.T) {
	w := harness.New(t, harness.Options{})
	def := w.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: "R", CatalogIDs: []string{harness.Catalog}})
	w.Emu.AddResource(harness.Catalog, graphemu.CatalogResource{ID: harness.Resource, DisplayName: "Door badges"})
	w.PutStanding("standing/"+harness.Catalog+"/"+harness.Resource+"/a.csv", csvRows(2))
	// No instance in Initializing.
	w.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: def, Start: w.Emu.Now().Add(24 * time.Hour)})
	s3c, ct := counting(w)
	w.Emu.ResetJournal()
	if _, err := w.Discoverer(nil, s3c).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	g, byOp := graphRequests(w)
	t.Logf("nothing to do (no instance Initializing): Graph %d %v, S3 %d (lists %d)", g, byOp, ct.n.Load(), ct.lists.Load())
	if g != 1 || ct.lists.Load() > 1 || ct.n.Load() > 1 {
		t.Fatalf("Graph %d %v, S3 %d: want one Graph list and at most one S3 list", g, byOp, ct.n.Load())
	}
	// An instance in Initializing of a catalog without standing data.
	otherDef := w.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: "O", CatalogIDs: []string{"0f0e0d0c-0b0a-4909-8807-060504030201"}})
	w.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: otherDef, Start: w.Emu.Now().Add(-time.Minute)})
	s3c, ct = counting(w)
	w.Emu.ResetJournal()
	if _, err := w.Discoverer(nil, s3c).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	g, byOp = graphRequests(w)
	t.Logf("nothing to do (a review of a catalog without standing data): Graph %d %v, S3 %d (lists %d)", g, byOp, ct.n.Load(), ct.lists.Load())
	if g != 1 || ct.lists.Load() != 1 || ct.n.Load() != 1 {
		t.Fatalf("Graph %d %v, S3 %d: want one Graph list and one S3 list", g, byOp, ct.n.Load())
	}
}

// TestDiscoveryCost measures a run over 50 Initializing instances across 5
// catalogs, each resource with 3 standing files, then the run after it.
func TestDiscoveryCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	w := harness.New(t, harness.Options{})
	const catalogs, perCatalog, files = 5, 10, 3
	for c := range catalogs {
		cat := fmt.Sprintf("c0000000-0000-4000-8000-%012d", c)
		def := w.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: fmt.Sprintf("Review %d", c), CatalogIDs: []string{cat}})
		res := w.Emu.AddResource(cat, graphemu.CatalogResource{DisplayName: fmt.Sprintf("App %d", c)})
		for f := range files {
			w.PutStanding(fmt.Sprintf("standing/%s/%s/f%d.csv", cat, res, f), csvRows(50))
		}
		for range perCatalog {
			w.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: def, Start: w.Emu.Now().Add(-5 * time.Minute)})
		}
	}
	pairs := catalogs * perCatalog
	for _, name := range []string{"first run", "second run (nothing left to send)"} {
		s3c, ct := counting(w)
		w.Emu.ResetJournal()
		d := w.Discoverer(nil, s3c)
		start := time.Now()
		sum, err := d.Run(context.Background())
		elapsed := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		g, byOp := graphRequests(w)
		t.Logf("%s: %d pairs, %d files sent, wall %v; Graph %d (%.1f per pair) %v; S3 %d (%.1f per pair: %d GET, %d PUT/DELETE, %d LIST)",
			name, len(sum.Pairs), sum.Uploaded, elapsed.Round(time.Millisecond), g, float64(g)/float64(pairs), byOp,
			ct.n.Load(), float64(ct.n.Load())/float64(pairs), ct.gets.Load(), ct.puts.Load(), ct.lists.Load())
		if len(sum.Pairs) != pairs {
			t.Fatalf("pairs: %d", len(sum.Pairs))
		}
	}
	if n := ops(w, "upload"); n != 0 {
		t.Fatalf("the second run uploaded %d", n)
	}
	if s := w.Emu.Sessions(); len(s) != pairs {
		t.Fatalf("sessions: %d", len(s))
	}
}

func TestTheReviewRecordFollowsASessionTheFinalizerEnds(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		s := newScene(t)
		s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
		s.Emu.Inject(graphemu.Fault{Op: "patch", Status: 503, Times: -1})
		s.run(t)
		if rv := s.record(t, s.withData); rv.Status != ledger.ReviewUploading || rv.Files[0].Status != "uploaded" {
			t.Fatalf("record while the close fails: %+v", rv)
		}
		s.Emu.ClearFaults()
		// After the closing lease of the failed PATCH has lapsed.
		closer := s.Closer("fin")
		closer.Now = func() time.Time { return time.Now().Add(3 * time.Minute) }
		sum, err := closer.Run(context.Background())
		if err != nil || len(sum.Closed) != 1 || sum.Closed[0].Reason != review.ReasonManifestComplete {
			t.Fatalf("finalizer: %+v, %v", sum, err)
		}
		if rv := s.record(t, s.withData); rv.Status != ledger.ReviewComplete || rv.ClosedAt.IsZero() {
			t.Fatalf("record after the finalizer closed it: %+v", rv)
		}
	})
	t.Run("expired", func(t *testing.T) {
		s := newScene(t)
		s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
		s.Emu.Inject(graphemu.Fault{Op: "patch", Status: 503, Times: -1})
		s.run(t)
		s.Emu.Advance(3 * time.Hour)
		closer := s.Closer("fin")
		closer.Now = s.Emu.Now
		if _, err := closer.Run(context.Background()); err != nil {
			t.Logf("finalizer: %v", err)
		}
		rv := s.record(t, s.withData)
		if rv.Status != ledger.ReviewExpired || rv.Files[0].Status != "expired" || !strings.Contains(rv.Message, "did not process") {
			t.Fatalf("record after the session expired: %+v", rv)
		}
		// The standing file's own report is about its version, not this
		// review: it stays ready for the next one.
		if rep := s.Report(s.standingKey(s.withData, "access.csv")); rep.Status != review.Ready {
			t.Fatalf("standing report after the review's session expired: %q, want ready", rep.Status)
		}
	})
}

func TestAnUploadWhoseAnswerWasLostIsNotSentAgain(t *testing.T) {
	s := newScene(t)
	s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
	// The upload lands in Graph, but its answer never comes back: as if
	// the run stopped right after sending it.
	s.Emu.Inject(graphemu.Fault{Op: "upload", DropResponse: true, Times: -1})
	if _, err := s.Discoverer(nil, nil).Run(context.Background()); err != nil {
		t.Logf("first run: %v", err)
	}
	s.Emu.ClearFaults()
	s.run(t)
	g := s.Emu.Sessions()
	if len(g) != 1 || len(g[0].Files) != 1 || !g[0].IsUploadDone {
		t.Fatalf("sessions: %+v, want one closed session with the file once", g)
	}
	if rv := s.record(t, s.withData); rv.Status != ledger.ReviewComplete {
		t.Fatalf("record: %+v", rv)
	}
}

func TestAReviewWhoseSessionEndedBeforeDiscoveryIsLate(t *testing.T) {
	s := newScene(t)
	target := review.Target{CatalogID: s.catalog, ResourceID: s.withData, ReviewDefinitionID: s.def, ReviewInstanceID: s.inst}
	// Someone sent the data through the drop zone, and the session closed.
	if err := s.IngestRecords(context.Background(), s.Put(harness.KeyFor(target, "manual.csv"), csvRows(2))); err != nil {
		t.Fatal(err)
	}
	if err := s.IngestRecords(context.Background(), s.Put(harness.KeyFor(target, "manifest.json"), []byte(`{"files":["manual.csv"]}`))); err != nil {
		t.Fatal(err)
	}
	if g := s.Emu.Sessions(); len(g) != 1 || !g[0].IsUploadDone {
		t.Fatalf("sessions: %+v", g)
	}
	s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
	s.run(t)
	rv := s.record(t, s.withData)
	if rv.Status != ledger.ReviewLate || !strings.Contains(rv.Message, "already complete") {
		t.Fatalf("record: %+v", rv)
	}
	if n := ops(s.World, "upload"); n != 1 {
		t.Fatalf("uploads: %d, want only the drop zone's", n)
	}
}

func TestARunNearItsDeadlineLeavesThePairsForTheNext(t *testing.T) {
	s := newScene(t)
	s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
	d := s.Discoverer(nil, nil)
	d.Margin = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := d.Run(ctx)
	if err != nil || len(sum.Deferred) != 2 || len(sum.Pairs) != 0 || len(s.Emu.Sessions()) != 0 {
		t.Fatalf("run within its margin: %+v, %v; want every pair deferred", sum, err)
	}
	if sum = s.run(t); len(sum.Pairs) != 2 {
		t.Fatalf("the next run: %+v", sum)
	}
}

func TestAReviewThatMovesOnBeforeItsSessionIsMadeIsLate(t *testing.T) {
	for _, op := range []string{"create", "upload"} {
		t.Run(op, func(t *testing.T) {
			s := newScene(t)
			s.PutStanding(s.standingKey(s.withData, "access.csv"), csvRows(3))
			// Listed in Initializing, then InProgress by the time of the
			// create (or upload), which Graph refuses.
			// (Match runs under the emulator's lock: the status changes
			// from another goroutine during the request's delay.)
			var once sync.Once
			s.Emu.Inject(graphemu.Fault{Op: op, Delay: 200 * time.Millisecond, Match: func(*http.Request) bool {
				once.Do(func() { go s.Emu.SetInstanceStatus(s.inst, graphemu.InstanceInProgress) })
				return true
			}})
			// Late is an outcome, not a failure of the run.
			if _, err := s.Discoverer(nil, nil).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			rv := s.record(t, s.withData)
			if rv.Status != ledger.ReviewLate || !strings.Contains(rv.Message, "the review instance is InProgress: its upload window is over") {
				t.Fatalf("record: %+v", rv)
			}
			if n := ops(s.World, "upload"); n != 0 {
				t.Fatalf("uploads: %d", n)
			}
			// A session made before the refusal expires empty later: the
			// record still says why nothing was sent.
			s.Emu.Advance(3 * time.Hour)
			closer := s.Closer("fin")
			closer.Now = s.Emu.Now
			if _, err := closer.Run(context.Background()); err != nil {
				t.Logf("finalizer: %v", err)
			}
			if rv := s.record(t, s.withData); rv.Status != ledger.ReviewLate {
				t.Fatalf("record after the empty session ended: %+v", rv)
			}
		})
	}
}
