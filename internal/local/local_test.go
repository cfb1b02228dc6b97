package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/discover"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/local"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

// The sample key of events/s3-put.json and its neighbours.
const sampleDir = "incoming/6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d/11111111-2222-4333-8444-555555555555/99999999-8888-4777-8666-555555555555/"

// Building a bootstrap takes a while: each is built once per test binary,
// into a directory TestMain removes.
var (
	buildDir string
	builds   sync.Map // name -> *build
)

type build struct {
	once sync.Once
	b    local.Bootstraps
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func built(t *testing.T, name string, fn func(ctx context.Context, dir string) (local.Bootstraps, error)) local.Bootstraps {
	t.Helper()
	v, _ := builds.LoadOrStore(name, &build{})
	b := v.(*build)
	b.once.Do(func() {
		if buildDir == "" {
			if buildDir, b.err = os.MkdirTemp("", "byodrop-local-test-"); b.err != nil {
				return
			}
		}
		start := time.Now()
		b.b, b.err = fn(context.Background(), filepath.Join(buildDir, name))
		t.Logf("built %s bootstraps in %v", name, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.b
}

// hostBootstraps are both functions built for the host.
func hostBootstraps(t *testing.T) *local.Bootstraps {
	b := built(t, "host", func(ctx context.Context, dir string) (local.Bootstraps, error) {
		return local.BuildBootstraps(ctx, dir, "")
	})
	return &b
}

func requireTools(t *testing.T) {
	t.Helper()
	testenv.RequireTool(t, "versitygw")
	testenv.RequireTool(t, "aws-lambda-rie")
}

// startEnv starts a local environment on the host bootstraps; it stops
// when t ends, after checking that no function panicked.
func startEnv(t *testing.T, opts local.Options) *local.Env {
	t.Helper()
	requireTools(t)
	if opts.Bootstraps == nil {
		opts.Bootstraps = hostBootstraps(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := local.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logs := e.FunctionLogs()
		for _, bad := range []string{"panic", "runtime error"} {
			if strings.Contains(logs, bad) {
				t.Errorf("the function logs contain %q", bad)
			}
		}
		if t.Failed() {
			t.Logf("function logs:\n%s", logs)
		}
		e.Close()
	})
	return e
}

func readEvent(t *testing.T, name string) []byte {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// deliver seeds the event's objects and invokes function with it; a
// function error fails the test.
func deliver(t *testing.T, e *local.Env, function, event string) testenv.InvokeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	payload, _, err := e.SeedEvent(ctx, readEvent(t, event))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Invoke(ctx, function, payload)
	if err != nil {
		t.Fatal(err)
	}
	if res.FunctionError {
		t.Fatalf("%s with %s: function error %s: %s", function, event, res.ErrorType, res.ErrorMessage)
	}
	return res
}

func report(t *testing.T, e *local.Env, key string) review.Report {
	t.Helper()
	r, err := e.Report(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return *r
}

// graphCalls counts the emulator's requests other than token requests.
func graphCalls(emu *graphemu.Server) int {
	n := 0
	for _, r := range emu.Journal() {
		if r.Op != "token" {
			n++
		}
	}
	return n
}

func sessionFiles(emu *graphemu.Server) []string {
	var names []string
	for _, s := range emu.Sessions() {
		for _, f := range s.Files {
			names = append(names, f.Name)
		}
	}
	return names
}

// eventExpectations says, for every file of events/, what invoking it
// against the bootstraps under the runtime emulator must give. A new event
// file without an entry here fails the test.
var eventExpectations = map[string]struct {
	env   local.Options
	check func(t *testing.T, e *local.Env)
}{
	"s3-put.json": {check: func(t *testing.T, e *local.Env) {
		res := deliver(t, e, "ingest", "s3-put.json")
		if !bytes.Contains(res.Payload, []byte(`"status":"uploaded"`)) {
			t.Errorf("response %s, want the record's outcome", res.Payload)
		}
		r := report(t, e, sampleDir+"badge-access.csv")
		if r.Status != review.Uploaded || r.Rows != 5 || r.Bytes != 1045 || r.SessionID == "" {
			t.Errorf("report %+v, want uploaded, 5 rows, 1045 bytes, a session", r)
		}
		if got := sessionFiles(e.Emu); !slices.Equal(got, []string{"badge-access.csv"}) {
			t.Errorf("files in Graph %q, want [badge-access.csv]", got)
		}
	}},
	"s3-put-encoded.json": {check: func(t *testing.T, e *local.Env) {
		deliver(t, e, "ingest", "s3-put-encoded.json")
		const name = "Badge access (2026) + extra.csv"
		if r := report(t, e, sampleDir+name); r.Status != review.Uploaded {
			t.Errorf("report of the decoded key: %+v, want uploaded", r)
		}
		if got := sessionFiles(e.Emu); !slices.Equal(got, []string{name}) {
			t.Errorf("files in Graph %q, want [%s] (the decoded name)", got, name)
		}
	}},
	"s3-put-duplicate.json": {check: func(t *testing.T, e *local.Env) {
		// The first delivery, then the duplicate announcing the same
		// object version again.
		deliver(t, e, "ingest", "s3-put.json")
		deliver(t, e, "ingest", "s3-put-duplicate.json")
		if r := report(t, e, sampleDir+"badge-access.csv"); r.Status != review.Duplicate {
			t.Errorf("report %+v, want duplicate", r)
		}
		if got := sessionFiles(e.Emu); len(got) != 1 {
			t.Errorf("files in Graph %q, want exactly one", got)
		}
		if n := e.Emu.Count("upload", 0); n != 1 {
			t.Errorf("%d uploads, want 1", n)
		}
	}},
	"s3-put-bad-principal.json": {check: func(t *testing.T, e *local.Env) {
		deliver(t, e, "ingest", "s3-put-bad-principal.json")
		r := report(t, e, sampleDir+"bad-principal.csv")
		want := review.FieldError{Line: 4, Column: "PrincipalId", Message: `not a GUID: "bob"`}
		if r.Status != review.Rejected || len(r.Errors) != 1 || r.Errors[0] != want {
			t.Errorf("report %+v, want rejected with %+v", r, want)
		}
		if n := e.Emu.Count("upload", 0); n != 0 {
			t.Errorf("%d uploads of a rejected file, want none", n)
		}
	}},
	"s3-test-event.json": {check: func(t *testing.T, e *local.Env) {
		res := deliver(t, e, "ingest", "s3-test-event.json")
		if n := graphCalls(e.Emu); n != 0 {
			t.Errorf("%d Graph requests for a test event, want none: %+v", n, e.Emu.Journal())
		}
		if string(bytes.TrimSpace(res.Payload)) != `{"objects":[]}` {
			t.Errorf("response %s, want no object handled", res.Payload)
		}
	}},
	"s3-put-standing.json": {check: func(t *testing.T, e *local.Env) {
		// A standing file validated on drop, then a review of its
		// catalog served from it by the discover function.
		deliver(t, e, "ingest", "s3-put-standing.json")
		if r := report(t, e, "standing/badges/badge-access.csv"); r.Status != review.Ready || r.Rows != 5 {
			t.Errorf("report %+v, want ready, 5 rows", r)
		}
		if n := graphCalls(e.Emu); n != 0 {
			t.Errorf("%d Graph requests for a standing drop, want none", n)
		}
		def := e.Emu.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Catalog review", CatalogIDs: []string{local.ReviewA.CatalogID}})
		inst := e.Emu.AddInstance(graphemu.ReviewInstance{DefinitionID: def, Start: e.Emu.Now().Add(-time.Minute)})
		e.Emu.AddResource(local.ReviewA.CatalogID, graphemu.CatalogResource{ID: local.ReviewA.ResourceID, DisplayName: "Badge system"})
		res := deliver(t, e, "discover", "scheduled.json")
		var sum discover.Summary
		if err := json.Unmarshal(res.Payload, &sum); err != nil {
			t.Fatalf("response %s is not a discover summary: %v", res.Payload, err)
		}
		if len(sum.Pairs) != 1 || sum.Pairs[0].Status != ledger.ReviewComplete || sum.Pairs[0].ReviewInstanceID != inst || sum.Uploaded != 1 {
			t.Errorf("summary %s, want one review served and closed", res.Payload)
		}
		if got := sessionFiles(e.Emu); !slices.Equal(got, []string{"badge-access.csv"}) {
			t.Errorf("files in Graph %q, want [badge-access.csv]", got)
		}
	}},
	"scheduled.json": {
		// A session whose quiet period has passed, so the run has
		// something to close.
		env: local.Options{FinalizeEnv: []string{"QUIET_PERIOD=1ms"}},
		check: func(t *testing.T, e *local.Env) {
			deliver(t, e, "ingest", "s3-put.json")
			res := deliver(t, e, "finalize", "scheduled.json")
			var sum finalize.Summary
			if err := json.Unmarshal(res.Payload, &sum); err != nil {
				t.Fatalf("response %s is not a finalize summary: %v", res.Payload, err)
			}
			if sum.Checked != 1 || len(sum.Closed) != 1 || sum.Closed[0].Reason != review.ReasonQuietPeriod || len(sum.Errors) != 0 {
				t.Errorf("summary %s, want one session checked and closed after its quiet period", res.Payload)
			}
			if s := e.Emu.Sessions(); len(s) != 1 || s[0].Status != "complete" {
				t.Errorf("sessions %+v, want one complete", s)
			}
		},
	},
}

func TestEveryEventFileGivesItsExpectedOutcomeUnderTheRuntimeEmulator(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if name := filepath.Base(f); name != "env.json" {
			names = append(names, name)
		}
	}
	if len(names) < len(eventExpectations) {
		t.Errorf("events/ has %v, want at least every file of the expectations", names)
	}
	for name := range eventExpectations {
		if !slices.Contains(names, name) {
			t.Errorf("events/%s is missing", name)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			exp, ok := eventExpectations[name]
			if !ok {
				t.Fatalf("no expectation for events/%s: add one to eventExpectations", name)
			}
			e := startEnv(t, exp.env)
			exp.check(t, e)
		})
	}
}

func TestRunClosesSessionsRejectsBadFilesAndStopsEverything(t *testing.T) {
	requireTools(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := local.RunWith(ctx, local.Options{Bootstraps: hostBootstraps(t)}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}

	closed := map[string]int{} // review instance -> files
	for _, s := range sum.Closed() {
		closed[s.ReviewInstanceID] = len(s.Files)
	}
	want := map[string]int{local.ReviewA.ReviewInstanceID: 2, local.ReviewB.ReviewInstanceID: 1, local.DiscoveryInstance: 1}
	if len(closed) != 3 || closed[local.ReviewA.ReviewInstanceID] != 2 || closed[local.ReviewB.ReviewInstanceID] != 1 || closed[local.DiscoveryInstance] != 1 {
		t.Errorf("closed sessions (instance -> files) %v, want %v", closed, want)
	}
	// Discovery: the standing file is ready, one resource served from it
	// and closed, the other recorded without data.
	if len(sum.Standing) != 1 || sum.Standing[0].Status != review.Ready {
		t.Errorf("standing reports: %+v", sum.Standing)
	}
	if c, n := sum.ReviewsWith(ledger.ReviewComplete), sum.ReviewsWith(ledger.ReviewNoData); len(c) != 1 || len(n) != 1 ||
		len(c[0].Files) != 1 || c[0].Files[0].Status != "uploaded" || n[0].ResourceID != local.NoDataResource {
		t.Errorf("review records: %+v", sum.Reviews)
	}
	for _, line := range []string{"Review records (DiscoverFunction's work):", "no-data", "complete, session"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the summary lacks %q", line)
		}
	}
	reasons := map[string]string{}
	for _, rec := range sum.Ledger {
		reasons[rec.Target.ReviewInstanceID] = rec.CloseReason
	}
	if reasons[local.DiscoveryInstance] != review.ReasonManifestComplete {
		t.Errorf("discovery's session closed by %q, want at once when its files are in", reasons[local.DiscoveryInstance])
	}
	if reasons[local.ReviewA.ReviewInstanceID] != review.ReasonManifestComplete || reasons[local.ReviewB.ReviewInstanceID] != review.ReasonQuietPeriod {
		t.Errorf("close reasons %v, want review A by its manifest and review B after its quiet period", reasons)
	}

	rejected := map[string]review.FieldError{}
	for _, r := range sum.Rejected() {
		rejected[r.Key[strings.LastIndexByte(r.Key, '/')+1:]] = r.Errors[0]
	}
	if fe := rejected["bad-principal.csv"]; fe.Line != 4 || fe.Column != "PrincipalId" || !strings.Contains(fe.Message, "not a GUID") {
		t.Errorf("bad-principal.csv rejected with %+v, want line 4, column PrincipalId, not a GUID", fe)
	}
	if _, ok := rejected["misplaced.csv"]; !ok {
		t.Errorf("incoming/misplaced.csv not rejected with a reason; rejected: %v", rejected)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "OK:") || !strings.Contains(last, "met expectations") {
		t.Errorf("last line %q, want the OK line", last)
	}
	for _, want := range []string{`line 4, column PrincipalId: not a GUID: "bob"`, "quiet-period", "manifest-complete", `"checked": 1`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// Everything Run started is stopped: nothing listens on the addresses
	// it printed any more.
	addrs := regexp.MustCompile(`https?://127\.0\.0\.1:\d+`).FindAllString(out.String(), -1)
	if len(addrs) < 4 {
		t.Fatalf("found %d addresses in the output, want the S3 server, the Graph emulator and two runtime emulators", len(addrs))
	}
	for _, a := range addrs {
		u, _ := url.Parse(a)
		if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Run returned", a)
		}
	}
}

func TestInvokePrintsSeedingResponseAndReport(t *testing.T) {
	requireTools(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		function string
		events   []string
		wantErr  bool
		want     []string
	}{
		{
			name: "a put event is seeded with the real object and reported", function: "ingest",
			events: []string{"s3-put-encoded.json"},
			want: []string{
				"seeded s3://byodrop-local/" + sampleDir + "Badge access (2026) + extra.csv from events/data/badge-access.csv",
				"versionId rewritten to the stored object's", "response (request ", "uploaded: 5 rows, 1045 bytes",
			},
		},
		{
			name: "a repeated event in the same run is a duplicate", function: "ingest",
			events: []string{"s3-put.json", "s3-put-duplicate.json"},
			want:   []string{"is already in the bucket", "duplicate, session "},
		},
		{
			name: "a rejected file is a report, not a function error", function: "ingest",
			events: []string{"s3-put-bad-principal.json"},
			want:   []string{"rejected", `line 4, column PrincipalId: not a GUID: "bob"`},
		},
		{
			name: "the scheduled event prints the finalize summary", function: "finalize",
			events: []string{"scheduled.json"},
			want:   []string{"invoking FinalizeFunction with", `"checked": 0`},
		},
		{
			name: "a manifest event without a sample gets a generated manifest", function: "ingest",
			events: []string{"!" + string(local.PutEvent(local.Object{
				Bucket: local.DropBucket, Key: sampleDir + "manifest.json", Size: 1, ETag: "0", VersionID: "sample",
			}))},
			want: []string{"from (generated manifest)", "eTag, versionId, size rewritten", "uploaded: manifest listing 1 files"},
		},
		{
			name: "an event the function refuses is an error", function: "ingest",
			events: []string{"!" + `{"Records": "not a list"}`}, wantErr: true,
			want: []string{"function error (request "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []string
			for _, ev := range tt.events {
				if content, ok := strings.CutPrefix(ev, "!"); ok {
					// An event written for the test.
					p := filepath.Join(t.TempDir(), "event.json")
					if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
					files = append(files, p)
					continue
				}
				files = append(files, filepath.Join(root, "events", ev))
			}
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			err := local.InvokeWith(ctx, local.Options{Bootstraps: hostBootstraps(t)}, tt.function, files, &out)
			if (err != nil) != tt.wantErr {
				t.Errorf("error %v, want error: %t", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if strings.Contains(out.String(), "panic") {
				t.Error("output mentions a panic")
			}
			if t.Failed() {
				t.Logf("output:\n%s", out.String())
			}
		})
	}
}
