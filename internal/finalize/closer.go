// Package finalize closes upload sessions at the right moment, or records
// them as expired, so that no uploaded data is silently left unprocessed.
// The Closer does it for one session (ingest uses it when a manifest is
// complete); Run does it for every open session (the scheduled function).
package finalize

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// Graph is what the Closer needs of the Graph client.
type Graph interface {
	Get(ctx context.Context, t review.Target, id string) (*graph.Session, error)
	MarkDone(ctx context.Context, t review.Target, id string) (*graph.Session, error)
}

// Closer closes one session exactly once, whoever else is trying.
type Closer struct {
	Graph  Graph
	Ledger *ledger.Ledger
	Policy review.Policy
	Log    *slog.Logger
	// Owner names this run in leases; unique per invocation.
	Owner string
	// LeaseFor is how long a closing lease is held at most (default 2m).
	LeaseFor time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Action is what happened to one session.
type Action string

// The actions of a finalizer run.
const (
	Closed      Action = "closed"
	MarkExpired Action = "expired"
	StillOpen   Action = "open"
	Skipped     Action = "skipped" // ended already, or another run holds it
)

// Outcome is the result of handling one session.
type Outcome struct {
	Session   string   `json:"session"`
	SessionID string   `json:"sessionId,omitempty"`
	Action    Action   `json:"action"`
	Reason    string   `json:"reason,omitempty"`
	Missing   []string `json:"missing,omitempty"`
	Files     int      `json:"files"`
}

func (c *Closer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Closer) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

var errLeaseHeld = errors.New("another run is closing or has closed this session")

// Check refreshes the session at sessionKey from Graph, reconciles the
// ledger with it, and closes it or records it expired when the rules say
// so. onlyManifest limits closing to a complete manifest (ingest's case).
func (c *Closer) Check(ctx context.Context, sessionKey string, onlyManifest bool) (Outcome, error) {
	out := Outcome{Session: sessionKey, Action: StillOpen}
	rec, err := c.Ledger.SessionByKey(ctx, sessionKey)
	if blob.IsNotFound(err) {
		// An index entry with no record: a crash between the two writes.
		out.Action, out.Reason = Skipped, "no ledger record"
		return out, c.Ledger.MarkClosed(ctx, sessionKey)
	}
	if err != nil {
		return out, err
	}
	out.SessionID, out.Files = rec.SessionID, len(rec.Files)
	if rec.Ended() {
		out.Action, out.Reason = Skipped, "already "+string(rec.State)
		return out, c.Ledger.MarkClosed(ctx, sessionKey)
	}
	if rec.SessionID == "" {
		if !rec.Creating.Held(c.now()) {
			// The creation failed and was given up; the next file's
			// ingest creates the session and indexes it again.
			out.Action, out.Reason = Skipped, "no Graph session was created"
			return out, c.Ledger.MarkClosed(ctx, sessionKey)
		}
		out.Reason = "the Graph session is still being created"
		return out, nil
	}
	t := rec.Target
	gs, err := c.Graph.Get(ctx, t, rec.SessionID)
	if err != nil {
		return out, fmt.Errorf("refreshing session %s: %w", rec.SessionID, err)
	}
	rec, err = c.reconcile(ctx, t, gs)
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
		return out, c.finish(ctx, rec)
	}
	d := review.Decide(rec.Facts(), c.Policy, c.now())
	out.Missing = d.Missing
	switch {
	case d.Expired:
		rec, err = c.expire(ctx, t, "the upload window ended with no file uploaded")
		if err != nil {
			return out, err
		}
		out.Action, out.Reason = MarkExpired, rec.Note
		return out, c.finish(ctx, rec)
	case !d.Close || (onlyManifest && d.Reason != review.ReasonManifestComplete):
		out.Reason = d.Why
		if d.Close {
			out.Reason = "due (" + d.Reason + "); left to the finalizer"
		}
		return out, nil
	}
	if d.Reason == review.ReasonDeadline && len(d.Missing) > 0 {
		c.log().Warn("closing at the deadline with files missing from the manifest",
			"session", rec.SessionID, "review", t.ReviewInstanceID, "missing", d.Missing)
	}
	rec, err = c.close(ctx, t, d.Reason)
	if errors.Is(err, errLeaseHeld) {
		out.Action, out.Reason = Skipped, err.Error()
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.Action, out.Reason = actionFor(rec.State), rec.CloseReason
	if rec.State == ledger.Expired {
		out.Reason = rec.Note
	}
	return out, c.finish(ctx, rec)
}

func actionFor(s ledger.State) Action {
	if s == ledger.Expired {
		return MarkExpired
	}
	return Closed
}

// reconcile copies what Graph says of the session into the ledger. A
// session Graph reports complete or expired is recorded so.
func (c *Closer) reconcile(ctx context.Context, t review.Target, gs *graph.Session) (*ledger.Session, error) {
	now := c.now().UTC()
	return c.Ledger.UpdateSession(ctx, t, func(s *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		}
		s.GraphStatus, s.GraphFiles, s.GraphBytes, s.RefreshedAt = gs.Status, gs.Stats.FilesUploaded, gs.Stats.TotalBytesUploaded, now
		switch {
		case s.Ended():
		case gs.Status == graph.StatusComplete:
			s.State, s.ClosedAt = ledger.Complete, now
			s.Closing = nil
			if s.CloseReason == "" {
				s.CloseReason = "closed in Graph"
			}
			s.Note = "Graph reports the session complete"
		case gs.Status == graph.StatusExpired:
			s.State, s.ExpiredAt, s.Closing = ledger.Expired, now, nil
			s.Note = "Graph reports the session expired: its files were not processed"
		}
		return nil
	})
}

// close takes the closing lease, sends the one PATCH, and records the end.
func (c *Closer) close(ctx context.Context, t review.Target, reason string) (*ledger.Session, error) {
	leaseFor := c.LeaseFor
	if leaseFor <= 0 {
		leaseFor = 2 * time.Minute
	}
	rec, err := c.Ledger.UpdateSession(ctx, t, func(s *ledger.Session, exists bool) error {
		now := c.now()
		switch {
		case !exists:
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		case s.Ended():
			// Another run closed it since this one read the record.
			return errLeaseHeld
		case s.Closing.Held(now) && s.Closing.Owner != c.Owner:
			return errLeaseHeld
		}
		s.Closing = &ledger.Lease{Owner: c.Owner, Until: now.Add(leaseFor).UTC()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	gs, err := c.Graph.MarkDone(ctx, t, rec.SessionID)
	if err != nil {
		if review.KindOf(err) == review.Transient || review.KindOf(err) == review.Internal {
			// Leave the lease to lapse: the PATCH may have landed, and the
			// next run's refresh from Graph will tell.
			return nil, fmt.Errorf("closing session %s: %w", rec.SessionID, err)
		}
		// Refused for good (the session is no longer active): ask Graph
		// what it is now and record that instead of retrying forever.
		c.log().Warn("Graph refused to close the session", "session", rec.SessionID, "error", err)
		if fresh, gerr := c.Graph.Get(ctx, t, rec.SessionID); gerr == nil && fresh.Status != graph.StatusActive {
			return c.reconcile(ctx, t, fresh)
		}
		return c.expire(ctx, t, "Graph refused to close the session ("+err.Error()+"): its files were not processed")
	}
	now := c.now().UTC()
	return c.Ledger.UpdateSession(ctx, t, func(s *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		}
		s.State, s.ClosedAt, s.CloseReason, s.Closing = ledger.Complete, now, reason, nil
		s.GraphStatus, s.GraphFiles, s.GraphBytes = gs.Status, gs.Stats.FilesUploaded, gs.Stats.TotalBytesUploaded
		s.Note = "closed (" + reason + ")"
		return nil
	})
}

func (c *Closer) expire(ctx context.Context, t review.Target, note string) (*ledger.Session, error) {
	now := c.now().UTC()
	return c.Ledger.UpdateSession(ctx, t, func(s *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "ledger record of %s vanished", t.SessionKey())
		}
		if s.Ended() {
			return ledger.ErrNoChange
		}
		s.State, s.ExpiredAt, s.Closing, s.Note = ledger.Expired, now, nil, note
		return nil
	})
}

// finish applies an ended session's consequences: the files' reports of an
// expired session say so, and the session leaves the open index.
func (c *Closer) finish(ctx context.Context, rec *ledger.Session) error {
	if rec.State == ledger.Expired {
		for _, f := range rec.Files {
			if err := c.markReportExpired(ctx, rec, f); err != nil {
				return err
			}
		}
	}
	return c.Ledger.MarkClosed(ctx, rec.Target.SessionKey())
}

func (c *Closer) markReportExpired(ctx context.Context, rec *ledger.Session, f ledger.File) error {
	r, err := c.Ledger.Report(ctx, f.Key)
	if err != nil && !blob.IsNotFound(err) {
		return err
	}
	if err == nil && r.Status == review.Expired {
		return nil
	}
	if err == nil && r.VersionID != f.VersionID && r.ETag != f.ETag {
		// The report now describes a newer version of the key; leave it.
		return nil
	}
	rep := review.Report{Key: f.Key, VersionID: f.VersionID, ETag: f.ETag, SessionID: rec.SessionID, Bytes: f.Size, Rows: f.Rows}
	if r != nil {
		rep = *r
	}
	rep.Status = review.Expired
	rep.SessionID = rec.SessionID
	rep.SetTarget(rec.Target)
	rep.At = c.now().UTC()
	msg := "the file was uploaded, but its session expired before it could be closed, so Entra did not process the data"
	if rec.Note != "" && !strings.Contains(msg, rec.Note) {
		msg += " (" + rec.Note + ")"
	}
	rep.Errors = []review.FieldError{{Message: msg}}
	return c.Ledger.WriteReport(ctx, rep)
}

// Refresh reads t's session from Graph and records what Graph says of it
// (its stats; complete or expired) in the ledger.
func (c *Closer) Refresh(ctx context.Context, t review.Target) (*ledger.Session, error) {
	rec, err := c.Ledger.Session(ctx, t)
	if err != nil {
		return nil, err
	}
	if rec.SessionID == "" {
		return rec, nil
	}
	gs, err := c.Graph.Get(ctx, t, rec.SessionID)
	if err != nil {
		return nil, err
	}
	rec, err = c.reconcile(ctx, t, gs)
	if err == nil && rec.Ended() {
		err = c.finish(ctx, rec)
	}
	return rec, err
}
