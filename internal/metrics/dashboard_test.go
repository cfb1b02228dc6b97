package metrics_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/discover"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/metrics"
	"github.com/byodrop/byodrop/internal/review"
)

// recordedNames returns the names of the metrics the Recorder writes after
// record.
func recordedNames(t *testing.T, record func(r *metrics.Recorder)) []string {
	t.Helper()
	var buf bytes.Buffer
	r := newRecorder(&buf)
	record(r)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	names := slices.Collect(maps.Keys(totals(t, decode(t, buf.String()))))
	slices.Sort(names)
	return names
}

func names(ms []metrics.Metric) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Each function's entry of Written is exactly what the Recorder writes for
// every call that function makes (internal/app and internal/ingest): the
// alarms and the dashboard rely on the table.
func TestWrittenIsWhatTheFunctionsRecord(t *testing.T) {
	for _, tc := range []struct {
		function string
		calls    func(r *metrics.Recorder)
	}{
		{metrics.IngestFunction, func(r *metrics.Recorder) {
			// Every outcome ingest reports for an object.
			for _, s := range []review.Status{review.Uploaded, review.Rejected, review.Duplicate, review.Late, review.Failed} {
				r.Object(s, 10, 1, time.Millisecond)
			}
			// A manifest made the session complete: ingest closes it, or
			// learns from Graph that it expired.
			r.SessionEnded(finalize.Outcome{Action: finalize.Closed, Files: 2})
			r.SessionEnded(finalize.Outcome{Action: finalize.MarkExpired, Files: 2})
			r.GraphRetry()
			// Standing files validated on drop.
			r.Standing(review.Ready)
			r.Standing(review.Rejected)
		}},
		{metrics.DiscoverFunction, func(r *metrics.Recorder) {
			r.Discovered(discover.Summary{})
			r.GraphRetry()
		}},
		{metrics.FinalizeFunction, func(r *metrics.Recorder) {
			r.Finalized(finalize.Summary{
				Checked: 2,
				Closed:  []finalize.Outcome{{Action: finalize.Closed, Files: 1}},
				Expired: []finalize.Outcome{{Action: finalize.MarkExpired, Files: 1}},
			})
			r.GraphRetry()
		}},
	} {
		t.Run(tc.function, func(t *testing.T) {
			got := recordedNames(t, tc.calls)
			if want := names(metrics.Written[tc.function]); !slices.Equal(got, want) {
				t.Errorf("%s writes %v; metrics.Written says %v", tc.function, got, want)
			}
		})
	}
	if got := metrics.Functions(); !slices.Equal(got, []string{metrics.DiscoverFunction, metrics.FinalizeFunction, metrics.IngestFunction}) {
		t.Errorf("functions %v: a new function needs its row in this test", got)
	}
}

func TestAllListsEachMetricOnce(t *testing.T) {
	all := metrics.All()
	if got := names(all); len(got) != len(all) {
		t.Errorf("All() has duplicates: %v", all)
	}
	for _, fn := range metrics.Functions() {
		for _, m := range metrics.Written[fn] {
			if !slices.Contains(all, m) {
				t.Errorf("%s of %s missing from All()", m.Name, fn)
			}
		}
	}
}

// dashboardLine is one metric line of a widget.
type dashboardLine struct {
	namespace, name, dimension, value, stat string
}

type dashboardWidget struct {
	Type          string
	X, Y          int
	Width, Height int
	Properties    struct {
		Title   string
		Stat    string
		Period  int
		Region  string
		Metrics [][]json.RawMessage
	}
}

func parseDashboard(t *testing.T, body string) ([]dashboardWidget, []dashboardLine) {
	t.Helper()
	var d struct{ Widgets []dashboardWidget }
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("dashboard body is not JSON: %v\n%s", err, body)
	}
	var lines []dashboardLine
	for _, w := range d.Widgets {
		for _, raw := range w.Properties.Metrics {
			if len(raw) != 5 {
				t.Fatalf("widget %q: line %s: want namespace, name, dimension, value, options", w.Properties.Title, raw)
			}
			var l dashboardLine
			for i, dst := range []*string{&l.namespace, &l.name, &l.dimension, &l.value} {
				if err := json.Unmarshal(raw[i], dst); err != nil {
					t.Fatalf("widget %q: line element %s is not a string", w.Properties.Title, raw[i])
				}
			}
			var opts struct{ Stat, Label string }
			if err := json.Unmarshal(raw[4], &opts); err != nil || opts.Label == "" {
				t.Errorf("widget %q: options %s: want a label", w.Properties.Title, raw[4])
			}
			l.stat = cmpOr(opts.Stat, w.Properties.Stat)
			lines = append(lines, l)
		}
	}
	return d.Widgets, lines
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// The dashboard shows every metric a function writes, under that
// function's dimension, and nothing else of the byodrop namespace.
func TestDashboardShowsEveryMetricWritten(t *testing.T) {
	widgets, lines := parseDashboard(t, metrics.Dashboard())
	shown := map[string]bool{}
	for _, l := range lines {
		if l.namespace != metrics.Namespace {
			continue
		}
		if l.dimension != metrics.Dimension {
			t.Errorf("%s: dimension %q, want %q", l.name, l.dimension, metrics.Dimension)
		}
		fn, ok := strings.CutPrefix(l.value, "${")
		fn, ok2 := strings.CutSuffix(fn, "}")
		if !ok || !ok2 {
			t.Errorf("%s: dimension value %q, want ${<function logical id>}", l.name, l.value)
			continue
		}
		if !metrics.Writes(fn, metrics.Metric{Name: l.name, Unit: unitOf(l.name)}) {
			t.Errorf("the dashboard shows %s of %s, which that function never writes", l.name, fn)
		}
		shown[fn+" "+l.name] = true
	}
	for _, fn := range metrics.Functions() {
		for _, m := range metrics.Written[fn] {
			if !shown[fn+" "+m.Name] {
				t.Errorf("%s writes %s, which the dashboard does not show", fn, m.Name)
			}
		}
	}
	// Upload duration is shown as percentiles, not as a sum.
	var stats []string
	for _, l := range lines {
		if l.name == metrics.UploadDuration.Name {
			stats = append(stats, l.stat)
		}
	}
	if !slices.Equal(stats, []string{"p50", "p90", "p99"}) {
		t.Errorf("UploadDuration shown with %v, want p50, p90, p99", stats)
	}
	// Every function's errors and durations, and every queue's depth.
	for _, want := range []struct{ namespace, name, value string }{
		{"AWS/Lambda", "Errors", "${IngestFunction}"},
		{"AWS/Lambda", "Errors", "${FinalizeFunction}"},
		{"AWS/Lambda", "Duration", "${IngestFunction}"},
		{"AWS/Lambda", "Duration", "${FinalizeFunction}"},
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "${FailureQueue.QueueName}"},
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "${FinalizeDeadLetterQueue.QueueName}"},
	} {
		if !slices.ContainsFunc(lines, func(l dashboardLine) bool {
			return l.namespace == want.namespace && l.name == want.name && l.value == want.value
		}) {
			t.Errorf("no %s %s line for %s", want.namespace, want.name, want.value)
		}
	}
	// Widgets sit on CloudWatch's 24-column grid without overlapping.
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, w := range widgets {
		if w.Type != "metric" || w.X < 0 || w.X+w.Width > 24 || w.Properties.Region != "${AWS::Region}" || w.Properties.Period != metrics.DashboardPeriod {
			t.Errorf("widget %q: type %s at x %d width %d region %s period %d", w.Properties.Title, w.Type, w.X, w.Width, w.Properties.Region, w.Properties.Period)
		}
		for x := w.X; x < w.X+w.Width; x++ {
			for y := w.Y; y < w.Y+w.Height; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("widgets %q and %q overlap at %d,%d", other, w.Properties.Title, x, y)
				}
				taken[cell{x, y}] = w.Properties.Title
			}
		}
	}
}

func unitOf(name string) metrics.Unit {
	for _, m := range metrics.All() {
		if m.Name == name {
			return m.Unit
		}
	}
	return ""
}

// The body is substituted by Fn::Sub: the only ${…} in it are the
// references the template can resolve.
func TestDashboardReferencesOnlyWhatTheTemplateDefines(t *testing.T) {
	body := metrics.Dashboard()
	allowed := map[string]bool{"AWS::Region": true}
	for _, fn := range metrics.Functions() {
		allowed[fn] = true
	}
	for _, q := range metrics.Queues {
		allowed[q+".QueueName"] = true
	}
	rest := body
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			t.Fatalf("unterminated ${ in %q", rest[i:])
		}
		if ref := rest[i+2 : i+j]; !allowed[ref] {
			t.Errorf("reference ${%s}", ref)
		}
		rest = rest[i+j:]
	}
}
