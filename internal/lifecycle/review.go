package lifecycle

import (
	"context"

	"github.com/byodrop/byodrop/internal/ledger"
)

// endReview brings the review record that follows rec up to date with its
// end: complete or expired, when, and each file's outcome. It is part of
// finish, so a crash before it is repaired by the next check of the
// session, and repeating it changes nothing.
func (s *Sessions) endReview(ctx context.Context, rec *ledger.Session) error {
	t := rec.Target
	_, err := s.Ledger.UpdateReview(ctx, t.ReviewInstanceID, t.ResourceID, func(r *ledger.Review, exists bool) error {
		if !exists || !ApplyEnd(r, rec) {
			return ledger.ErrNoChange
		}
		return nil
	})
	return err
}

// ApplyEnd records in the review record r how its session rec ended, and
// reports whether r changed. A session still open changes nothing.
func ApplyEnd(r *ledger.Review, rec *ledger.Session) bool {
	if !rec.Ended() {
		return false
	}
	if r.Status == ledger.ReviewLate && !holdsAny(rec, r.Files) {
		// Nothing of the record's went in: why stays as it was said.
		return false
	}
	before := *r
	beforeFiles := append([]ledger.ReviewFile(nil), r.Files...)
	r.SessionID = rec.SessionID
	if !rec.WindowEnds.IsZero() {
		r.WindowEnds = rec.WindowEnds
	}
	fileStatus := "uploaded"
	switch rec.State {
	case ledger.Complete:
		r.Status = ledger.ReviewComplete
		r.ClosedAt = rec.ClosedAt
		r.Message = "the session is closed (" + rec.CloseReason + "): Entra processes the data"
	case ledger.Expired:
		r.Status = ledger.ReviewExpired
		r.ClosedAt = rec.ExpiredAt
		r.Message = "the session expired before it could be closed, so Entra did not process the data"
		if rec.Note != "" {
			r.Message += " (" + rec.Note + ")"
		}
		fileStatus = "expired"
	}
	for i, f := range r.Files {
		v := f.VersionID
		if v == "" {
			v = f.ETag
		}
		if rec.HasFile(f.Key, v) {
			r.Files[i].Status = fileStatus
		}
	}
	if before.Status != r.Status || !before.ClosedAt.Equal(r.ClosedAt) || before.SessionID != r.SessionID ||
		before.Message != r.Message || !before.WindowEnds.Equal(r.WindowEnds) {
		return true
	}
	for i := range beforeFiles {
		if beforeFiles[i] != r.Files[i] {
			return true
		}
	}
	return false
}

// holdsAny reports whether the session holds any of the record's files.
func holdsAny(rec *ledger.Session, files []ledger.ReviewFile) bool {
	for _, f := range files {
		v := f.VersionID
		if v == "" {
			v = f.ETag
		}
		if rec.HasFile(f.Key, v) {
			return true
		}
	}
	return false
}
