package ingest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// creatingLease bounds how long other invocations wait for the one that
// creates a review's session before they take over.
const creatingLease = time.Minute

var errCreatorBusy = errors.New("another invocation is creating the session")

// session finds or creates the upload session of o's review. The ledger
// record is the meeting point: one invocation takes the creating lease
// with a conditional write and creates the session in Graph; the others
// wait for its id. A lapsed lease (the creator crashed) is taken over, and
// a session Graph already has is recovered through a list (409 on create).
func (h *Handler) session(ctx context.Context, o *object) (*ledger.Session, error) {
	t := o.parsed.Target
	for wait := 50 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		rec, err := o.led.UpdateSession(ctx, t, func(s *ledger.Session, exists bool) error {
			now := h.now()
			switch {
			case s.SessionID != "" || s.Ended():
				return ledger.ErrNoChange
			case s.Creating.Held(now) && s.Creating.Owner != o.owner:
				return errCreatorBusy
			}
			s.State, s.Profile = ledger.Pending, h.Profile
			s.Creating = &ledger.Lease{Owner: o.owner, Until: now.Add(creatingLease).UTC()}
			return nil
		})
		switch {
		case errors.Is(err, errCreatorBusy):
			select {
			case <-ctx.Done():
				return nil, review.Errorf(review.Transient, "waiting for the session of %s to be created: %w", t, ctx.Err())
			case <-time.After(wait/2 + rand.N(wait)):
			}
			continue
		case err != nil:
			return nil, err
		case rec.SessionID != "" || rec.Ended():
			return rec, nil
		}
		return h.create(ctx, o, t)
	}
}

// create makes the Graph session under the creating lease and records it.
func (h *Handler) create(ctx context.Context, o *object, t review.Target) (*ledger.Session, error) {
	// Index first: the finalizer must never miss a session that exists.
	if err := o.led.MarkOpen(ctx, t); err != nil {
		return nil, h.dropLease(ctx, o, t, err)
	}
	gs, err := h.Graph.Create(ctx, t)
	if review.KindOf(err) == review.Conflict {
		gs, err = h.recover(ctx, t, err)
	}
	if err != nil {
		return nil, h.dropLease(ctx, o, t, fmt.Errorf("creating the upload session: %w", err))
	}
	created := gs.CreatedDateTime
	if created.IsZero() {
		created = h.now()
	}
	rec, err := o.led.UpdateSession(ctx, t, func(s *ledger.Session, exists bool) error {
		if s.SessionID != "" {
			if s.SessionID != gs.ID {
				return review.Errorf(review.Internal, "the ledger records session %s for %s, Graph gave %s", s.SessionID, t, gs.ID)
			}
			return ledger.ErrNoChange
		}
		s.SessionID, s.Profile, s.Creating = gs.ID, h.Profile, nil
		s.CreatedAt = created.UTC()
		s.WindowEnds = created.Add(h.Settings.UploadWindow).UTC()
		s.GraphStatus = gs.Status
		switch gs.Status {
		case graph.StatusComplete:
			s.State, s.ClosedAt, s.Note = ledger.Complete, h.now().UTC(), "Graph already had this session, complete"
		case graph.StatusExpired:
			s.State, s.ExpiredAt, s.Note = ledger.Expired, h.now().UTC(), "Graph already had this session, expired"
		default:
			s.State = ledger.Open
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec.Ended() {
		_ = o.led.MarkClosed(ctx, t.SessionKey())
	}
	h.log().Info("upload session ready", "review", t.ReviewInstanceID, "session", rec.SessionID, "state", rec.State)
	return rec, nil
}

// recover finds the session Graph already has for t after a 409: created
// by an invocation that crashed before recording it, or by someone else.
func (h *Handler) recover(ctx context.Context, t review.Target, conflict error) (*graph.Session, error) {
	if !h.CanList {
		return nil, fmt.Errorf("%w; the %s API cannot list sessions, so the existing one cannot be recovered: delete it or record its id in the ledger", conflict, h.Profile)
	}
	list, err := h.Graph.List(ctx, t, graph.Filter{ReferenceID: t.ReviewInstanceID})
	if err != nil {
		return nil, fmt.Errorf("%w; listing the existing session: %w", conflict, err)
	}
	var found *graph.Session
	for i := range list {
		s := &list[i]
		if found == nil || s.Status == graph.StatusActive {
			found = s
		}
	}
	if found == nil {
		return nil, review.Errorf(review.Transient, "%v; but no session with referenceId %s is listed yet", conflict, t.ReviewInstanceID)
	}
	h.log().Info("recovered the session Graph already had", "review", t.ReviewInstanceID, "session", found.ID, "status", found.Status)
	return found, nil
}

// dropLease gives up the creating lease after a failure so that the next
// attempt need not wait for it to lapse, and returns cause.
func (h *Handler) dropLease(ctx context.Context, o *object, t review.Target, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := o.led.UpdateSession(cctx, t, func(s *ledger.Session, exists bool) error {
		if s.Creating == nil || s.Creating.Owner != o.owner {
			return ledger.ErrNoChange
		}
		s.Creating = nil
		return nil
	})
	if err != nil {
		h.log().Warn("could not drop the creating lease; it lapses by itself", "error", err)
	}
	return cause
}
