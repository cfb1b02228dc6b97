package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/lease"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

var errCreatorBusy = errors.New("another invocation is creating the session")

// Ensure finds or creates the upload session of t and returns its record:
// with a SessionID, or ended (complete or expired). A record in Cache is
// returned as it is: it may since have ended, which Graph's refusal of the
// upload then tells. The ledger record is
// the meeting point: one invocation takes the creating lease with a
// conditional write, indexes the session as open, and creates it in Graph
// while renewing the lease; the others wait for its id. A lapsed lease (the
// creator crashed) is taken over, and a session Graph already has is found
// again through a list (a 409 or 400 on create).
func (s *Sessions) Ensure(ctx context.Context, t review.Target) (*ledger.Session, error) {
	if rec := s.Cache.get(t.SessionKey()); rec != nil {
		return rec, nil
	}
	rec, err := s.ensure(ctx, t)
	s.Cache.put(rec)
	return rec, err
}

func (s *Sessions) ensure(ctx context.Context, t review.Target) (*ledger.Session, error) {
	for wait := 50 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		rec, err := s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
			now := s.now()
			switch {
			case r.SessionID != "" || r.Ended():
				if s.anchor(r, s.WindowStart) {
					return nil
				}
				return ledger.ErrNoChange
			case r.State == ledger.CreateUnknown:
				return errCreateUnknown(t, r)
			case r.Creating.Held(now) && r.Creating.Owner != s.Owner:
				return errCreatorBusy
			}
			r.State, r.Profile = ledger.Pending, s.Profile
			r.Creating = &ledger.Lease{Owner: s.Owner, Until: now.Add(s.leaseFor()).UTC()}
			r.CreateStartedAt, r.CreateRefused = now.UTC(), ""
			r.CreateAttempts++
			s.anchor(r, s.WindowStart)
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
		if s.BeforeCreate != nil {
			start, err := s.BeforeCreate(ctx, t)
			if err != nil {
				return nil, s.abandon(ctx, t, err)
			}
			if !start.IsZero() {
				if _, err := s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
					if !s.anchor(r, start) {
						return ledger.ErrNoChange
					}
					return nil
				}); err != nil {
					return nil, s.dropLease(ctx, t, "", err)
				}
			}
		}
		return s.create(ctx, t)
	}
}

// anchor records in r what the caller knows of the review: the instance's
// start (the earliest seen), the window end it implies, and that a review
// record follows the session. It reports whether r changed.
func (s *Sessions) anchor(r *ledger.Session, start time.Time) bool {
	changed := false
	if s.ReviewRecord && !r.ReviewRecord {
		r.ReviewRecord, changed = true, true
	}
	if !start.IsZero() && (r.WindowStart.IsZero() || start.Before(r.WindowStart)) {
		r.WindowStart, changed = start.UTC(), true
	}
	if r.SessionID != "" && !r.Ended() && !r.WindowStart.IsZero() {
		if end := r.WindowStart.Add(s.UploadWindow).UTC(); end.Before(r.WindowEnds) {
			r.WindowEnds, changed = end, true
		}
	}
	return changed
}

// abandon gives up a create that BeforeCreate stopped before anything was
// sent to Graph: the lease is given back and the attempt forgotten, so
// that the record says no create was made. It returns cause.
func (s *Sessions) abandon(ctx context.Context, t review.Target, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := s.Ledger.UpdateSession(cctx, t, func(r *ledger.Session, exists bool) error {
		if r.Creating == nil || r.Creating.Owner != s.Owner || r.SessionID != "" {
			return ledger.ErrNoChange
		}
		r.Creating = nil
		if r.CreateAttempts > 0 {
			r.CreateAttempts--
		}
		if r.CreateAttempts == 0 {
			r.CreateStartedAt = time.Time{}
		}
		return nil
	})
	if err != nil {
		s.log().Warn("could not drop the creating lease; it lapses by itself", "error", err)
	}
	return cause
}

// errCreateUnknown is the error of every file of a review whose session
// creation has an unknown outcome, until an operator resolves it.
func errCreateUnknown(t review.Target, r *ledger.Session) error {
	return review.Errorf(review.Internal,
		"the upload session of %s may exist in Graph but its id is unknown (%s); nothing is created again until an operator resolves it: see \"Create outcome unknown\" in docs/operations.md", t, r.Note)
}

// create makes the Graph session under the creating lease and records it.
func (s *Sessions) create(ctx context.Context, t review.Target) (*ledger.Session, error) {
	// Index first: the finalizer must never miss a session that exists or
	// may exist. It drops an id-less entry only once it can prove that no
	// session was created.
	if err := s.Ledger.MarkOpen(ctx, t); err != nil {
		return nil, s.dropLease(ctx, t, "", err)
	}
	held, stop := lease.Keep(ctx, s.leaseFor(), func(ctx context.Context) error { return s.renewCreating(ctx, t) }, isLeaseLost)
	gs, err := s.Graph.Create(held, t)
	if k := review.KindOf(err); err != nil && (k == review.Conflict || k == review.Invalid) {
		gs, err = s.recover(held, t, err)
	}
	stop()
	if err != nil {
		var refused *refusedCreate
		switch {
		case errors.As(err, &refused):
			return nil, s.dropLease(ctx, t, refused.Error(), fmt.Errorf("creating the upload session: %w", err))
		case errors.Is(err, errMayExist), errors.Is(err, graph.ErrOutcomeUnknown):
			return nil, s.markCreateUnknown(ctx, t, err)
		case turnedAway(err):
			return nil, s.dropLease(ctx, t, err.Error(), fmt.Errorf("creating the upload session: %w", err))
		}
		return nil, s.dropLease(ctx, t, "", fmt.Errorf("creating the upload session: %w", err))
	}
	created := gs.CreatedDateTime
	if created.IsZero() {
		created = s.now()
	}
	rec, err := s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		if r.SessionID != "" {
			if r.SessionID != gs.ID {
				return review.Errorf(review.Internal, "the ledger records session %s for %s, Graph gave %s", r.SessionID, t, gs.ID)
			}
			return ledger.ErrNoChange
		}
		adopt(r, gs, created, s.UploadWindow, s.now())
		r.Profile = s.Profile
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec.Ended() {
		if err := s.finish(ctx, rec); err != nil {
			return nil, err
		}
	}
	s.log().Info("upload session ready", "review", t.ReviewInstanceID, "session", rec.SessionID, "state", rec.State)
	return rec, nil
}

// adopt records Graph's session gs in r: its id, its window, and its state
// when Graph says it already ended.
func adopt(r *ledger.Session, gs *graph.Session, created time.Time, window time.Duration, now time.Time) {
	r.SessionID, r.Creating, r.CreateRefused = gs.ID, nil, ""
	r.CreatedAt = created.UTC()
	r.WindowEnds = created.Add(window).UTC()
	if !r.WindowStart.IsZero() {
		// The window is the review's: a session created late in it does
		// not outlive it.
		if end := r.WindowStart.Add(window).UTC(); end.Before(r.WindowEnds) {
			r.WindowEnds = end
		}
	}
	r.GraphStatus = gs.Status
	switch gs.Status {
	case graph.StatusComplete:
		r.State, r.ClosedAt, r.Note = ledger.Complete, now.UTC(), "Graph already had this session, complete"
	case graph.StatusExpired:
		r.State, r.ExpiredAt, r.Note = ledger.Expired, now.UTC(), "Graph already had this session, expired"
	default:
		r.State = ledger.Open
	}
}

func (s *Sessions) renewCreating(ctx context.Context, t review.Target) error {
	_, err := s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		if r.Creating == nil || r.Creating.Owner != s.Owner || r.SessionID != "" {
			return errLeaseLost
		}
		r.Creating.Until = s.now().Add(s.leaseFor()).UTC()
		return nil
	})
	return err
}

var errLeaseLost = errors.New("the lease was taken over")

func isLeaseLost(err error) bool { return errors.Is(err, errLeaseLost) }

// turnedAway reports whether Graph answered the create with a refusal
// that stored nothing: a 4xx other than a timeout or throttling (a missing
// permission, a review that no longer takes data).
func turnedAway(err error) bool {
	var ge *graph.Error
	if !errors.As(err, &ge) || errors.Is(err, graph.ErrOutcomeUnknown) {
		return false
	}
	return ge.StatusCode >= 400 && ge.StatusCode < 500 && ge.StatusCode != 408 && ge.StatusCode != 429
}

// refusedCreate: Graph refused the create for good; nothing was stored.
type refusedCreate struct{ err error }

func (r *refusedCreate) Error() string { return r.err.Error() }
func (r *refusedCreate) Unwrap() error { return r.err }

// errMayExist: a session exists (or may) for the pair, and the profile
// cannot list it.
var errMayExist = errors.New("a session may already exist for this review and resource")

// recover finds the session Graph already has for t after a create was
// refused as a duplicate (409, or 400: the docs allow both): created by an
// invocation that crashed before recording it, or by someone else. A 400
// for which no session is listed was a real refusal.
func (s *Sessions) recover(ctx context.Context, t review.Target, refusal error) (*graph.Session, error) {
	conflict := review.KindOf(refusal) == review.Conflict
	if !s.CanList {
		if conflict {
			return nil, fmt.Errorf("%w: %w (the %s API cannot list sessions to find it)", errMayExist, refusal, s.Profile)
		}
		// Without a list, a 400 cannot be told from a duplicate refusal
		// unless no earlier attempt could have stored a session.
		if s.earlierAttempt(ctx, t) {
			return nil, fmt.Errorf("%w: %w (an earlier attempt may have created it; the %s API cannot list sessions to find it)", errMayExist, refusal, s.Profile)
		}
		return nil, &refusedCreate{refusal}
	}
	list, err := s.Graph.List(ctx, t, graph.Filter{ReferenceID: t.ReviewInstanceID})
	if err != nil {
		return nil, fmt.Errorf("%w; listing the existing session: %w", refusal, err)
	}
	var found *graph.Session
	for i := range list {
		g := &list[i]
		if found == nil || g.Status == graph.StatusActive {
			found = g
		}
	}
	switch {
	case found != nil:
		s.log().Info("recovered the session Graph already had", "review", t.ReviewInstanceID, "session", found.ID, "status", found.Status)
		return found, nil
	case conflict:
		return nil, review.Errorf(review.Transient, "%v; but no session with referenceId %s is listed yet", refusal, t.ReviewInstanceID)
	default:
		return nil, &refusedCreate{refusal}
	}
}

// earlierAttempt reports whether a create for t may have been sent before
// the current one: the record remembers an attempt older than this one's.
func (s *Sessions) earlierAttempt(ctx context.Context, t review.Target) bool {
	rec, err := s.Ledger.Session(ctx, t)
	if err != nil {
		return true
	}
	return rec.CreateAttempts > 1
}

// markCreateUnknown records that the create's outcome cannot be known, and
// returns the error every file of the review gets until it is resolved.
func (s *Sessions) markCreateUnknown(ctx context.Context, t review.Target, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	note := "create outcome unknown: " + cause.Error()
	rec, err := s.Ledger.UpdateSession(cctx, t, func(r *ledger.Session, exists bool) error {
		if r.SessionID != "" || r.Ended() {
			return ledger.ErrNoChange
		}
		r.State, r.Creating, r.Note = ledger.CreateUnknown, nil, note
		return nil
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	s.log().Error("create outcome unknown: the review's files wait for an operator", "review", t.ReviewInstanceID,
		"catalog", t.CatalogID, "resource", t.ResourceID, "error", cause.Error())
	return errCreateUnknown(t, rec)
}

// dropLease gives up the creating lease after a failure so that the next
// attempt need not wait for it to lapse, records a definitive refusal, and
// returns cause.
func (s *Sessions) dropLease(ctx context.Context, t review.Target, refused string, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := s.Ledger.UpdateSession(cctx, t, func(r *ledger.Session, exists bool) error {
		if r.Creating == nil || r.Creating.Owner != s.Owner {
			return ledger.ErrNoChange
		}
		r.Creating, r.CreateRefused = nil, refused
		return nil
	})
	if err != nil {
		s.log().Warn("could not drop the creating lease; it lapses by itself", "error", err)
	}
	return cause
}
