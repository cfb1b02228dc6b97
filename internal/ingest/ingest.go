// Package ingest handles the S3 object-created events of the drop bucket:
// each CSV is validated, the review's upload session found or created, and
// the file streamed into it exactly once per object version, with a report
// for every outcome.
package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/standing"
)

// Graph is what ingest needs of the Graph client.
type Graph interface {
	lifecycle.Graph
	UploadFile(ctx context.Context, t review.Target, id, name string, size int64, open func(ctx context.Context) (io.ReadCloser, error)) (*graph.Session, error)
}

// Handler is the ingest function.
type Handler struct {
	Settings config.Settings
	Graph    Graph
	// CanList says whether the API profile can list sessions, which lets a
	// session Graph already has be recovered after a 409.
	CanList bool
	// NeedsSource says whether the API profile's create body needs the
	// resource's display name, which only a route can give (beta-2025).
	NeedsSource bool
	Profile     string
	S3          *s3.Client
	Log         *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Margin is kept free before the invocation's deadline to release the
	// claim and write the report (default 5s, at most a tenth of the time).
	Margin time.Duration
	// PrecheckBytes is how much of a file is validated before anything is
	// sent to Graph (default 2 MiB, some 8,000 rows): a smaller file is
	// validated whole first.
	PrecheckBytes int64
	// Metrics records outcomes; may be nil.
	Metrics Metrics
	// ClaimLease is how long a claim on an object version lasts without
	// renewal (default claim.DefaultLease).
	ClaimLease time.Duration

	// records caches the session records this container knows (nil: no
	// cache); New makes one.
	records *lifecycle.RecordCache
	// Reviews, when set, reads the review instance named in a key before
	// its session is created (the instance check); nil skips the check.
	Reviews InstanceReader
}

// InstanceReader reads one access review instance (*graph.Reviews has it).
type InstanceReader interface {
	GetInstance(ctx context.Context, instanceID string) (*graph.Instance, error)
}

// New returns a Handler on the Graph client g, with what g's API profile
// can and needs to do.
func New(s config.Settings, g *graph.Client, s3c *s3.Client, log *slog.Logger) *Handler {
	p := g.Profile()
	h := &Handler{Settings: s, Graph: g, CanList: p.CanList, NeedsSource: p.NeedsSource, Profile: p.Name, S3: s3c, Log: log,
		records: &lifecycle.RecordCache{}}
	if r, err := g.Reviews(s.ReviewsAPI); err == nil {
		h.Reviews = r
	}
	return h
}

// Metrics receives one call per handled object.
type Metrics interface {
	Object(status review.Status, bytes, rows int64, uploadTime time.Duration)
	// SessionEnded counts a session ingest closed (manifest complete) or
	// found expired.
	SessionEnded(lifecycle.Outcome)
	// Standing counts a standing file validated on drop: ready or rejected.
	Standing(status review.Status)
}

// handleStanding validates a standing file on drop and writes its report
// (package standing); nothing is sent to Graph. Only a failure a retry may
// cure is an error.
func (h *Handler) handleStanding(ctx context.Context, o *object) error {
	st := standing.New(standing.Config{S3: h.S3, Ledger: o.led, Prefix: h.Settings.StandingPrefix,
		Routes: h.Settings.Routes, Now: h.now, Log: h.log()})
	rep, err := st.Drop(ctx, standing.Object{Bucket: o.bucket, Key: o.key, VersionID: o.ref.VersionID, ETag: o.ref.ETag, Sequencer: o.sequencer})
	if err != nil {
		o.outcome.Status = string(review.Failed)
		return fmt.Errorf("%s: %w", o.key, err)
	}
	o.outcome.Status = string(rep.Status)
	if h.Metrics != nil {
		h.Metrics.Standing(rep.Status)
	}
	return nil
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// Handle processes one invocation's payload: an S3 event with one or many
// records, or S3's test event, which is ignored. It returns an error only
// for transient failures, after every record has been tried, so that
// Lambda's retries and the failure queue catch them; records already
// handled are recognised as duplicates on the retry.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) error {
	_, err := h.Invoke(ctx, payload)
	return err
}

// Result is what an invocation answers: the outcome of each record. Lambda
// ignores it for S3's asynchronous invocations; a replay or a local run
// shows it.
type Result struct {
	Objects []Outcome `json:"objects"`
}

// Outcome is one record's outcome: a report status, or "ignored" (not an
// object creation, byodrop's own state) or "in-progress" (another
// invocation holds the object) when no report was written.
type Outcome struct {
	Key       string `json:"key"`
	Status    string `json:"status"`
	SessionID string `json:"sessionId,omitempty"`
}

// Invoke is Handle with the outcome of each record.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (Result, error) {
	res := Result{Objects: []Outcome{}}
	var probe struct {
		Event string `json:"Event"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return res, review.Errorf(review.Invalid, "ingest: the payload is not an S3 event: %v", err)
	}
	if probe.Event == "s3:TestEvent" {
		h.log().InfoContext(ctx, "S3 test event ignored")
		return res, nil
	}
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return res, review.Errorf(review.Invalid, "ingest: the payload is not an S3 event: %v", err)
	}
	if len(ev.Records) == 0 {
		h.log().WarnContext(ctx, "event without records ignored")
		return res, nil
	}
	var errs []error
	for _, rec := range ev.Records {
		out := Outcome{Key: rec.S3.Object.Key, Status: "ignored"}
		if err := h.handleRecord(ctx, rec, &out); err != nil {
			errs = append(errs, err)
		}
		res.Objects = append(res.Objects, out)
	}
	return res, errors.Join(errs...)
}

// object is one record's work.
type object struct {
	bucket string
	key    string
	ref    claim.Ref
	size   int64
	parsed dropkey.Key
	led    *ledger.Ledger
	owner  string
	report review.Report
	start  time.Time
	// outcome is what the invocation answers for this record.
	outcome *Outcome
	// sequencer orders the events of one key (S3's per-key sequencer).
	sequencer string
}

func (h *Handler) handleRecord(ctx context.Context, rec events.S3EventRecord, out *Outcome) error {
	if !strings.HasPrefix(rec.EventName, "ObjectCreated:") {
		h.log().InfoContext(ctx, "event ignored: not an object creation", "event", rec.EventName)
		return nil
	}
	o := &object{bucket: rec.S3.Bucket.Name, size: rec.S3.Object.Size, start: h.now(), owner: newOwner(ctx)}
	key, err := dropkey.DecodeEventKey(rec.S3.Object.Key)
	if err != nil {
		key = rec.S3.Object.Key
	}
	o.key, o.outcome, out.Key = key, out, key
	o.ref = claim.Ref{Key: key, VersionID: rec.S3.Object.VersionID, ETag: strings.Trim(rec.S3.Object.ETag, `"`)}
	o.sequencer = rec.S3.Object.Sequencer
	o.report = review.Report{Key: key, VersionID: o.ref.VersionID, ETag: o.ref.ETag}
	stateBucket := h.Settings.StateBucket
	if stateBucket == "" {
		stateBucket = o.bucket
	}
	if stateBucket == o.bucket && strings.HasPrefix(key, h.Settings.StatePrefix) {
		h.log().InfoContext(ctx, "event ignored: the object is byodrop's own state", "key", key)
		return nil
	}
	o.led = ledger.New(&blob.S3{Client: h.S3, Bucket: stateBucket}, h.Settings.StatePrefix)
	o.led.Now = h.now
	if err == nil && h.Settings.StandingPrefix != "" && strings.HasPrefix(key, h.Settings.StandingPrefix) {
		return h.handleStanding(ctx, o)
	}
	if err == nil {
		o.parsed, err = dropkey.Parse(key, h.Settings.IncomingPrefix, h.Settings.Routes)
	}
	if err != nil {
		return h.finish(ctx, o, review.Rejected, err)
	}
	o.report.SetTarget(o.parsed.Target)
	o.ref.Session = o.parsed.Target.SessionKey()
	if h.NeedsSource && o.parsed.Target.Source == "" {
		return h.finish(ctx, o, review.Rejected, review.Contentf(
			"the %s API needs the resource's display name, which only a route gives: drop the file under a route from ROUTES", h.Profile))
	}
	if o.parsed.Kind == dropkey.Manifest {
		return h.handleManifest(ctx, o)
	}
	return h.handleCSV(ctx, o)
}

// finish writes o's report with status (and err's details when it has
// some), logs the outcome, and returns the error Lambda must see: only a
// failed (transient) outcome is one.
func (h *Handler) finish(ctx context.Context, o *object, status review.Status, err error) error {
	o.report.Status = status
	o.outcome.Status, o.outcome.SessionID = string(status), o.report.SessionID
	if err != nil && status != review.Uploaded {
		o.report.Errors = []review.FieldError{fieldError(err)}
	}
	o.report.At = h.now().UTC()
	// The report is written even when the invocation's time is up.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var werr error
	if errors.Is(err, review.ErrObjectGone) && reportsOtherVersion(wctx, o) {
		// Events come in any order: this version was replaced before its
		// event was handled, and the key's report already describes
		// another version. A rejection of a version nobody can see any
		// more must not replace it.
		h.log().Info("report left as it is: it describes another version of the key", "key", o.key)
	} else {
		werr = o.led.WriteReport(wctx, o.report)
	}
	elapsed := h.now().Sub(o.start)
	attrs := []any{"key", o.key, "outcome", status, "bytes", o.report.Bytes, "rows", o.report.Rows,
		"duration_ms", elapsed.Milliseconds()}
	if o.report.ReviewInstanceID != "" {
		attrs = append(attrs, "review", o.report.ReviewInstanceID)
	}
	if o.report.SessionID != "" {
		attrs = append(attrs, "session", o.report.SessionID)
	}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	level := slog.LevelInfo
	if status == review.Failed || status == review.Rejected {
		level = slog.LevelWarn
	}
	h.log().Log(ctx, level, "object handled", attrs...)
	// A manifest taken in is not a file uploaded to Graph.
	if h.Metrics != nil && !(o.parsed.Kind == dropkey.Manifest && status == review.Uploaded) {
		h.Metrics.Object(status, o.report.Bytes, o.report.Rows, elapsed)
	}
	if status == review.Failed {
		if werr != nil {
			return errors.Join(err, werr)
		}
		return fmt.Errorf("%s: %w", o.key, err)
	}
	if werr != nil {
		// The outcome stands, but without its report the user cannot see
		// it: a retry rewrites it (the claim makes the retry a no-op).
		return werr
	}
	return nil
}

// reportsOtherVersion reports whether the key's current report is about a
// version of the object other than o's.
func reportsOtherVersion(ctx context.Context, o *object) bool {
	cur, err := o.led.Report(ctx, o.key)
	if err != nil {
		return false
	}
	return cur.VersionID != o.ref.VersionID || cur.ETag != o.ref.ETag
}

// fieldError turns err into the report's error entry.
func fieldError(err error) review.FieldError {
	var fe interface{ FieldError() review.FieldError }
	if errors.As(err, &fe) {
		return fe.FieldError()
	}
	return review.FieldError{Message: err.Error()}
}

// newOwner names one invocation in claims and leases: the Lambda request
// id when there is one, with a random suffix so that local runs differ too.
func newOwner(ctx context.Context) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID + "/" + id
	}
	return "local/" + id
}
