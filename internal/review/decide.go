package review

import (
	"sort"
	"time"
)

// Reasons a session is closed, as logged and written in the ledger.
const (
	ReasonManifestComplete = "manifest-complete"
	ReasonQuietPeriod      = "quiet-period"
	ReasonDeadline         = "deadline"
)

// Policy holds the time rules of product.md.
type Policy struct {
	// QuietPeriod: a session with files and no manifest is closed after this
	// long since its last successful upload.
	QuietPeriod time.Duration
	// CloseMargin: every session with a file is closed at the latest this
	// long before its window ends.
	CloseMargin time.Duration
}

// SessionFacts is what the close decision looks at.
type SessionFacts struct {
	WindowEnds   time.Time
	LastUploadAt time.Time
	// Uploaded holds the names of the files in the session.
	Uploaded []string
	// GraphFiles is how many files Graph said the session holds at the
	// last refresh: files an interrupted upload left in Graph before the
	// ledger recorded them count too.
	GraphFiles int
	// InFlight: a file of the session is being validated or uploaded. It
	// holds the quiet-period close, never the deadline.
	InFlight bool
	// Manifest holds the file names the review's manifest.json lists; nil
	// when there is no manifest.
	Manifest []string
}

// Decision says what to do with an open session now.
type Decision struct {
	Close  bool
	Reason string // one of the Reason constants when Close
	// Missing names the manifest's files not uploaded yet.
	Missing []string
	// Expired: the window has ended for a session with no file; there is
	// nothing to close and nothing was lost.
	Expired bool
	// Why explains a decision to wait, for logs and the run summary.
	Why string
}

// Decide applies the close rules to one open session. Ingest (on a file or
// a manifest) and the finalizer both call it, so they cannot disagree.
//
// A session with no file is never closed: closing it would end the
// review's chance to get data. A session whose manifest is incomplete
// waits for the missing files until the deadline, even past the quiet
// period. The deadline (CloseMargin before the window ends) closes any
// session with a file; past the window, the attempt still goes ahead, and
// Graph's answer tells whether the session had expired.
func Decide(f SessionFacts, p Policy, now time.Time) Decision {
	var d Decision
	if f.Manifest != nil {
		d.Missing = missing(f.Manifest, f.Uploaded)
	}
	empty := len(f.Uploaded) == 0 && f.GraphFiles == 0
	switch {
	case empty && !now.Before(f.WindowEnds):
		d.Expired = true
		d.Why = "the window ended with no file uploaded"
	case empty:
		d.Why = "no file uploaded yet; an empty session is never closed"
	case f.Manifest != nil && len(d.Missing) == 0:
		d.Close, d.Reason = true, ReasonManifestComplete
	case !now.Before(f.WindowEnds.Add(-p.CloseMargin)):
		d.Close, d.Reason = true, ReasonDeadline
	case f.Manifest != nil:
		d.Why = "waiting for the manifest's missing files"
	case f.InFlight:
		d.Why = "a file is being uploaded; the quiet period starts again after it"
	case !now.Before(f.LastUploadAt.Add(p.QuietPeriod)):
		d.Close, d.Reason = true, ReasonQuietPeriod
	default:
		d.Why = "within the quiet period since the last upload"
	}
	return d
}

// missing returns the names in want that are not in have, sorted.
func missing(want, have []string) []string {
	got := make(map[string]bool, len(have))
	for _, h := range have {
		got[h] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, w := range want {
		if !got[w] && !seen[w] {
			out = append(out, w)
			seen[w] = true
		}
	}
	sort.Strings(out)
	return out
}
