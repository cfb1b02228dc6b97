package ledger

import (
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

const schemaVersion = 1

// State is where a session is in its life, as the ledger knows it.
type State string

const (
	// Pending: the record exists (a manifest arrived, or a session is being
	// created) but Graph has no session for it yet.
	Pending State = "pending"
	// Open: the session exists in Graph and accepts files.
	Open State = "open"
	// Complete: isUploadDone was set; Entra processes the data.
	Complete State = "complete"
	// Expired: the session expired before it could be closed; its files
	// were not processed.
	Expired State = "expired"
	// CreateUnknown: a create may have been stored in Graph, but its answer
	// was lost and the API profile cannot list sessions to find out. Nothing
	// creates again until an operator resolves it (docs/operations.md).
	CreateUnknown State = "create-unknown"
)

// Lease is a time-limited right to do one thing (create the Graph session,
// close it) that must not be done twice. It lapses at Until, so a crashed
// holder never blocks the others for longer than that.
type Lease struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// Held reports whether the lease is held by someone at now.
func (l *Lease) Held(now time.Time) bool { return l != nil && now.Before(l.Until) }

// File is one uploaded file of a session.
type File struct {
	Name       string    `json:"name"`
	Key        string    `json:"key"`
	VersionID  string    `json:"versionId,omitempty"`
	ETag       string    `json:"etag,omitempty"`
	Size       int64     `json:"size"`
	Rows       int64     `json:"rows"`
	UploadedAt time.Time `json:"uploadedAt"`
	// Standing: a standing-data version sent by discovery. Its report is
	// about the version (ready or rejected), not about one review: the
	// review record says what became of it in this session.
	Standing bool `json:"standing,omitempty"`
}

// Manifest is a review's manifest.json: the files that make it complete.
type Manifest struct {
	Key       string `json:"key"`
	VersionID string `json:"versionId,omitempty"`
	// Sequencer is the S3 event's sequencer, which orders the versions.
	Sequencer string    `json:"sequencer,omitempty"`
	Files     []string  `json:"files"`
	At        time.Time `json:"at"`
}

// Session is the ledger's record of one upload session.
type Session struct {
	Versioned `json:"-"`
	Schema    int           `json:"schema"`
	Target    review.Target `json:"target"`
	Profile   string        `json:"profile,omitempty"`
	SessionID string        `json:"sessionId,omitempty"`
	State     State         `json:"state"`
	// Creating is held (and renewed) while one invocation creates the
	// Graph session.
	Creating *Lease `json:"creating,omitempty"`
	// CreateStartedAt is when the last create attempt began; a create sent
	// then may land in Graph until that invocation's time is surely over.
	CreateStartedAt time.Time `json:"createStartedAt,omitzero"`
	// CreateAttempts counts the create attempts made.
	CreateAttempts int `json:"createAttempts,omitempty"`
	// CreateRefused says why Graph refused the last create for good:
	// nothing was stored.
	CreateRefused string `json:"createRefused,omitempty"`
	// Closing is held while one finalizer run (or ingest) closes it.
	Closing    *Lease    `json:"closing,omitempty"`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
	WindowEnds time.Time `json:"windowEnds,omitzero"`
	// WindowStart, when known, is when the review instance entered
	// Initializing: the window ends UPLOAD_WINDOW after it at the latest,
	// whenever the session was created.
	WindowStart time.Time `json:"windowStart,omitzero"`
	// ReviewRecord says that a review record (reviews/<instance>/<resource>.json)
	// follows this session, and is updated when it ends.
	ReviewRecord bool      `json:"reviewRecord,omitempty"`
	LastUploadAt time.Time `json:"lastUploadAt,omitzero"`
	Files        []File    `json:"files,omitempty"`
	Manifest     *Manifest `json:"manifest,omitempty"`
	// What Graph said at the last refresh.
	GraphStatus string    `json:"graphStatus,omitempty"`
	GraphFiles  int32     `json:"graphFiles,omitempty"`
	GraphBytes  int64     `json:"graphBytes,omitempty"`
	RefreshedAt time.Time `json:"refreshedAt,omitzero"`
	ClosedAt    time.Time `json:"closedAt,omitzero"`
	CloseReason string    `json:"closeReason,omitempty"`
	ExpiredAt   time.Time `json:"expiredAt,omitzero"`
	// ReportsWritten: every file's report says how the session ended, so
	// the session can leave the open index.
	ReportsWritten bool `json:"reportsWritten,omitempty"`
	// Note says, in words, why the session ended the way it did.
	Note string `json:"note,omitempty"`
}

// Ended reports whether the session takes no more files.
func (s *Session) Ended() bool { return s.State == Complete || s.State == Expired }

// HasFile reports whether the object version (key, version) is recorded.
func (s *Session) HasFile(key, version string) bool {
	for _, f := range s.Files {
		if f.Key == key && (f.VersionID == version || f.ETag == version) {
			return true
		}
	}
	return false
}

// AddFile records f once: a second record of the same object version is
// ignored. It reports whether f was new.
func (s *Session) AddFile(f File) bool {
	v := f.VersionID
	if v == "" {
		v = f.ETag
	}
	if s.HasFile(f.Key, v) {
		return false
	}
	s.Files = append(s.Files, f)
	if f.UploadedAt.After(s.LastUploadAt) {
		s.LastUploadAt = f.UploadedAt
	}
	return true
}

// Facts returns what the close decision needs to know of s.
func (s *Session) Facts() review.SessionFacts {
	f := review.SessionFacts{WindowEnds: s.WindowEnds, LastUploadAt: s.LastUploadAt, GraphFiles: int(s.GraphFiles)}
	for _, file := range s.Files {
		f.Uploaded = append(f.Uploaded, file.Name)
	}
	if s.Manifest != nil {
		f.Manifest = append([]string{}, s.Manifest.Files...)
	}
	return f
}
