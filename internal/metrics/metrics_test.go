package metrics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/discover"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/ingest"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/metrics"
	"github.com/byodrop/byodrop/internal/review"
)

// The Recorder is what the ingest handler calls.
var _ ingest.Metrics = (*metrics.Recorder)(nil)

var fixed = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func newRecorder(buf *bytes.Buffer) *metrics.Recorder {
	r := metrics.New(buf, "byodrop-IngestFunction-AbC123")
	r.Now = func() time.Time { return fixed }
	return r
}

// doc is an EMF document as CloudWatch reads it.
type doc struct {
	AWS struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
	// Members holds every top-level member, _aws included.
	Members map[string]json.RawMessage `json:"-"`
}

// decode parses out into documents, one per line, and checks what the EMF
// specification requires of each.
func decode(t *testing.T, out string) []doc {
	t.Helper()
	if out == "" {
		return nil
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end in a newline: %q", out)
	}
	var docs []doc
	for line := range strings.Lines(out) {
		var d doc
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("not a JSON document: %v\n%s", err, line)
		}
		if err := json.Unmarshal([]byte(line), &d.Members); err != nil {
			t.Fatal(err)
		}
		if len(d.AWS.CloudWatchMetrics) != 1 {
			t.Fatalf("want one metric directive, got %d: %s", len(d.AWS.CloudWatchMetrics), line)
		}
		dir := d.AWS.CloudWatchMetrics[0]
		if dir.Namespace != "byodrop" {
			t.Errorf("namespace %q", dir.Namespace)
		}
		if !reflect.DeepEqual(dir.Dimensions, [][]string{{"Function"}}) {
			t.Errorf("dimensions %v, want [[Function]]", dir.Dimensions)
		}
		if len(dir.Metrics) > metrics.MaxMetricsPerDocument {
			t.Errorf("%d metrics in one document; CloudWatch takes %d", len(dir.Metrics), metrics.MaxMetricsPerDocument)
		}
		if _, ok := d.Members["Function"]; !ok {
			t.Errorf("no Function member for the dimension: %s", line)
		}
		// Every metric named in the directive has its value at the top
		// level, and nothing else is there: no stray properties that would
		// be billed as log bytes for nothing.
		want := map[string]bool{"_aws": true, "Function": true}
		for _, m := range dir.Metrics {
			want[m.Name] = true
			raw, ok := d.Members[m.Name]
			if !ok {
				t.Errorf("metric %s has no value: %s", m.Name, line)
				continue
			}
			if vals := values(t, raw); len(vals) > metrics.MaxValuesPerMetric {
				t.Errorf("metric %s has %d values; CloudWatch takes %d", m.Name, len(vals), metrics.MaxValuesPerMetric)
			}
		}
		for k := range d.Members {
			if !want[k] {
				t.Errorf("unexpected member %q: %s", k, line)
			}
		}
		docs = append(docs, d)
	}
	return docs
}

// values reads a metric value: a number or an array of numbers.
func values(t *testing.T, raw json.RawMessage) []float64 {
	t.Helper()
	var one float64
	if err := json.Unmarshal(raw, &one); err == nil {
		return []float64{one}
	}
	var many []float64
	if err := json.Unmarshal(raw, &many); err != nil {
		t.Fatalf("metric value %s is neither a number nor an array of numbers", raw)
	}
	return many
}

// units returns the directive's metrics as name -> unit.
func (d doc) units() map[string]string {
	out := map[string]string{}
	for _, m := range d.AWS.CloudWatchMetrics[0].Metrics {
		out[m.Name] = m.Unit
	}
	return out
}

// totals sums every metric over docs.
func totals(t *testing.T, docs []doc) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for _, d := range docs {
		for _, m := range d.AWS.CloudWatchMetrics[0].Metrics {
			out[m.Name] = append(out[m.Name], values(t, d.Members[m.Name])...)
		}
	}
	return out
}

func sum(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
}

func TestUploadedObjectDocumentShape(t *testing.T) {
	var buf bytes.Buffer
	r := newRecorder(&buf)
	r.Object(review.Uploaded, 2048, 45, 812*time.Millisecond)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	docs := decode(t, buf.String())
	if len(docs) != 1 {
		t.Fatalf("want one document, got %d:\n%s", len(docs), buf.String())
	}
	d := docs[0]
	if d.AWS.Timestamp != fixed.UnixMilli() {
		t.Errorf("timestamp %d, want %d (milliseconds since the epoch)", d.AWS.Timestamp, fixed.UnixMilli())
	}
	var fn string
	if err := json.Unmarshal(d.Members["Function"], &fn); err != nil || fn != "byodrop-IngestFunction-AbC123" {
		t.Errorf("Function %s", d.Members["Function"])
	}
	wantUnits := map[string]string{
		"FilesUploaded": "Count", "FilesRejected": "Count", "FilesDuplicate": "Count", "FilesLate": "Count", "FilesFailed": "Count",
		"BytesUploaded": "Bytes", "RowsUploaded": "Count", "UploadDuration": "Milliseconds",
	}
	if got := d.units(); !reflect.DeepEqual(got, wantUnits) {
		t.Errorf("metrics and units\n got %v\nwant %v", got, wantUnits)
	}
	wantValues := map[string][]float64{
		"FilesUploaded": {1}, "FilesRejected": {0}, "FilesDuplicate": {0}, "FilesLate": {0}, "FilesFailed": {0},
		"BytesUploaded": {2048}, "RowsUploaded": {45}, "UploadDuration": {812},
	}
	if got := totals(t, docs); !reflect.DeepEqual(got, wantValues) {
		t.Errorf("values\n got %v\nwant %v", got, wantValues)
	}
}

func TestEachOutcomeCountsItsOwnCounter(t *testing.T) {
	for _, tc := range []struct {
		status review.Status
		metric string
	}{
		{review.Uploaded, "FilesUploaded"},
		{review.Rejected, "FilesRejected"},
		{review.Duplicate, "FilesDuplicate"},
		{review.Late, "FilesLate"},
		{review.Failed, "FilesFailed"},
		{review.Expired, "FilesExpired"},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			var buf bytes.Buffer
			r := newRecorder(&buf)
			r.Object(tc.status, 100, 3, time.Second)
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			got := totals(t, decode(t, buf.String()))
			for name, vals := range got {
				want := 0.0
				switch {
				case name == tc.metric:
					want = 1
				case tc.status == review.Uploaded && name == "BytesUploaded":
					want = 100
				case tc.status == review.Uploaded && name == "RowsUploaded":
					want = 3
				case tc.status == review.Uploaded && name == "UploadDuration":
					want = 1000
				}
				if sum(vals) != want {
					t.Errorf("%s = %v, want %v", name, vals, want)
				}
			}
			if sum(got[tc.metric]) != 1 {
				t.Errorf("%s not counted: %v", tc.metric, got)
			}
			// Only uploaded files carry bytes, rows and a duration.
			_, hasBytes := got["BytesUploaded"]
			if hasBytes != (tc.status == review.Uploaded) {
				t.Errorf("BytesUploaded present = %v for %s", hasBytes, tc.status)
			}
		})
	}
}

func TestInvocationAggregatesIntoOneDocument(t *testing.T) {
	var buf bytes.Buffer
	r := newRecorder(&buf)
	r.Object(review.Uploaded, 1000, 10, 200*time.Millisecond)
	r.Object(review.Uploaded, 500, 5, 300*time.Millisecond)
	r.Object(review.Rejected, 70, 0, 5*time.Millisecond)
	r.Object(review.Duplicate, 1000, 10, 2*time.Millisecond)
	r.Object(review.Failed, 0, 0, 30*time.Second)
	r.GraphRetry()
	r.GraphRetry()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	docs := decode(t, buf.String())
	if len(docs) != 1 {
		t.Fatalf("want one document for the invocation, got %d", len(docs))
	}
	want := map[string][]float64{
		"FilesUploaded": {2}, "FilesRejected": {1}, "FilesDuplicate": {1}, "FilesLate": {0}, "FilesFailed": {1},
		// Counters are summed; durations keep every value for percentiles.
		"BytesUploaded": {1500}, "RowsUploaded": {15}, "UploadDuration": {200, 300},
		"GraphRetries": {2},
	}
	if got := totals(t, docs); !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %v\nwant %v", got, want)
	}
}

func TestFlushStartsOverAndNothingRecordedWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	r := newRecorder(&buf)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("an invocation that recorded nothing wrote %q", buf.String())
	}
	r.GraphRetry()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("a second flush repeated the first invocation's metrics: %q", buf.String())
	}
	r.Object(review.Late, 1, 1, time.Millisecond)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	got := totals(t, decode(t, buf.String()))
	if _, ok := got["GraphRetries"]; ok {
		t.Errorf("the previous invocation's GraphRetries leaked into the next: %v", got)
	}
	if sum(got["FilesLate"]) != 1 {
		t.Errorf("FilesLate %v", got["FilesLate"])
	}
}

func TestFinalizerRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		sum  finalize.Summary
		want map[string][]float64 // nil: nothing written
	}{
		{"nothing to check writes nothing", finalize.Summary{}, nil},
		{"sessions checked, none ended, says zero", finalize.Summary{Checked: 2, Open: make([]finalize.Outcome, 2)},
			map[string][]float64{"SessionsClosed": {0}, "SessionsExpired": {0}, "FilesExpired": {0}}},
		{"closed and expired sessions, with the expired files", finalize.Summary{
			Checked: 4,
			Closed:  []finalize.Outcome{{Action: finalize.Closed, Files: 3}, {Action: finalize.Closed, Files: 1}},
			Expired: []finalize.Outcome{{Action: finalize.MarkExpired, Files: 2}, {Action: finalize.MarkExpired, Files: 0}},
		}, map[string][]float64{"SessionsClosed": {2}, "SessionsExpired": {2}, "FilesExpired": {2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := newRecorder(&buf)
			r.Finalized(tc.sum)
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			docs := decode(t, buf.String())
			if tc.want == nil {
				if len(docs) != 0 {
					t.Fatalf("wrote %q", buf.String())
				}
				return
			}
			if got := totals(t, docs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %v\nwant %v", got, tc.want)
			}
			for name, unit := range docs[0].units() {
				if unit != "Count" {
					t.Errorf("%s unit %s, want Count", name, unit)
				}
			}
		})
	}
}

func TestSessionEndedCountsOnlyEnds(t *testing.T) {
	var buf bytes.Buffer
	r := newRecorder(&buf)
	r.SessionEnded(finalize.Outcome{Action: finalize.StillOpen, Files: 9})
	r.SessionEnded(finalize.Outcome{Action: finalize.Skipped, Files: 9})
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("open and skipped sessions recorded: %q", buf.String())
	}
}

func TestDocumentsRespectCloudWatchLimits(t *testing.T) {
	t.Run("more than 100 values of one metric", func(t *testing.T) {
		var buf bytes.Buffer
		r := newRecorder(&buf)
		for i := range 250 {
			r.Object(review.Uploaded, 1, 1, time.Duration(i)*time.Millisecond)
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		docs := decode(t, buf.String()) // checks at most 100 values per metric
		if len(docs) != 3 {
			t.Fatalf("250 durations: want 3 documents (100+100+50), got %d", len(docs))
		}
		got := totals(t, docs)
		if n := len(got["UploadDuration"]); n != 250 {
			t.Errorf("%d durations written, want 250", n)
		}
		for i, v := range got["UploadDuration"] {
			if v != float64(i) {
				t.Fatalf("duration %d is %v: values lost or reordered", i, v)
			}
		}
		// Counters are written once, in the first document.
		if !reflect.DeepEqual(got["FilesUploaded"], []float64{250}) || !reflect.DeepEqual(got["BytesUploaded"], []float64{250}) {
			t.Errorf("counters %v %v", got["FilesUploaded"], got["BytesUploaded"])
		}
	})
	t.Run("more than 100 metrics", func(t *testing.T) {
		var buf bytes.Buffer
		r := newRecorder(&buf)
		for i := range 150 {
			r.Add(metrics.Metric{Name: fmt.Sprintf("M%03d", i), Unit: metrics.Count}, float64(i))
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		docs := decode(t, buf.String()) // checks at most 100 metrics per document
		if len(docs) != 2 {
			t.Fatalf("150 metrics: want 2 documents, got %d", len(docs))
		}
		got := totals(t, docs)
		for i := range 150 {
			if v := got[fmt.Sprintf("M%03d", i)]; !reflect.DeepEqual(v, []float64{float64(i)}) {
				t.Fatalf("M%03d = %v", i, v)
			}
		}
	})
}

func TestValuesJSONCannotCarryAreIgnored(t *testing.T) {
	var buf bytes.Buffer
	r := newRecorder(&buf)
	nan := 0.0
	r.Add(metrics.GraphRetries, nan/nan)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("NaN recorded: %q", buf.String())
	}
}

func TestConcurrentRecordingLosesNothing(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex // bytes.Buffer is not safe for concurrent writes; stdout is
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	r := metrics.New(w, "f")
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range each {
				r.Object(review.Uploaded, 10, 2, time.Millisecond)
				r.GraphRetry()
				if i%100 == 0 {
					// Flushes racing with recording: every value still lands
					// in exactly one document.
					if err := r.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	got := totals(t, decode(t, buf.String()))
	for name, want := range map[string]float64{
		"FilesUploaded": workers * each, "GraphRetries": workers * each,
		"BytesUploaded": workers * each * 10, "RowsUploaded": workers * each * 2,
	} {
		if s := sum(got[name]); s != want {
			t.Errorf("%s = %v, want %v", name, s, want)
		}
	}
	if n := len(got["UploadDuration"]); n != workers*each {
		t.Errorf("%d durations, want %d", n, workers*each)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The samples in docs/metrics.md are this test's output: if the format
// changes, the documentation must change with it.
func TestSampleLinesAreDocumented(t *testing.T) {
	docs, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, function string
		record         func(r *metrics.Recorder)
	}{
		{"ingest", "byodrop-IngestFunction-AbC123", func(r *metrics.Recorder) {
			r.Object(review.Uploaded, 18230, 412, 1284*time.Millisecond)
			r.Object(review.Rejected, 311, 0, 40*time.Millisecond)
			r.GraphRetry()
		}},
		{"finalize", "byodrop-FinalizeFunction-XyZ789", func(r *metrics.Recorder) {
			r.Finalized(finalize.Summary{
				Checked: 3,
				Closed:  []finalize.Outcome{{Action: finalize.Closed, Files: 4}},
				Expired: []finalize.Outcome{{Action: finalize.MarkExpired, Files: 2}},
				Open:    []finalize.Outcome{{Action: finalize.StillOpen, Files: 1}},
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := metrics.New(&buf, tc.function)
			r.Now = func() time.Time { return fixed }
			tc.record(r)
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			decode(t, buf.String())
			line := strings.TrimSuffix(buf.String(), "\n")
			t.Logf("sample EMF line:\n%s", line)
			if !strings.Contains(string(docs), line) {
				t.Errorf("docs/metrics.md does not show the current output; its sample should read:\n%s", line)
			}
		})
	}
}

func TestWriteErrorIsReported(t *testing.T) {
	r := metrics.New(writerFunc(func([]byte) (int, error) { return 0, fmt.Errorf("stdout closed") }), "f")
	r.GraphRetry()
	if err := r.Flush(); err == nil || !strings.Contains(err.Error(), "stdout closed") {
		t.Errorf("Flush error %v", err)
	}
}

func TestNilRecorderRecordsNothing(t *testing.T) {
	var r *metrics.Recorder
	var m ingest.Metrics = r
	m.Object(review.Uploaded, 1, 1, time.Second)
	r.Finalized(finalize.Summary{Checked: 1})
	r.GraphRetry()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
}

// The Recorder is what the discover function calls.
var _ discover.Metrics = (*metrics.Recorder)(nil)

func TestDiscoveryRunsAndStandingDropsAreCounted(t *testing.T) {
	var buf bytes.Buffer
	r := newRecorder(&buf)
	r.Standing(review.Ready)
	r.Standing(review.Rejected)
	r.Standing(review.Ready)
	r.Discovered(discover.Summary{
		Instances: 3, NoData: 1, Uploaded: 4,
		Pairs: []discover.Pair{
			{Status: ledger.ReviewComplete, Uploaded: 4},
			{Status: ledger.ReviewComplete}, // closed by an earlier run
			{Status: ledger.ReviewNoData},
			{Status: ledger.ReviewFailed},
		},
		Errors: []discover.PairFailure{{Item: "x", Error: "y"}},
	})
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	docs := decode(t, buf.String())
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	for name, want := range map[string]float64{
		"StandingFilesReady": 2, "StandingFilesRejected": 1, "ReviewsDiscovered": 3, "ReviewsServed": 1,
		"ReviewsWithoutData": 1, "ReviewsFailed": 1, "StandingFilesSent": 4,
	} {
		var got float64
		if err := json.Unmarshal(docs[0].Members[name], &got); err != nil {
			t.Errorf("%s: %s: %v", name, docs[0].Members[name], err)
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	// A run with nothing to do still says 0, so an alarm sees every run.
	buf.Reset()
	r.Discovered(discover.Summary{})
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if d := decode(t, buf.String()); len(d) != 1 || string(d[0].Members["ReviewsWithoutData"]) != "0" {
		t.Fatalf("an idle run: %s", buf.String())
	}
}
