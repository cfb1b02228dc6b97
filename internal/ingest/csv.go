package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/csvcheck"
	"github.com/byodrop/byodrop/internal/deadline"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/lease"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/review"
)

const (
	defaultMargin = 5 * time.Second
	// defaultPrecheckBytes is twice csvcheck's longest record, so that an
	// over-long first record is refused before anything reaches Graph.
	defaultPrecheckBytes = 2 * csvcheck.MaxRecordBytes
)

// uploadReadBytes is the most of the object one read asks S3 for, in the
// pre-check and while the object streams to Graph.
const uploadReadBytes = 1 << 20

// readBytes is the read buffer for n bytes of an object: uploadReadBytes,
// or less for a smaller object (one byte past its end reads its EOF), and
// never under bufio's minimum of 16.
func readBytes(n int64) int {
	return int(max(min(n+1, uploadReadBytes), 16))
}

// claimPoll is how often an invocation that meets another's claim looks
// again whether it has finished or lapsed.
const claimPoll = time.Second

// handleCSV takes the object version's claim, ingests it, and records the
// outcome. Every path out of a held claim finishes or releases it; a claim
// another invocation holds is waited for, and never ends this invocation
// as a success unless its holder finished.
func (h *Handler) handleCSV(ctx context.Context, o *object) error {
	stop := deadline.Margin{Fixed: h.Margin, Default: defaultMargin, Share: 10}.StopAt(ctx, h.now())
	work, cancel := context.WithDeadline(ctx, stop)
	defer cancel()

	claims := h.claims(o)
	for {
		res, err := claims.Take(work, o.ref, o.owner)
		if err != nil {
			return h.finish(ctx, o, review.Failed, fmt.Errorf("claiming the object: %w", err))
		}
		if res.Acquired {
			return h.ingestClaimed(ctx, work, o, claims, res.Resumed)
		}
		c := res.Claim
		if c.State == claim.Active {
			h.log().Info("object version is being handled by another invocation; waiting for it", "key", o.key, "until", c.Until)
			seen, err := claims.Wait(work, o.ref, claimPoll)
			if err != nil {
				// Still held when this invocation's time is up: fail, so
				// that Lambda tries again (and, in the end, the failure
				// queue keeps it) instead of taking the holder's word for
				// an outcome it has not reached.
				o.outcome.Status = "in-progress"
				return fmt.Errorf("%s: another invocation still handles this object version: %w", o.key, err)
			}
			if seen.State != claim.Done {
				continue // released or lapsed: take it over
			}
			c = *seen
		}
		return h.handled(ctx, o, c)
	}
}

// handled answers an event for an object version whose handling is done.
func (h *Handler) handled(ctx context.Context, o *object, c claim.Claim) error {
	if c.Outcome != review.Uploaded && c.Outcome != review.Expired {
		o.outcome.Status = string(c.Outcome)
		h.log().Info("object version already handled; its report stands", "key", o.key, "outcome", c.Outcome)
		return nil
	}
	o.report.SessionID = c.SessionID
	// A repeated event says "duplicate" only where the report still says
	// this version was uploaded: an expired session's report, or the
	// report of a newer version of the key, stands.
	if cur, err := o.led.Report(ctx, o.key); err == nil && (cur.VersionID != o.ref.VersionID || cur.ETag != o.ref.ETag || cur.Status == review.Expired) {
		o.outcome.Status, o.outcome.SessionID = string(review.Duplicate), c.SessionID
		h.log().Info("repeated event; the key's report stands", "key", o.key, "report", cur.Status, "reportVersion", cur.VersionID)
		if h.Metrics != nil {
			h.Metrics.Object(review.Duplicate, 0, 0, 0)
		}
		return nil
	}
	return h.finish(ctx, o, review.Duplicate, nil)
}

// ingestClaimed does the work under the held claim, renewing it, and
// settles the claim with the outcome.
func (h *Handler) ingestClaimed(ctx, work context.Context, o *object, claims *claim.Claims, resumed bool) error {
	held, stop := claims.Hold(work, o.ref, o.owner)
	status, err := h.ingestCSV(held, o, resumed)
	stop()
	if cause := context.Cause(held); errors.Is(cause, lease.ErrLost) && status == review.Failed {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	// The claim is settled even when the work context has run out.
	settle, cancelSettle := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelSettle()
	if status == review.Failed {
		if rerr := claims.Release(settle, o.ref, o.owner); rerr != nil {
			h.log().Warn("could not release the claim; it lapses within a minute", "key", o.key, "error", rerr)
		}
		return h.finish(ctx, o, status, err)
	}
	if ferr := claims.Finish(settle, o.ref, o.owner, status, o.report.SessionID); ferr != nil {
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
	sessions := h.sessions(o)
	if resumed {
		// What an earlier attempt did is read from the record itself.
		sessions.Cache = nil
	}
	rec, err := sessions.Ensure(ctx, o.parsed.Target)
	if err != nil {
		return classify(err)
	}
	o.report.SessionID = rec.SessionID
	if resumed && rec.HasFile(o.ref.Key, o.ref.Version()) {
		// An earlier attempt uploaded and recorded this version, then
		// stopped before it could finish its claim: done, never re-sent.
		h.log().Info("an earlier attempt uploaded and recorded this file; finishing it", "key", o.key, "session", rec.SessionID)
		return committedStatus(rec)
	}
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
			return h.commit(ctx, o, sessions, rec)
		}
	}
	var last *csvcheck.Reader
	open := func(ctx context.Context) (io.ReadCloser, error) {
		body, _, err := h.openObject(ctx, o)
		if err != nil {
			return nil, err
		}
		last = csvcheck.NewReader(body, o.parsed.File)
		return readCloser{Reader: bufio.NewReaderSize(last, readBytes(o.size)), Closer: body}, nil
	}
	started := h.now()
	_, err = h.Graph.UploadFile(ctx, t, rec.SessionID, o.parsed.File, o.size, open)
	if last != nil {
		o.report.Rows = last.Result().Rows
	}
	if err != nil {
		if review.KindOf(err) == review.Gone || graph.IsRefusal(err) {
			// Refused: ask Graph what the session is now, whatever the
			// refusal's wording, rather than guess from it.
			if fresh, ferr := sessions.Refresh(ctx, t); ferr == nil && fresh.Ended() {
				return review.Late, fmt.Errorf("session %s is %s: %s", rec.SessionID, fresh.State, fresh.Note)
			}
		}
		return classify(err)
	}
	h.log().Debug("uploaded", "key", o.key, "session", rec.SessionID, "upload_ms", h.now().Sub(started).Milliseconds())
	return h.commit(ctx, o, sessions, rec)
}

// committedStatus is the status of a file recorded in rec: uploaded,
// unless the session expired before it could be closed.
func committedStatus(rec *ledger.Session) (review.Status, error) {
	if rec.State == ledger.Expired {
		return review.Expired, fmt.Errorf("session %s expired: %s", rec.SessionID, rec.Note)
	}
	return review.Uploaded, nil
}

// commit records the uploaded file in the session's ledger record, then
// closes the session at once if that completes its manifest.
func (h *Handler) commit(ctx context.Context, o *object, sessions *lifecycle.Sessions, rec *ledger.Session) (review.Status, error) {
	f := ledger.File{Name: o.parsed.File, Key: o.key, VersionID: o.ref.VersionID, ETag: o.ref.ETag,
		Size: o.size, Rows: o.report.Rows, UploadedAt: h.now().UTC()}
	updated, err := sessions.RecordFile(ctx, o.parsed.Target, f, rec)
	if err != nil {
		return review.Failed, fmt.Errorf("recording the upload in the ledger: %w", err)
	}
	if updated.Ended() {
		// The upload landed while the session ended (a long upload after
		// an empty session expired): the file is in Graph, and its report
		// says what became of it.
		return committedStatus(updated)
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
	d := review.Decide(rec.Facts(), h.policy(), h.now())
	return d.Close && d.Reason == review.ReasonManifestComplete
}

// closeIfComplete closes the session now if its manifest is complete.
// A failure is only logged: the finalizer applies the same rule later.
func (h *Handler) closeIfComplete(ctx context.Context, o *object) {
	out, err := h.sessions(o).Check(ctx, o.parsed.Target.SessionKey(), true)
	if err != nil {
		h.log().Warn("could not close the session; the finalizer will", "session", out.SessionID, "error", err)
		return
	}
	if h.Metrics != nil {
		h.Metrics.SessionEnded(out)
	}
	if out.Action == lifecycle.Closed {
		h.log().Info("session closed: manifest complete", "session", out.SessionID, "review", o.parsed.Target.ReviewInstanceID)
	}
}

func (h *Handler) policy() review.Policy {
	return review.Policy{QuietPeriod: h.Settings.QuietPeriod, CloseMargin: h.Settings.CloseMargin}
}

// sessions is the session lifecycle as o's invocation drives it.
func (h *Handler) sessions(o *object) *lifecycle.Sessions {
	s := &lifecycle.Sessions{
		Graph: h.Graph, Ledger: o.led, Claims: h.claims(o), Log: h.log(), Owner: o.owner, Now: h.now,
		Policy: h.policy(), UploadWindow: h.Settings.UploadWindow, Profile: h.Profile, CanList: h.CanList,
		Cache: h.records,
	}
	if h.Reviews != nil {
		s.BeforeCreate = h.checkInstance
	}
	return s
}

// permissionLogged: the missing AccessReview.Read.All has been logged by
// this container.
var permissionLogged atomic.Bool

// checkInstance is the instance check, made only on the way to creating a
// session: an instance past Initializing takes no more data (the file is
// late and no session is created); one in Initializing anchors the window
// on its start. An instance that cannot be read (no permission, unknown to
// the reviews API, Graph unavailable) changes nothing: ingest goes on as
// it would without the check, and Graph itself has the last word.
func (h *Handler) checkInstance(ctx context.Context, t review.Target) (time.Time, error) {
	inst, err := h.Reviews.GetInstance(ctx, t.ReviewInstanceID)
	if err != nil {
		if perm, ok := graph.MissingPermission(err); ok {
			if permissionLogged.CompareAndSwap(false, true) {
				h.log().Warn("the review instance check is off: the Graph app lacks "+perm+"; files are ingested without it",
					"permission", perm, "error", err.Error())
			}
			return time.Time{}, nil
		}
		h.log().Info("could not read the review instance; creating the session without the check", "review", t.ReviewInstanceID, "error", err.Error())
		return time.Time{}, nil
	}
	switch {
	case inst.IsInitializing():
		now := h.now()
		if s := inst.StartDateTime; !s.IsZero() && s.Before(now) {
			return s, nil
		}
		return now, nil
	case inst.Status == "" || graph.EqualStatus(inst.Status, graph.InstanceNotStarted):
		return time.Time{}, nil
	}
	return time.Time{}, review.Errorf(review.Gone, "the review instance is %s: its upload window is over", inst.Status)
}

// claims are the object-version claims beside o's ledger.
func (h *Handler) claims(o *object) *claim.Claims {
	c := claim.New(o.led)
	if h.ClaimLease > 0 {
		c.Lease = h.ClaimLease
	}
	return c
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
	n, err := drain(io.LimitReader(v, limit+1), make([]byte, readBytes(min(size, limit))))
	if err != nil {
		return false, err
	}
	if n <= limit {
		// The validator saw the end of the input (drain stops at EOF).
		if n != size {
			return false, review.Errorf(review.Transient, "read %d bytes of %s, expected %d", n, o.key, size)
		}
		o.report.Rows = v.Result().Rows
		return true, nil
	}
	return false, nil
}

// drain reads r to its end through buf and says how many bytes it read.
// Unlike io.Copy to io.Discard, which reads 8 KiB at a time, each read
// asks for all of buf, so a small file is pre-checked in few reads.
func drain(r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
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
			return nil, 0, review.ErrObjectGone
		}
		return nil, 0, werr
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// classify maps an error to the outcome it means (review.OutcomeOf): only
// bad content and a vanished object are final; every Graph or S3 failure,
// even a permanent refusal, is returned for Lambda's retries and the
// failure queue, so that an operator can replay it once the cause (a
// permission, a setting) is fixed: nothing is dropped on the floor.
func classify(err error) (review.Status, error) {
	return review.OutcomeOf(err).Status, err
}

type readCloser struct {
	io.Reader
	io.Closer
}
