package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

// The reviews `make local` drops files for. Review A is addressed with the
// canonical key layout; review B through a route when the settings have
// ROUTES (the route then gives its catalog and resource), else canonically.
var (
	ReviewA = review.Target{
		CatalogID:          "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c",
		ResourceID:         "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
		ReviewDefinitionID: "11111111-2222-4333-8444-555555555555",
		ReviewInstanceID:   "99999999-8888-4777-8666-555555555555",
	}
	ReviewB = review.Target{
		CatalogID:          "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c",
		ResourceID:         "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
		ReviewDefinitionID: "22222222-3333-4444-8555-666666666666",
		ReviewInstanceID:   "77777777-6666-4555-8444-333333333333",
	}
)

// The samples of events/data that Run drops.
const (
	SampleValid  = DefaultSample       // for review A and review B
	SampleValid2 = "door-access.csv"   // for review A
	SampleBadCSV = "bad-principal.csv" // for review A: a PrincipalId that is not a GUID
)

const (
	misplacedKey   = "misplaced.csv"  // dropped right under incoming/: a key that fits no layout
	manifestName   = "manifest.json"  // review A's manifest
	scheduledEvent = "scheduled.json" // the finalizer's event, in events/
	// runQuietPeriod is the finalizer's QUIET_PERIOD during Run, short so
	// that review B is closed within the run.
	runQuietPeriod = 2 * time.Second
	// quietSlack covers the clock difference between this process and the
	// ledger's upload timestamps when waiting for the quiet period.
	quietSlack       = 200 * time.Millisecond
	runInvokeTimeout = 5 * time.Minute // bounds each invocation
)

// Summary is what a Run left behind.
type Summary struct {
	// Sessions are the Graph emulator's sessions at the end.
	Sessions []graphemu.SessionView
	// Reports are every report in the state bucket.
	Reports []review.Report
	// Finalize is the finalizer run's JSON summary.
	Finalize json.RawMessage
	// Ledger holds the ledger's record of each session, by Graph session
	// id (missing when it could not be read).
	Ledger map[string]*ledger.Session
	// FunctionErrors lists the invocations that returned an error.
	FunctionErrors []string
	// Standing are the reports of the standing files dropped.
	Standing []review.Report
	// Reviews are the review records discovery wrote.
	Reviews []ledger.Review
	// Discover is the discovery run's JSON summary.
	Discover json.RawMessage
}

// ReviewsWith returns the review records of status.
func (s Summary) ReviewsWith(status ledger.ReviewStatus) []ledger.Review {
	var out []ledger.Review
	for _, r := range s.Reviews {
		if r.Status == status {
			out = append(out, r)
		}
	}
	return out
}

// Closed returns the sessions Graph holds as complete.
func (s Summary) Closed() []graphemu.SessionView {
	var out []graphemu.SessionView
	for _, v := range s.Sessions {
		if v.Status == "complete" {
			out = append(out, v)
		}
	}
	return out
}

// Rejected returns the reports of rejected files that give a reason.
func (s Summary) Rejected() []review.Report {
	var out []review.Report
	for _, r := range s.Reports {
		if r.Status == review.Rejected && len(r.Errors) > 0 && r.Errors[0].Message != "" {
			out = append(out, r)
		}
	}
	return out
}

// Check says whether the run met its expectations: at least one closed
// session, at least one rejected file with its reason, and no function
// error.
func (s Summary) Check() error {
	var problems []string
	if len(s.Closed()) == 0 {
		problems = append(problems, "no session was closed")
	}
	if len(s.Rejected()) == 0 {
		problems = append(problems, "no file was rejected with a reason")
	}
	if len(s.ReviewsWith(ledger.ReviewComplete)) == 0 {
		problems = append(problems, "discovery served no review from standing data")
	}
	if len(s.ReviewsWith(ledger.ReviewNoData)) == 0 {
		problems = append(problems, "discovery recorded no review without data")
	}
	if len(s.FunctionErrors) > 0 {
		problems = append(problems, fmt.Sprintf("%d invocation(s) returned an error", len(s.FunctionErrors)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the local run did not meet expectations: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Run runs the whole pipeline once (`make local`), saying what it does on
// out: it starts the environment, drops the samples of events/data under
// incoming/ and invokes ingest for each with the S3 event the bucket would
// send, waits for the finalizer's quiet period, invokes the finalizer with
// events/scheduled.json, prints a summary, and stops everything.
//
// The drops: review A gets two valid files, one invalid file and a
// manifest listing the two valid ones, so ingest closes its session as
// soon as the manifest is in; review B gets one valid file and no
// manifest, so the finalizer closes it after its quiet period (2s here);
// incoming/misplaced.csv fits no key layout and is rejected. It returns an
// error when the run did not meet the expectations of Summary.Check.
func Run(ctx context.Context, out io.Writer) (Summary, error) {
	return RunWith(ctx, Options{}, out)
}

// drop is one object Run puts and announces to ingest.
type drop struct {
	review string // "A", "B", or "" for a key of no review
	key    string
	sample string // the file of events/data, or "" when body is given
	body   []byte
}

// RunWith is Run with options (opts.Progress is out; Run's own settings
// override opts.FinalizeEnv).
func RunWith(ctx context.Context, opts Options, out io.Writer) (Summary, error) {
	var sum Summary
	opts.Progress = out
	opts.FinalizeEnv = append(opts.FinalizeEnv, "QUIET_PERIOD="+runQuietPeriod.String())
	e, err := Start(ctx, opts)
	if err != nil {
		return sum, err
	}
	stopped := false
	stop := func() {
		if !stopped {
			fmt.Fprintln(out, "stopping the runtime emulators, the Graph emulator and the S3 server")
			e.Close()
			stopped = true
		}
	}
	defer stop()
	scheduled, err := os.ReadFile(filepath.Join(e.Root, "events", scheduledEvent))
	if err != nil {
		return sum, fmt.Errorf("finalizer event: %w", err)
	}

	drops, err := e.plan()
	if err != nil {
		return sum, err
	}
	fmt.Fprintf(out, "dropping %d objects under %s and invoking %s for each with its S3 event:\n", len(drops), e.Settings.IncomingPrefix, IngestFunction)
	var lastB time.Time
	for _, d := range drops {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		body := d.body
		if d.sample != "" {
			if body, err = os.ReadFile(filepath.Join(e.Root, "events", "data", d.sample)); err != nil {
				return sum, fmt.Errorf("sample: %w", err)
			}
		}
		obj, err := e.Put(ctx, DropBucket, d.key, body)
		if err != nil {
			return sum, err
		}
		ictx, cancel := context.WithTimeout(ctx, runInvokeTimeout)
		res, err := e.Invoke(ictx, "ingest", PutEvent(obj))
		cancel()
		if err != nil {
			return sum, err
		}
		if d.review == "B" {
			lastB = time.Now()
		}
		label := "key of no review"
		if d.review != "" {
			label = "review " + d.review
		}
		line := fmt.Sprintf("  %-16s %-18s %5d bytes → ", label, path.Base(d.key), obj.Size)
		if res.FunctionError {
			sum.FunctionErrors = append(sum.FunctionErrors, fmt.Sprintf("%s %s: %s: %s", IngestFunction, d.key, res.ErrorType, res.ErrorMessage))
			fmt.Fprintf(out, "%sfunction error %s: %s\n", line, res.ErrorType, res.ErrorMessage)
			continue
		}
		r, err := e.Report(ctx, d.key)
		if err != nil {
			fmt.Fprintf(out, "%sno report: %v\n", line, err)
			continue
		}
		fmt.Fprintf(out, "%s%s\n", line, shortOutcome(*r))
	}

	if wait := time.Until(lastB.Add(runQuietPeriod + quietSlack)); !lastB.IsZero() && wait > 0 {
		fmt.Fprintf(out, "waiting %.1fs for the quiet period of review B (%s's QUIET_PERIOD=%s)…\n", wait.Seconds(), FinalizeFunction, runQuietPeriod)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return sum, ctx.Err()
		}
	}
	fmt.Fprintf(out, "invoking %s with events/%s…\n", FinalizeFunction, scheduledEvent)
	fctx, cancel := context.WithTimeout(ctx, runInvokeTimeout)
	res, err := e.Invoke(fctx, "finalize", scheduled)
	cancel()
	if err != nil {
		return sum, err
	}
	if res.FunctionError {
		sum.FunctionErrors = append(sum.FunctionErrors, fmt.Sprintf("%s: %s: %s", FinalizeFunction, res.ErrorType, res.ErrorMessage))
	}
	sum.Finalize = res.Payload

	if err := e.discovery(ctx, out, scheduled, &sum); err != nil {
		return sum, err
	}

	sum.Sessions = e.Emu.Sessions()
	if sum.Reports, err = e.Reports(ctx); err != nil {
		return sum, err
	}
	sum.Ledger = e.ledgerRecords(ctx, sum.Sessions)
	e.printSummary(out, sum, res)
	printDiscovery(out, sum)
	err = sum.Check()
	if err != nil {
		if logs := e.FunctionLogs(); logs != "" {
			fmt.Fprintf(out, "function logs (last part):\n%s\n\n", lastLines(logs, 60))
		}
	}
	if err != nil {
		stop()
		fmt.Fprintf(out, "FAILED: %v\n", err)
		return sum, err
	}
	if opts.KeepEnvFile == "" {
		stop()
	}
	fmt.Fprintf(out, "OK: %d session(s) closed, %d file(s) rejected with their reasons: the run met expectations\n", len(sum.Closed()), len(sum.Rejected()))
	if opts.KeepEnvFile != "" {
		stopped = true // keep stops everything itself
		return sum, e.keep(ctx, opts.KeepEnvFile, out)
	}
	return sum, nil
}

// keep stops the functions and the Graph emulator, writes the settings that
// reach the S3 server to envFile, and serves the buckets until ctx ends.
func (e *Env) keep(ctx context.Context, envFile string, out io.Writer) error {
	defer e.Close()
	e.fnOut.close()
	for _, r := range []*testenv.RIE{e.Ingest, e.Finalize} {
		if r != nil {
			r.Close()
		}
	}
	e.Ingest, e.Finalize = nil, nil
	if e.Emu != nil {
		e.Emu.Close()
		e.Emu = nil
	}
	var b strings.Builder
	b.WriteString("# The local S3 server of `make local KEEP=1`, while it runs.\n")
	for _, kv := range e.S3.Env() {
		b.WriteString(kv + "\n")
	}
	fmt.Fprintf(&b, "STATE_BUCKET=%s\nSTATE_PREFIX=%s\n", StateBucket, e.Settings.StatePrefix)
	if err := os.MkdirAll(filepath.Dir(envFile), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(envFile, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", envFile, err)
	}
	defer os.Remove(envFile)
	fmt.Fprintf(out, "\nKEEP=1: the S3 server on %s keeps the buckets %s and %s (the functions and the Graph emulator are stopped).\n", e.S3.Endpoint, DropBucket, StateBucket)
	fmt.Fprintf(out, "Its settings are in %s. In another shell:\n  make status LOCAL=1\nPress Ctrl-C to stop it.\n", envFile)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping the S3 server")
	return nil
}

// plan lays out the objects Run drops.
func (e *Env) plan() ([]drop, error) {
	prefix := e.Settings.IncomingPrefix
	keyA := prefix + ReviewA.CatalogID + "/" + ReviewA.ResourceID + "/" + ReviewA.ReviewDefinitionID + "/" + ReviewA.ReviewInstanceID + "/"
	keyB := prefix + ReviewB.CatalogID + "/" + ReviewB.ResourceID + "/" + ReviewB.ReviewDefinitionID + "/" + ReviewB.ReviewInstanceID + "/"
	if len(e.Settings.Routes) > 0 {
		names := make([]string, 0, len(e.Settings.Routes))
		for n := range e.Settings.Routes {
			names = append(names, n)
		}
		slices.Sort(names)
		keyB = prefix + names[0] + "/" + ReviewB.ReviewDefinitionID + "/" + ReviewB.ReviewInstanceID + "/"
	}
	manifest, err := json.Marshal(map[string][]string{"files": {SampleValid, SampleValid2}})
	if err != nil {
		return nil, err
	}
	return []drop{
		{review: "A", key: keyA + SampleValid, sample: SampleValid},
		{review: "A", key: keyA + SampleBadCSV, sample: SampleBadCSV},
		{review: "A", key: keyA + SampleValid2, sample: SampleValid2},
		{review: "B", key: keyB + SampleValid, sample: SampleValid},
		{review: "", key: prefix + misplacedKey, sample: SampleValid},
		{review: "A", key: keyA + manifestName, body: manifest},
	}, nil
}

// ledgerRecords reads the ledger's record of each session.
func (e *Env) ledgerRecords(ctx context.Context, sessions []graphemu.SessionView) map[string]*ledger.Session {
	led := ledger.New(&blob.S3{Client: e.S3Client, Bucket: StateBucket}, e.Settings.StatePrefix)
	out := map[string]*ledger.Session{}
	for _, s := range sessions {
		t := review.Target{CatalogID: s.CatalogID, ResourceID: s.ResourceID, ReviewInstanceID: s.ReviewInstanceID}
		if rec, err := led.Session(ctx, t); err == nil {
			out[s.ID] = rec
		}
	}
	return out
}

// closeNote says why the ledger ended a session: the close reason
// (manifest-complete, quiet-period, deadline) or the expiry note.
func closeNote(rec *ledger.Session) string {
	switch {
	case rec == nil:
		return ""
	case rec.CloseReason != "":
		return ", closed: " + rec.CloseReason
	case rec.State == ledger.Expired:
		return ", expired: " + rec.Note
	}
	return ", ledger: " + string(rec.State)
}

// shortOutcome is one report in a few words.
func shortOutcome(r review.Report) string {
	s := string(r.Status)
	switch {
	case len(r.Errors) > 0:
		s += ": " + r.Errors[0].Error()
	case r.Status == review.Uploaded && strings.HasSuffix(r.Key, "/"+manifestName):
		s += fmt.Sprintf(" (manifest of %d files)", r.Rows)
	case r.Status == review.Uploaded:
		s += fmt.Sprintf(" (%d rows)", r.Rows)
	}
	return s
}

func (e *Env) printSummary(out io.Writer, sum Summary, fin testenv.InvokeResult) {
	labels := map[string]string{
		strings.ToLower(ReviewA.ReviewInstanceID): "A", strings.ToLower(ReviewB.ReviewInstanceID): "B",
	}
	fmt.Fprintf(out, "\n== Summary ==\n\nSessions (Graph emulator): %d\n", len(sum.Sessions))
	for _, s := range sum.Sessions {
		label := labels[strings.ToLower(s.ReviewInstanceID)]
		if label != "" {
			label = "review " + label + ", "
		}
		fmt.Fprintf(out, "  %s  %s (isUploadDone %t)%s\n", s.ID, s.Status, s.IsUploadDone, closeNote(sum.Ledger[s.ID]))
		fmt.Fprintf(out, "      %sinstance %s, catalog %s, resource %s\n", label, s.ReviewInstanceID, s.CatalogID, s.ResourceID)
		for _, f := range s.Files {
			fmt.Fprintf(out, "      file %-22s %6d bytes\n", f.Name, f.Size)
		}
	}
	fmt.Fprintf(out, "\nReports (s3://%s/%sreports/): %d\n", StateBucket, e.Settings.StatePrefix, len(sum.Reports))
	for _, r := range sum.Reports {
		fmt.Fprintf(out, "  %s\n", r.Key)
		printReport(out, "      ", r)
	}
	fmt.Fprintf(out, "\nFinalize run (%s's answer):\n", FinalizeFunction)
	if fin.FunctionError {
		fmt.Fprintf(out, "  function error: %s: %s\n", fin.ErrorType, fin.ErrorMessage)
	}
	fmt.Fprintf(out, "  %s\n\n", indentJSON(sum.Finalize, "  "))
}

// printReport prints one report's outcome, each line starting with indent.
func printReport(out io.Writer, indent string, r review.Report) {
	fmt.Fprintf(out, "%s%s", indent, r.Status)
	switch {
	case strings.HasSuffix(r.Key, "/"+manifestName) && r.Status == review.Uploaded:
		fmt.Fprintf(out, ": manifest listing %d files", r.Rows)
	case r.Status != review.Rejected && (r.Rows > 0 || r.Bytes > 0):
		fmt.Fprintf(out, ": %d rows, %d bytes", r.Rows, r.Bytes)
	}
	if r.SessionID != "" {
		fmt.Fprintf(out, ", session %s", r.SessionID)
	}
	fmt.Fprintln(out)
	for _, fe := range r.Errors {
		fmt.Fprintf(out, "%s  %s\n", indent, fe.Error())
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The catalog review that discovery serves in Run: a review of the route's
// catalog (ReviewA's when there are no routes), started a minute ago, over
// two custom data provided resources, the route's with standing data and
// NoDataResource without.
const (
	DiscoveryDefinition = "d15c0000-0000-4000-8000-00000000000d"
	DiscoveryInstance   = "d15c0000-0000-4000-8000-0000000000a1"
	NoDataResource      = "d15c0000-0000-4000-8000-0000000000b2"
)

// discovery starts a catalog review in the emulator, drops standing data
// for one of its resources (ingest validates it), and invokes the discover
// function once.
func (e *Env) discovery(ctx context.Context, out io.Writer, scheduled []byte, sum *Summary) error {
	if e.Discover == nil {
		return nil
	}
	catalog, resource, source := ReviewA.CatalogID, ReviewA.ResourceID, "Badge system"
	for _, r := range e.Settings.Routes {
		catalog, resource, source = r.CatalogID, r.ResourceID, r.Source
		break
	}
	e.Emu.AddDefinition(graphemu.ReviewDefinition{ID: DiscoveryDefinition, DisplayName: "Quarterly catalog review", CatalogIDs: []string{catalog}})
	e.Emu.AddInstance(graphemu.ReviewInstance{ID: DiscoveryInstance, DefinitionID: DiscoveryDefinition, Start: e.Emu.Now().Add(-time.Minute)})
	e.Emu.AddResource(catalog, graphemu.CatalogResource{ID: resource, DisplayName: source})
	e.Emu.AddResource(catalog, graphemu.CatalogResource{ID: NoDataResource, DisplayName: "Legacy payroll"})
	fmt.Fprintf(out, "started review instance %s (catalog %s) in the Graph emulator: resources %q and \"Legacy payroll\"\n", DiscoveryInstance, catalog, source)

	body, err := os.ReadFile(filepath.Join(e.Root, "events", "data", "badge-access.csv"))
	if err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	key := e.Settings.StandingPrefix + catalog + "/" + resource + "/badge-access.csv"
	obj, err := e.Put(ctx, DropBucket, key, body)
	if err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, runInvokeTimeout)
	res, err := e.Invoke(ictx, "ingest", PutEvent(obj))
	cancel()
	if err != nil {
		return err
	}
	if res.FunctionError {
		sum.FunctionErrors = append(sum.FunctionErrors, fmt.Sprintf("%s %s: %s: %s", IngestFunction, key, res.ErrorType, res.ErrorMessage))
	}
	if r, err := e.Report(ctx, key); err == nil {
		sum.Standing = append(sum.Standing, *r)
		fmt.Fprintf(out, "  standing %-18s %5d bytes → %s\n", path.Base(key), obj.Size, r.Status)
	}

	fmt.Fprintf(out, "invoking %s with events/%s…\n", DiscoverFunction, scheduledEvent)
	dctx, cancel := context.WithTimeout(ctx, runInvokeTimeout)
	res, err = e.Invoke(dctx, "discover", scheduled)
	cancel()
	if err != nil {
		return err
	}
	if res.FunctionError {
		sum.FunctionErrors = append(sum.FunctionErrors, fmt.Sprintf("%s: %s: %s", DiscoverFunction, res.ErrorType, res.ErrorMessage))
	}
	sum.Discover = res.Payload
	led := ledger.New(&blob.S3{Client: e.S3Client, Bucket: StateBucket}, e.Settings.StatePrefix)
	for _, r := range []string{resource, NoDataResource} {
		if rv, err := led.Review(ctx, DiscoveryInstance, r); err == nil {
			sum.Reviews = append(sum.Reviews, *rv)
		}
	}
	return nil
}

// printDiscovery prints the standing reports, the review records and the
// files of the sessions discovery made.
func printDiscovery(out io.Writer, sum Summary) {
	if len(sum.Reviews) == 0 && len(sum.Standing) == 0 {
		return
	}
	fmt.Fprintf(out, "\nStanding data (reports):\n")
	for _, r := range sum.Standing {
		fmt.Fprintf(out, "  %s: %s, %d rows, version %s\n", r.Key, r.Status, r.Rows, r.VersionID)
	}
	fmt.Fprintf(out, "\nReview records (%s's work):\n", DiscoverFunction)
	for _, rv := range sum.Reviews {
		fmt.Fprintf(out, "  review %q, resource %q: %s", rv.ReviewName, rv.ResourceName, rv.Status)
		if rv.SessionID != "" {
			fmt.Fprintf(out, ", session %s", rv.SessionID)
		}
		fmt.Fprintf(out, ", window ends %s\n", rv.WindowEnds.Format(time.RFC3339))
		for _, f := range rv.Files {
			fmt.Fprintf(out, "    %s (version %s): %s, %d bytes, %d rows\n", f.Key, f.VersionID, f.Status, f.Bytes, f.Rows)
		}
		if rv.Message != "" {
			fmt.Fprintf(out, "    %s\n", rv.Message)
		}
		for _, g := range sum.Sessions {
			if g.ID == rv.SessionID && rv.SessionID != "" {
				names := make([]string, 0, len(g.Files))
				for _, f := range g.Files {
					names = append(names, f.Name)
				}
				fmt.Fprintf(out, "    Graph session %s: %s, files %s\n", g.ID, g.Status, strings.Join(names, ", "))
			}
		}
	}
}
