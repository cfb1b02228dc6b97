// Package metrics records byodrop's operational metrics and writes them as
// CloudWatch Embedded Metric Format (EMF) documents: one JSON object per
// line on the function's standard output. Lambda ships standard output to
// CloudWatch Logs, which extracts the metrics from such lines, so neither an
// agent nor the cloudwatch:PutMetricData permission is needed.
//
// A Recorder aggregates what the handlers record during one invocation and
// writes it with Flush, at the end of the invocation: one document per
// invocation (more only past CloudWatch's limits of 100 metrics per document
// and 100 values per metric).
package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/byodrop/byodrop/internal/discover"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// Namespace is the CloudWatch namespace of every metric.
const Namespace = "byodrop"

// Dimension is the one dimension of every metric: the Lambda function's
// name. Each distinct dimension value is a separate (billed) metric, so
// nothing with more values (keys, reviews, sessions) is ever a dimension.
const Dimension = "Function"

// Unit is a CloudWatch metric unit.
type Unit string

// The units byodrop's metrics use.
const (
	Count        Unit = "Count"
	Bytes        Unit = "Bytes"
	Milliseconds Unit = "Milliseconds"
)

// Metric is a metric's name and unit.
type Metric struct {
	Name string
	Unit Unit
}

// The metrics. docs/metrics.md says what each means.
var (
	FilesUploaded   = Metric{"FilesUploaded", Count}
	FilesRejected   = Metric{"FilesRejected", Count}
	FilesDuplicate  = Metric{"FilesDuplicate", Count}
	FilesLate       = Metric{"FilesLate", Count}
	FilesFailed     = Metric{"FilesFailed", Count}
	FilesExpired    = Metric{"FilesExpired", Count}
	BytesUploaded   = Metric{"BytesUploaded", Bytes}
	RowsUploaded    = Metric{"RowsUploaded", Count}
	UploadDuration  = Metric{"UploadDuration", Milliseconds}
	SessionsClosed  = Metric{"SessionsClosed", Count}
	SessionsExpired = Metric{"SessionsExpired", Count}
	GraphRetries    = Metric{"GraphRetries", Count}
	// Standing data and discovery.
	StandingReady      = Metric{"StandingFilesReady", Count}
	StandingRejected   = Metric{"StandingFilesRejected", Count}
	ReviewsDiscovered  = Metric{"ReviewsDiscovered", Count}
	ReviewsServed      = Metric{"ReviewsServed", Count}
	ReviewsWithoutData = Metric{"ReviewsWithoutData", Count}
	ReviewsFailed      = Metric{"ReviewsFailed", Count}
	StandingFilesSent  = Metric{"StandingFilesSent", Count}
)

// CloudWatch's limits for one EMF document.
const (
	MaxMetricsPerDocument = 100
	MaxValuesPerMetric    = 100
)

// fileMetrics maps each outcome ingest reports to its counter.
var fileMetrics = map[review.Status]Metric{
	review.Uploaded:  FilesUploaded,
	review.Rejected:  FilesRejected,
	review.Duplicate: FilesDuplicate,
	review.Late:      FilesLate,
	review.Failed:    FilesFailed,
	review.Expired:   FilesExpired,
}

// Recorder aggregates metrics between flushes. It is safe for concurrent
// use. Use New; a nil *Recorder records nothing, so metrics stay optional.
type Recorder struct {
	out      io.Writer
	function string
	// Now is the clock of the documents' timestamps (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	order  []Metric             // first-recorded order, for stable documents
	sums   map[Metric]float64   // counters: one summed value per flush
	values map[Metric][]float64 // distributions: every value kept
}

// New returns a Recorder that writes to out (os.Stdout in Lambda) with
// function as the value of the Function dimension. An empty function name
// (outside Lambda) becomes "local": CloudWatch refuses empty dimension values.
func New(out io.Writer, function string) *Recorder {
	if function == "" {
		function = "local"
	}
	return &Recorder{out: out, function: function, sums: map[Metric]float64{}, values: map[Metric][]float64{}}
}

// Add adds v to m's sum for this invocation. Adding 0 still records m, so
// that the document says 0 rather than nothing. NaN and infinities, which
// JSON cannot carry, are ignored.
func (r *Recorder) Add(m Metric, v float64) {
	if r == nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.touchLocked(m)
	r.sums[m] += v
}

// Observe records one value of a distribution such as a duration: each value
// is kept, so CloudWatch's percentiles see every one.
func (r *Recorder) Observe(m Metric, v float64) {
	if r == nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.touchLocked(m)
	r.values[m] = append(r.values[m], v)
}

func (r *Recorder) touchLocked(m Metric) {
	_, summed := r.sums[m]
	_, observed := r.values[m]
	if !summed && !observed {
		r.order = append(r.order, m)
	}
}

// Object records one object handled by ingest (it implements
// ingest.Metrics). Every handled object records all five of ingest's file
// counters, 0 but for its outcome, the way Lambda's own Errors metric says 0
// for a successful invocation: graphs and alarms then see zeros, not gaps.
// Bytes, rows and the duration are recorded for uploaded files only.
func (r *Recorder) Object(status review.Status, bytes, rows int64, uploadTime time.Duration) {
	for _, m := range []Metric{FilesUploaded, FilesRejected, FilesDuplicate, FilesLate, FilesFailed} {
		r.Add(m, 0)
	}
	if m, ok := fileMetrics[status]; ok {
		r.Add(m, 1)
	}
	if status == review.Uploaded {
		r.Add(BytesUploaded, float64(bytes))
		r.Add(RowsUploaded, float64(rows))
		r.Observe(UploadDuration, float64(uploadTime.Microseconds())/1000)
	}
}

// SessionEnded records one session the Closer closed or recorded as
// expired, with the files of an expired session, which Entra will not
// process. Other actions record nothing.
func (r *Recorder) SessionEnded(o finalize.Outcome) {
	switch o.Action {
	case finalize.Closed:
		r.Add(SessionsClosed, 1)
	case finalize.MarkExpired:
		r.Add(SessionsExpired, 1)
		r.Add(FilesExpired, float64(o.Files))
	}
}

// Finalized records a finalizer run. A run that checked at least one session
// records the three session counters, 0 when nothing ended; a run with
// nothing to check records nothing.
func (r *Recorder) Finalized(s finalize.Summary) {
	if s.Checked == 0 && len(s.Closed) == 0 && len(s.Expired) == 0 {
		return
	}
	for _, m := range []Metric{SessionsClosed, SessionsExpired, FilesExpired} {
		r.Add(m, 0)
	}
	for _, o := range s.Closed {
		r.SessionEnded(o)
	}
	for _, o := range s.Expired {
		r.SessionEnded(o)
	}
}

// Standing records one standing file validated on drop (ingest.Metrics):
// both counters, 0 but for its outcome.
func (r *Recorder) Standing(status review.Status) {
	r.Add(StandingReady, 0)
	r.Add(StandingRejected, 0)
	switch status {
	case review.Ready:
		r.Add(StandingReady, 1)
	case review.Rejected:
		r.Add(StandingRejected, 1)
	}
}

// Discovered records one discovery run (discover.Metrics): the instances
// in Initializing, the pairs closed complete, the pairs first found
// without standing data, the pairs that failed, and the files sent; zeros
// included, so an alarm on ReviewsWithoutData sees every run.
func (r *Recorder) Discovered(s discover.Summary) {
	served := 0
	for _, p := range s.Pairs {
		if p.Status == ledger.ReviewComplete && p.Uploaded > 0 {
			served++
		}
	}
	r.Add(ReviewsDiscovered, float64(s.Instances))
	r.Add(ReviewsServed, float64(served))
	r.Add(ReviewsWithoutData, float64(s.NoData))
	r.Add(ReviewsFailed, float64(len(s.Errors)))
	r.Add(StandingFilesSent, float64(s.Uploaded))
}

// GraphRetry records one retried Graph call (graph.Config.OnRetry).
func (r *Recorder) GraphRetry() { r.Add(GraphRetries, 1) }

// Flush writes what was recorded since the last flush, one EMF document per
// line, and starts over. When nothing was recorded it writes nothing: an
// invocation that did nothing costs no log line.
func (r *Recorder) Flush() error {
	if r == nil {
		return nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	r.mu.Lock()
	pending := make([]series, 0, len(r.order))
	for _, m := range r.order {
		var vals []float64
		if s, ok := r.sums[m]; ok {
			vals = append(vals, s)
		}
		vals = append(vals, r.values[m]...)
		pending = append(pending, series{m, vals})
	}
	r.order, r.sums, r.values = nil, map[Metric]float64{}, map[Metric][]float64{}
	r.mu.Unlock()

	ts := now().UnixMilli()
	for len(pending) > 0 {
		var doc []series
		var rest []series
		for _, s := range pending {
			if len(doc) == MaxMetricsPerDocument {
				rest = append(rest, s)
				continue
			}
			n := min(len(s.values), MaxValuesPerMetric)
			doc = append(doc, series{s.metric, s.values[:n]})
			if n < len(s.values) {
				rest = append(rest, series{s.metric, s.values[n:]})
			}
		}
		pending = rest
		// One Write per line: log lines written concurrently cannot split it.
		if _, err := r.out.Write(encode(ts, r.function, doc)); err != nil {
			return fmt.Errorf("writing metrics: %w", err)
		}
	}
	return nil
}

// series is one metric's values for one document.
type series struct {
	metric Metric
	values []float64
}

// encode builds one EMF document, ending in a newline. It is written by
// hand to keep the members in a stable, readable order: the metadata, the
// dimension, then the metrics in the order they were first recorded. A
// metric with one value is a number, with several an array.
func encode(ts int64, function string, doc []series) []byte {
	var b bytes.Buffer
	b.WriteString(`{"_aws":{"Timestamp":`)
	b.WriteString(strconv.FormatInt(ts, 10))
	b.WriteString(`,"CloudWatchMetrics":[{"Namespace":`)
	writeString(&b, Namespace)
	b.WriteString(`,"Dimensions":[[`)
	writeString(&b, Dimension)
	b.WriteString(`]],"Metrics":[`)
	for i, s := range doc {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"Name":`)
		writeString(&b, s.metric.Name)
		b.WriteString(`,"Unit":`)
		writeString(&b, string(s.metric.Unit))
		b.WriteByte('}')
	}
	b.WriteString(`]}]},`)
	writeString(&b, Dimension)
	b.WriteByte(':')
	writeString(&b, function)
	for _, s := range doc {
		b.WriteByte(',')
		writeString(&b, s.metric.Name)
		b.WriteByte(':')
		if len(s.values) == 1 {
			writeNumber(&b, s.values[0])
			continue
		}
		b.WriteByte('[')
		for i, v := range s.values {
			if i > 0 {
				b.WriteByte(',')
			}
			writeNumber(&b, v)
		}
		b.WriteByte(']')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func writeString(b *bytes.Buffer, s string) {
	data, _ := json.Marshal(s) // a string always marshals
	b.Write(data)
}

func writeNumber(b *bytes.Buffer, v float64) {
	b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
}
