package standing

import (
	"slices"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

// recordSchema is the schema version of Record documents.
const recordSchema = 1

// maxVersions bounds the versions a record keeps. The oldest go first, but
// never the newest ready one, which is what a bad export falls back to.
const maxVersions = 32

// Record is what byodrop remembers of one standing key: the outcome of
// every version it validated, oldest first. It is stored as indented JSON
// at <STATE_PREFIX>standing/<key after STANDING_PREFIX>.json and changed
// only by conditional writes (If-None-Match to create, If-Match to
// replace), so concurrent validations of several versions all land.
type Record struct {
	Schema   int       `json:"schema"`
	Key      string    `json:"key"`
	Versions []Version `json:"versions"`
}

// Version is one validated version of a standing key. The content of an
// object version never changes, so its outcome is final.
type Version struct {
	VersionID string        `json:"versionId,omitempty"`
	ETag      string        `json:"etag"`
	Status    review.Status `json:"status"` // ready or rejected
	Bytes     int64         `json:"bytes"`
	Rows      int64         `json:"rows"`
	// Position is the version's place in the key's history in S3, 1 for
	// the oldest version S3 still had when it was validated (0: unknown, as
	// in an unversioned bucket). It orders the versions; LastModified and
	// the event's Sequencer stand in where it is unknown.
	Position     int64               `json:"position,omitempty"`
	LastModified time.Time           `json:"lastModified"`
	Sequencer    string              `json:"sequencer,omitempty"`
	Errors       []review.FieldError `json:"errors,omitempty"`
	ValidatedAt  time.Time           `json:"validatedAt"`
}

// IsReady reports whether the version may be sent.
func (v *Version) IsReady() bool { return v.Status == review.Ready }

// same reports whether a and b are the same object version: by version id
// in a versioned bucket, by ETag (the same bytes) otherwise.
func same(a, b *Version) bool {
	if a.VersionID != "" || b.VersionID != "" {
		return a.VersionID == b.VersionID
	}
	return a.ETag == b.ETag
}

// before orders versions: by their position in S3's history when both
// are known, else by LastModified, then by the events' sequencers when both
// have one of the same length (equal-length hex strings compare as
// numbers), then by when they were validated.
func before(a, b *Version) bool {
	if a.Position > 0 && b.Position > 0 && a.Position != b.Position {
		return a.Position < b.Position
	}
	if !a.LastModified.Equal(b.LastModified) {
		return a.LastModified.Before(b.LastModified)
	}
	if a.Sequencer != "" && len(a.Sequencer) == len(b.Sequencer) {
		if c := strings.Compare(strings.ToUpper(a.Sequencer), strings.ToUpper(b.Sequencer)); c != 0 {
			return c < 0
		}
	}
	return a.ValidatedAt.Before(b.ValidatedAt)
}

// find returns the index of v's version in the record, or -1.
func (r *Record) find(v *Version) int {
	for i := range r.Versions {
		if same(&r.Versions[i], v) {
			return i
		}
	}
	return -1
}

// findETag returns the newest version with this ETag, or -1.
func (r *Record) findETag(etag string) int {
	for i := len(r.Versions) - 1; i >= 0; i-- {
		if r.Versions[i].ETag == etag {
			return i
		}
	}
	return -1
}

// add merges v into the record, keeping the order and the bound; it
// reports whether anything changed (a version already there is kept as
// it was: its outcome is final).
func (r *Record) add(v Version) bool {
	if r.find(&v) >= 0 {
		return false
	}
	r.Versions = append(r.Versions, v)
	slices.SortStableFunc(r.Versions, func(a, b Version) int {
		switch {
		case before(&a, &b):
			return -1
		case before(&b, &a):
			return 1
		}
		return 0
	})
	for len(r.Versions) > maxVersions {
		drop := 0
		if keep := r.newestReady(len(r.Versions)); keep == 0 {
			drop = 1
		}
		r.Versions = slices.Delete(r.Versions, drop, drop+1)
	}
	return true
}

// newestReady returns the index of the newest ready version before index
// end, or -1.
func (r *Record) newestReady(end int) int {
	for i := end - 1; i >= 0; i-- {
		if r.Versions[i].IsReady() {
			return i
		}
	}
	return -1
}

// fallback returns the newest ready version older than the one at i, or
// nil.
func (r *Record) fallback(i int) *Version {
	if j := r.newestReady(i); j >= 0 {
		return &r.Versions[j]
	}
	return nil
}

// newest returns the newest version, or nil for an empty record.
func (r *Record) newest() (*Version, int) {
	if len(r.Versions) == 0 {
		return nil, -1
	}
	i := len(r.Versions) - 1
	return &r.Versions[i], i
}
