package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// closeLease bounds how long one closer holds a session's closing lease.
const closeLease = 2 * time.Minute

var errLeaseHeld = errors.New("another run is closing or has closed this session")

// Check reads the session at sessionKey and applies CheckRecord to it.
func (s *Sessions) Check(ctx context.Context, sessionKey string, onlyManifest bool) (Outcome, error) {
	rec, err := s.Ledger.SessionByKey(ctx, sessionKey)
	if blob.IsNotFound(err) {
		// An index entry with no record: a crash between the two writes
		// of a first create, before any create was sent.
		return Outcome{Session: sessionKey, Action: Skipped, Reason: "no ledger record"}, s.Ledger.MarkClosed(ctx, sessionKey)
	}
	if err != nil {
		return Outcome{Session: sessionKey, Action: StillOpen}, err
	}
	return s.CheckRecord(ctx, rec, onlyManifest)
}

// CheckRecord refreshes the session of rec from Graph, reconciles the
// ledger with it, and closes it or records it expired when the rules say
// so. onlyManifest limits closing to a complete manifest (ingest's case).
// An ended session whose reports are not all written yet has them written
// (again) before it leaves the open index.
func (s *Sessions) CheckRecord(ctx context.Context, rec *ledger.Session, onlyManifest bool) (Outcome, error) {
	key := rec.Target.SessionKey()
	out := Outcome{Session: key, Action: StillOpen, SessionID: rec.SessionID, Files: len(rec.Files)}
	if rec.Ended() {
		out.Action, out.Reason = Skipped, "already "+string(rec.State)
		return out, s.finish(ctx, rec)
	}
	if rec.SessionID == "" {
		return s.checkUncreated(ctx, rec, out)
	}
	t := rec.Target
	gs, err := s.Graph.Get(ctx, t, rec.SessionID)
	if review.KindOf(err) == review.NotFound && s.gone(rec) {
		rec, err = s.expire(ctx, t, fmt.Sprintf("Graph no longer has session %s (404: deleted by an admin, or purged); its files were not processed", rec.SessionID))
		if err != nil {
			return out, err
		}
		out.Action, out.Reason = MarkExpired, rec.Note
		return out, s.finish(ctx, rec)
	}
	if err != nil {
		return out, fmt.Errorf("refreshing session %s: %w", rec.SessionID, err)
	}
	rec, err = s.reconcile(ctx, t, gs)
	if err != nil {
		return out, err
	}
	if rec.Ended() {
		// Graph says it ended: expired (which the summary must show), or
		// complete, closed by another run or before a crash; not by us.
		out.Action, out.Reason = MarkExpired, rec.Note
		if rec.State == ledger.Complete {
			out.Action = Skipped
		}
		return out, s.finish(ctx, rec)
	}
	d := review.Decide(rec.Facts(), s.Policy, s.now())
	if d.Close && d.Reason == review.ReasonQuietPeriod && s.Claims != nil {
		// Only now is it worth a LIST: the quiet period is over, but a
		// file still being uploaded must not meet a closed session.
		n, err := s.Claims.InFlight(ctx, key)
		if err != nil {
			return out, fmt.Errorf("looking for uploads in flight: %w", err)
		}
		if n > 0 {
			f := rec.Facts()
			f.InFlight = true
			d = review.Decide(f, s.Policy, s.now())
		}
	}
	out.Missing = d.Missing
	switch {
	case d.Expired:
		rec, err = s.expire(ctx, t, "the upload window ended with no file uploaded")
		if err != nil {
			return out, err
		}
		out.Action, out.Reason = MarkExpired, rec.Note
		return out, s.finish(ctx, rec)
	case !d.Close || (onlyManifest && d.Reason != review.ReasonManifestComplete):
		out.Reason = d.Why
		if d.Close {
			out.Reason = "due (" + d.Reason + "); left to the finalizer"
		}
		return out, nil
	}
	if d.Reason == review.ReasonDeadline && len(d.Missing) > 0 {
		s.log().Warn("closing at the deadline with files missing from the manifest",
			"session", rec.SessionID, "review", t.ReviewInstanceID, "missing", d.Missing)
	}
	rec, err = s.close(ctx, t, d.Reason)
	if errors.Is(err, errLeaseHeld) {
		out.Action, out.Reason = Skipped, err.Error()
		return out, nil
	}
	if err != nil {
		return out, err
	}
	if !rec.Ended() {
		out.Reason = rec.Note
		return out, nil
	}
	out.Action, out.Reason = Closed, rec.CloseReason
	if rec.State == ledger.Expired {
		out.Action, out.Reason = MarkExpired, rec.Note
	}
	return out, s.finish(ctx, rec)
}

// gone reports whether a 404 for rec's session means that Graph no longer
// has it: the session is older than a read that could outrun its create,
// and was made on the API profile in use (a changed GRAPH_API would make
// every session 404 without any having gone).
func (s *Sessions) gone(rec *ledger.Session) bool {
	return (rec.Profile == "" || rec.Profile == s.Profile) && !rec.CreatedAt.IsZero() && s.now().Sub(rec.CreatedAt) >= goneAfter
}

// checkUncreated handles an index entry whose record has no session id.
// The entry leaves the index only when no session can exist: Graph
// refused the create for good, the window of any session it could have
// made is over, or (on a profile that lists) Graph lists none once every
// create that was sent has surely been answered. A session Graph lists is
// adopted.
func (s *Sessions) checkUncreated(ctx context.Context, rec *ledger.Session, out Outcome) (Outcome, error) {
	now := s.now()
	key := rec.Target.SessionKey()
	switch {
	case rec.State == ledger.CreateUnknown:
		s.log().Error("create outcome unknown: the review's files wait for an operator", "session", key, "note", rec.Note)
		out.Reason = rec.Note
		return out, nil
	case rec.Creating.Held(now):
		out.Reason = "the Graph session is still being created"
		return out, nil
	case rec.CreateRefused != "":
		out.Action, out.Reason = Skipped, "Graph refused to create the session: "+rec.CreateRefused
		return out, s.Ledger.MarkClosed(ctx, key)
	case rec.CreateStartedAt.IsZero() || !now.Before(rec.CreateStartedAt.Add(s.UploadWindow+createSettle)):
		out.Action, out.Reason = Skipped, "no Graph session was created, and any it could have had is past its window"
		return out, s.Ledger.MarkClosed(ctx, key)
	case !s.CanList:
		out.Reason = "a create was interrupted; the next file's ingest creates the session (the API cannot list sessions to check)"
		return out, nil
	}
	list, err := s.Graph.List(ctx, rec.Target, graph.Filter{ReferenceID: rec.Target.ReviewInstanceID})
	if err != nil {
		return out, fmt.Errorf("looking for a session an interrupted create may have made: %w", err)
	}
	var found *graph.Session
	for i := range list {
		if found == nil || list[i].Status == graph.StatusActive {
			found = &list[i]
		}
	}
	if found == nil {
		if now.Before(rec.CreateStartedAt.Add(createSettle)) {
			out.Reason = "a create was interrupted; waiting until any it sent has surely landed"
			return out, nil
		}
		out.Action, out.Reason = Skipped, "no Graph session was created"
		return out, s.Ledger.MarkClosed(ctx, key)
	}
	created := found.CreatedDateTime
	if created.IsZero() {
		created = rec.CreateStartedAt
	}
	adopted, err := s.Ledger.UpdateSession(ctx, rec.Target, func(r *ledger.Session, exists bool) error {
		if r.SessionID != "" || r.Creating.Held(s.now()) {
			return ledger.ErrNoChange
		}
		adopt(r, found, created, s.UploadWindow, s.now())
		return nil
	})
	if err != nil {
		return out, err
	}
	s.log().Info("adopted the session an interrupted create made", "session", adopted.SessionID, "review", rec.Target.ReviewInstanceID)
	if adopted.SessionID == "" {
		out.Reason = "the Graph session is being created again"
		return out, nil
	}
	return s.CheckRecord(ctx, adopted, false)
}

// reconcile copies what Graph says of the session into the ledger. A
// session Graph reports complete or expired is recorded so.
func (s *Sessions) reconcile(ctx context.Context, t review.Target, gs *graph.Session) (*ledger.Session, error) {
	now := s.now().UTC()
	return s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		}
		r.GraphStatus, r.GraphFiles, r.GraphBytes, r.RefreshedAt = gs.Status, gs.Stats.FilesUploaded, gs.Stats.TotalBytesUploaded, now
		if n := int32(len(gs.Files)); n > r.GraphFiles {
			r.GraphFiles = n
		}
		switch {
		case r.Ended():
		case gs.Status == graph.StatusComplete:
			r.State, r.ClosedAt = ledger.Complete, now
			r.Closing = nil
			if r.CloseReason == "" {
				r.CloseReason = "closed in Graph"
			}
			r.Note = "Graph reports the session complete"
		case gs.Status == graph.StatusExpired:
			r.State, r.ExpiredAt, r.Closing = ledger.Expired, now, nil
			r.Note = "Graph reports the session expired: its files were not processed"
		}
		return nil
	})
}

// close takes the closing lease, sends the one PATCH, and records the end.
// A refusal ends the session only as Graph then describes it: complete,
// expired, or past its window. A session Graph still calls active stays
// open, its lease given back, for the next run.
func (s *Sessions) close(ctx context.Context, t review.Target, reason string) (*ledger.Session, error) {
	rec, err := s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		now := s.now()
		switch {
		case !exists:
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		case r.Ended():
			// Another run closed it since this one read the record.
			return errLeaseHeld
		case r.Closing.Held(now) && r.Closing.Owner != s.Owner:
			return errLeaseHeld
		}
		lease := closeLease
		if s.LeaseFor > 0 {
			lease = s.LeaseFor
		}
		r.Closing = &ledger.Lease{Owner: s.Owner, Until: now.Add(lease).UTC()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	gs, err := s.Graph.MarkDone(ctx, t, rec.SessionID)
	if err != nil {
		if !graph.IsRefusal(err) && review.IsRetryable(err) {
			// Leave the lease to lapse: the PATCH may have landed, and the
			// next run's refresh from Graph will tell.
			return nil, fmt.Errorf("closing session %s: %w", rec.SessionID, err)
		}
		s.log().Warn("Graph refused to close the session", "session", rec.SessionID, "error", err)
		fresh, gerr := s.Graph.Get(ctx, t, rec.SessionID)
		switch {
		case gerr != nil:
			return nil, errors.Join(fmt.Errorf("closing session %s: %w", rec.SessionID, err), gerr)
		case fresh.Status != graph.StatusActive:
			return s.reconcile(ctx, t, fresh)
		case !s.now().Before(rec.WindowEnds):
			return s.expire(ctx, t, "Graph refused to close the session after its window ended ("+err.Error()+"): its files were not processed")
		}
		s.releaseClosing(ctx, t)
		return nil, fmt.Errorf("closing session %s: Graph refused (%w) yet still reports it active; the next run tries again", rec.SessionID, err)
	}
	now := s.now().UTC()
	return s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		}
		r.State, r.ClosedAt, r.CloseReason, r.Closing = ledger.Complete, now, reason, nil
		r.GraphStatus, r.GraphFiles, r.GraphBytes = gs.Status, gs.Stats.FilesUploaded, gs.Stats.TotalBytesUploaded
		r.Note = "closed (" + reason + ")"
		return nil
	})
}

func (s *Sessions) releaseClosing(ctx context.Context, t review.Target) {
	_, err := s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		if r.Closing == nil || r.Closing.Owner != s.Owner {
			return ledger.ErrNoChange
		}
		r.Closing = nil
		return nil
	})
	if err != nil {
		s.log().Warn("could not give back the closing lease; it lapses by itself", "error", err)
	}
}

func (s *Sessions) expire(ctx context.Context, t review.Target, note string) (*ledger.Session, error) {
	now := s.now().UTC()
	return s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		}
		if r.Ended() {
			return ledger.ErrNoChange
		}
		r.State, r.ExpiredAt, r.Closing, r.Note = ledger.Expired, now, nil, note
		return nil
	})
}

// finish applies an ended session's consequences: the files' reports of an
// expired session say so, which is recorded once they all do, and then the
// session leaves the open index. Each step can be repeated: a run stopped
// half-way is completed by the next.
func (s *Sessions) finish(ctx context.Context, rec *ledger.Session) error {
	if rec.ReviewRecord {
		if err := s.endReview(ctx, rec); err != nil {
			return err
		}
	}
	if rec.State == ledger.Expired && !rec.ReportsWritten {
		for _, f := range rec.Files {
			if f.Standing {
				continue
			}
			if err := s.markReportExpired(ctx, rec, f); err != nil {
				return err
			}
		}
		if _, err := s.Ledger.UpdateSession(ctx, rec.Target, func(r *ledger.Session, exists bool) error {
			if !exists || len(r.Files) != len(rec.Files) {
				// A file was recorded meanwhile: its ingest reports it.
				return ledger.ErrNoChange
			}
			r.ReportsWritten = true
			return nil
		}); err != nil {
			return err
		}
	}
	return s.Ledger.MarkClosed(ctx, rec.Target.SessionKey())
}

func (s *Sessions) markReportExpired(ctx context.Context, rec *ledger.Session, f ledger.File) error {
	r, err := s.Ledger.Report(ctx, f.Key)
	if err != nil && !blob.IsNotFound(err) {
		return err
	}
	if err == nil && r.Status == review.Expired && r.VersionID == f.VersionID && r.ETag == f.ETag {
		return nil
	}
	if err == nil && r.VersionID != f.VersionID && r.ETag != f.ETag {
		// The report now describes a newer version of the key; leave it.
		return nil
	}
	return s.Ledger.WriteReport(ctx, ExpiredReport(rec, f, r, s.now()))
}

// ExpiredReport is the report of file f of the expired session rec, built
// on the file's current report prev when there is one.
func ExpiredReport(rec *ledger.Session, f ledger.File, prev *review.Report, now time.Time) review.Report {
	rep := review.Report{Key: f.Key, VersionID: f.VersionID, ETag: f.ETag, Bytes: f.Size, Rows: f.Rows}
	if prev != nil {
		rep = *prev
	}
	rep.Status = review.Expired
	rep.SessionID = rec.SessionID
	rep.SetTarget(rec.Target)
	rep.At = now.UTC()
	msg := "the file was uploaded, but its session expired before it could be closed, so Entra did not process the data"
	if rec.Note != "" && !strings.Contains(msg, rec.Note) {
		msg += " (" + rec.Note + ")"
	}
	rep.Errors = []review.FieldError{{Message: msg}}
	return rep
}

// Refresh reads t's session from Graph and records what Graph says of it
// (its stats; complete or expired) in the ledger.
func (s *Sessions) Refresh(ctx context.Context, t review.Target) (*ledger.Session, error) {
	rec, err := s.Ledger.Session(ctx, t)
	if err != nil {
		return nil, err
	}
	if rec.SessionID == "" {
		return rec, nil
	}
	gs, err := s.Graph.Get(ctx, t, rec.SessionID)
	if err != nil {
		return nil, err
	}
	rec, err = s.reconcile(ctx, t, gs)
	if err == nil && rec.Ended() {
		err = s.finish(ctx, rec)
	}
	return rec, err
}
