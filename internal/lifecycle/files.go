package lifecycle

import (
	"context"
	"strings"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// RecordFile records file f, which Graph has accepted, in t's session
// record, once per object version, and returns the record. The file is
// recorded whatever the session's state, because Graph holds it; the
// caller reports it by the returned record's state (an upload that
// finished after its session expired is reported expired, not uploaded).
// from is the record as the caller last had it (nil: read it): its stored
// form saves the read when nobody wrote the record since.
func (s *Sessions) RecordFile(ctx context.Context, t review.Target, f ledger.File, from *ledger.Session) (*ledger.Session, error) {
	var known blob.Object
	if from != nil {
		known = from.Stored()
	}
	rec, err := s.Ledger.UpdateSessionFrom(ctx, t, known, func(r *ledger.Session, exists bool) error {
		if !exists {
			return review.Errorf(review.Internal, "the ledger record of the session of %s vanished", t)
		}
		if !r.AddFile(f) {
			return ledger.ErrNoChange
		}
		return nil
	})
	if err == nil {
		s.Cache.put(rec)
	}
	return rec, err
}

// RecordManifest records the review's manifest m in t's session record,
// creating a pending record when the manifest comes first. A manifest
// version older than the recorded one (its event came late) changes
// nothing. It returns the record and whether m is the one recorded.
func (s *Sessions) RecordManifest(ctx context.Context, t review.Target, m *ledger.Manifest) (*ledger.Session, bool, error) {
	taken := false
	rec, err := s.Ledger.UpdateSession(ctx, t, func(r *ledger.Session, exists bool) error {
		taken = false
		if !exists {
			r.State, r.Profile = ledger.Pending, s.Profile
		}
		if r.Manifest != nil && r.Manifest.VersionID == m.VersionID && r.Manifest.Sequencer == m.Sequencer {
			taken = true
			return ledger.ErrNoChange
		}
		if r.Manifest != nil && SequencerBefore(m.Sequencer, r.Manifest.Sequencer) {
			return ledger.ErrNoChange
		}
		r.Manifest, taken = m, true
		return nil
	})
	return rec, taken, err
}

// SequencerBefore reports whether S3 event sequencer a comes before b.
// Sequencers order the events of one key: compared as hexadecimal numbers
// of equal length (the shorter padded with leading zeros). An empty one
// (an event without it, an old record) orders nothing.
func SequencerBefore(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	a, b = strings.ToUpper(a), strings.ToUpper(b)
	if n := max(len(a), len(b)); len(a) < n {
		a = strings.Repeat("0", n-len(a)) + a
	} else if len(b) < n {
		b = strings.Repeat("0", n-len(b)) + b
	}
	return a < b
}
