package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/csvcheck"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

const (
	defaultMargin = 5 * time.Second
	// defaultPrecheckBytes is twice csvcheck's longest record, so that an
	// over-long first record is refused before anything reaches Graph.
	defaultPrecheckBytes = 2 * csvcheck.MaxRecordBytes
	// noDeadline is the budget of an invocation whose context has none
	// (tests, tools): Lambda's own maximum.
	noDeadline = 15 * time.Minute
)

// handleCSV takes the object version's claim, ingests it, and records the
// outcome. Every path out of a held claim finishes or releases it.
func (h *Handler) handleCSV(ctx context.Context, o *object) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = h.now().Add(noDeadline)
	}
	margin := h.Margin
	if margin <= 0 {
		margin = defaultMargin
	}
	if budget := deadline.Sub(h.now()); margin > budget/10 && h.Margin <= 0 {
		margin = budget / 10
	}
	work, cancel := context.WithDeadline(ctx, deadline.Add(-margin))
	defer cancel()

	claim, err := o.led.TakeClaim(work, o.ref, o.owner, deadline.UTC())
	if err != nil {
		return h.finish(ctx, o, review.Failed, fmt.Errorf("claiming the object: %w", err))
	}
	if !claim.Acquired {
		c := claim.Claim
		switch {
		case c.State == ledger.Done && (c.Outcome == review.Uploaded || c.Outcome == review.Expired):
			o.report.SessionID = c.SessionID
			return h.finish(ctx, o, review.Duplicate, nil)
		case c.State == ledger.Done:
			o.outcome.Status = string(c.Outcome)
			h.log().Info("object version already handled; its report stands", "key", o.key, "outcome", c.Outcome)
		default:
			o.outcome.Status = "in-progress"
			h.log().Info("object version is being handled by another invocation", "key", o.key, "until", c.Until)
		}
		return nil
	}

	status, err := h.ingestCSV(work, o, claim.Resumed)
	// The claim is settled even when the work context has run out.
	settle, cancelSettle := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelSettle()
	if status == review.Failed {
		if rerr := o.led.ReleaseClaim(settle, o.ref, o.owner); rerr != nil {
			h.log().Warn("could not release the claim; it lapses at the deadline", "key", o.key, "error", rerr)
		}
		return h.finish(ctx, o, status, err)
	}
	if ferr := o.led.FinishClaim(settle, o.ref, o.owner, status, o.report.SessionID); ferr != nil {
		return h.finish(ctx, o, review.Failed, ferr)
	}
	return h.finish(ctx, o, status, err)
}

// ingestCSV does the work under a held claim and says how it ended.
func (h *Handler) ingestCSV(ctx context.Context, o *object, resumed bool) (review.Status, error) {
	complete, err := h.precheck(ctx, o)
	if err != nil {
		return classify(err)
	}
	if complete {
		h.log().Debug("file validated whole before upload", "key", o.key, "rows", o.report.Rows)
	}
	rec, err := h.session(ctx, o)
	if err != nil {
		return classify(err)
	}
	o.report.SessionID = rec.SessionID
	if rec.Ended() {
		return review.Late, fmt.Errorf("session %s is %s: %s", rec.SessionID, rec.State, rec.Note)
	}
	t := o.parsed.Target
	if resumed {
		gs, err := h.Graph.Get(ctx, t, rec.SessionID)
		if err != nil {
			return classify(err)
		}
		if alreadyUploaded(gs.Files, rec, o) {
			h.log().Info("an earlier attempt uploaded this file before it stopped; recording it", "key", o.key, "session", rec.SessionID)
			return h.commit(ctx, o, rec)
		}
	}
	var last *csvcheck.Reader
	open := func(ctx context.Context) (io.ReadCloser, error) {
		body, _, err := h.openObject(ctx, o)
		if err != nil {
			return nil, err
		}
		last = csvcheck.NewReader(body, o.parsed.File)
		return readCloser{Reader: last, Closer: body}, nil
	}
	started := h.now()
	_, err = h.Graph.UploadFile(ctx, t, rec.SessionID, o.parsed.File, o.size, open)
	if last != nil {
		o.report.Rows = last.Result().Rows
	}
	if err != nil {
		if review.KindOf(err) == review.Gone {
			if fresh, ferr := h.closer(o).Refresh(ctx, t); ferr == nil && fresh.Ended() {
				return review.Late, fmt.Errorf("session %s is %s: %s", rec.SessionID, fresh.State, fresh.Note)
			}
		}
		return classify(err)
	}
	h.log().Debug("uploaded", "key", o.key, "session", rec.SessionID, "upload_ms", h.now().Sub(started).Milliseconds())
	return h.commit(ctx, o, rec)
}

// commit records the uploaded file in the session's ledger record, then
// closes the session at once if that completes its manifest.
func (h *Handler) commit(ctx context.Context, o *object, rec *ledger.Session) (review.Status, error) {
	f := ledger.File{Name: o.parsed.File, Key: o.key, VersionID: o.ref.VersionID, ETag: o.ref.ETag,
		Size: o.size, Rows: o.report.Rows, UploadedAt: h.now().UTC()}
	updated, err := o.led.UpdateSession(ctx, o.parsed.Target, func(s *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "the ledger record of session %s vanished", rec.SessionID)
		}
		if !s.AddFile(f) {
			return ledger.ErrNoChange
		}
		return nil
	})
	if err != nil {
		return review.Failed, fmt.Errorf("recording the upload in the ledger: %w", err)
	}
	if h.manifestComplete(updated) {
		h.closeIfComplete(ctx, o)
	}
	return review.Uploaded, nil
}

// manifestComplete reports whether the record, with this file in it, has a
// manifest whose files are all uploaded: the one case in which ingest closes
// the session itself. Only then is the session checked (a Graph read and
// three ledger requests); every other file costs one Graph request, its
// upload. A manifest recorded after this file's write sees the file in the
// record and closes the session itself, so no completion is missed.
func (h *Handler) manifestComplete(rec *ledger.Session) bool {
	if rec == nil || rec.Manifest == nil {
		return false
	}
	d := review.Decide(rec.Facts(), review.Policy{QuietPeriod: h.Settings.QuietPeriod, CloseMargin: h.Settings.CloseMargin}, h.now())
	return d.Close && d.Reason == review.ReasonManifestComplete
}

// closeIfComplete closes the session now if its manifest is complete.
// A failure is only logged: the finalizer applies the same rule later.
func (h *Handler) closeIfComplete(ctx context.Context, o *object) {
	out, err := h.closer(o).Check(ctx, o.parsed.Target.SessionKey(), true)
	if err != nil {
		h.log().Warn("could not close the session; the finalizer will", "session", out.SessionID, "error", err)
		return
	}
	if h.Metrics != nil {
		h.Metrics.SessionEnded(out)
	}
	if out.Action == finalize.Closed {
		h.log().Info("session closed: manifest complete", "session", out.SessionID, "review", o.parsed.Target.ReviewInstanceID)
	}
}

func (h *Handler) closer(o *object) *finalize.Closer {
	return &finalize.Closer{
		Graph: h.Graph, Ledger: o.led, Log: h.log(), Owner: o.owner, Now: h.now,
		Policy: review.Policy{QuietPeriod: h.Settings.QuietPeriod, CloseMargin: h.Settings.CloseMargin},
	}
}

// alreadyUploaded reports whether Graph holds this file although the ledger
// does not: more files of its name and size in Graph than the ledger
// records for other versions of it.
func alreadyUploaded(files []graph.File, rec *ledger.Session, o *object) bool {
	inGraph := 0
	for _, f := range files {
		if f.Name == o.parsed.File && f.Size == o.size {
			inGraph++
		}
	}
	inLedger := 0
	for _, f := range rec.Files {
		if f.Name == o.parsed.File && f.Size == o.size {
			inLedger++
		}
	}
	return inGraph > inLedger
}

// precheck validates the first PrecheckBytes of the object before anything
// is sent to Graph, and reports whether that was the whole file. A bad
// header or early bad row is thus rejected without creating a session; the
// rest of a large file is validated while it streams, and the upload is
// aborted at its first bad row, so that Graph records nothing.
func (h *Handler) precheck(ctx context.Context, o *object) (bool, error) {
	body, size, err := h.openObject(ctx, o)
	if err != nil {
		return false, err
	}
	defer body.Close()
	o.size, o.report.Bytes = size, size
	limit := h.PrecheckBytes
	if limit <= 0 {
		limit = defaultPrecheckBytes
	}
	v := csvcheck.NewReader(body, o.parsed.File)
	// One byte past the limit tells a file of exactly limit bytes, whose
	// end the validator has checked, from a longer one.
	n, err := io.Copy(io.Discard, io.LimitReader(v, limit+1))
	if err != nil {
		return false, err
	}
	if n <= limit {
		// The validator saw the end of the input (io.Copy stops at EOF).
		if n != size {
			return false, review.Errorf(review.Transient, "read %d bytes of %s, expected %d", n, o.key, size)
		}
		o.report.Rows = v.Result().Rows
		return true, nil
	}
	return false, nil
}

// openObject opens the event's version of the object: pinned by VersionId
// in a versioned bucket, else by ETag (If-Match), so a newer object under
// the same key is never read in its place.
func (h *Handler) openObject(ctx context.Context, o *object) (io.ReadCloser, int64, error) {
	in := &s3.GetObjectInput{Bucket: &o.bucket, Key: &o.key}
	if o.ref.VersionID != "" {
		in.VersionId = aws.String(o.ref.VersionID)
	} else if o.ref.ETag != "" {
		in.IfMatch = aws.String(`"` + o.ref.ETag + `"`)
	}
	out, err := h.S3.GetObject(ctx, in)
	if err != nil {
		werr := (&blob.S3{Bucket: o.bucket}).Wrap("read", o.key, err)
		if blob.IsNotFound(werr) || blob.IsPrecondition(werr) {
			return nil, 0, errObjectGone
		}
		return nil, 0, werr
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// errObjectGone: the event's version of the object was deleted or replaced
// before it could be read. There is nothing to upload; a newer version has
// its own event.
var errObjectGone = &review.Error{Kind: review.Gone, Msg: "the object version of the event no longer exists (deleted or replaced since the event)"}

// classify maps an error to the outcome it means. Only bad content and a
// vanished object are final; every Graph or S3 failure, even a permanent
// refusal, is returned for Lambda's retries and the failure queue, so that
// an operator can replay it once the cause (a permission, a setting) is
// fixed: nothing is dropped on the floor.
func classify(err error) (review.Status, error) {
	var ce *csvcheck.Error
	switch {
	case errors.As(err, &ce), errors.Is(err, errObjectGone):
		return review.Rejected, err
	default:
		return review.Failed, err
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}
