// Package lifecycle owns the life of an upload session, from the first file
// of a review to the last report: find-or-create with its creating lease,
// the open index, recording files and the manifest, closing, expiring, and
// rewriting the files' reports when a session ends unprocessed. Ingest, the
// finalizer and discovery all go through it, so that every move between
// states is made by one piece of code under one conditional write.
// docs/lifecycles.md has the state table: each transition, who makes it,
// the write that guards it, and what a crash right after it leaves behind.
package lifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// Graph is what the lifecycle needs of the Graph client.
type Graph interface {
	Create(ctx context.Context, t review.Target) (*graph.Session, error)
	Get(ctx context.Context, t review.Target, id string) (*graph.Session, error)
	List(ctx context.Context, t review.Target, f graph.Filter) ([]graph.Session, error)
	MarkDone(ctx context.Context, t review.Target, id string) (*graph.Session, error)
}

// Sessions moves sessions through their lifecycle on behalf of one owner
// (an invocation). It is cheap to make; make one per invocation.
type Sessions struct {
	Graph  Graph
	Ledger *ledger.Ledger
	// Claims, when set, lets the quiet-period close see uploads in flight.
	Claims *claim.Claims
	Policy review.Policy
	// UploadWindow is how long after its creation a session accepts data.
	UploadWindow time.Duration
	// Profile is the API profile's name, recorded in each session.
	Profile string
	// CanList says whether the API profile can list sessions, which is how
	// a session Graph already has is found again.
	CanList bool
	Log     *slog.Logger
	// Owner names this invocation in leases; unique per invocation.
	Owner string
	// LeaseFor is how long a creating or closing lease lasts without
	// renewal (default 1m).
	LeaseFor time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Cache, when set, lets Ensure find a session this process already
	// knows without reading its record.
	Cache *RecordCache
	// WindowStart, when set, is when the review instance entered
	// Initializing: the session's window then ends at the earlier of its
	// creation plus UploadWindow and WindowStart plus UploadWindow.
	WindowStart time.Time
	// ReviewRecord, when set, marks the session as followed by a review
	// record, which is updated when the session ends (discovery).
	ReviewRecord bool
	// BeforeCreate, when set, is called before a session is created in
	// Graph (never for one that exists). An error stops the create: a
	// review.Gone one means the review takes no more data. A non-zero time
	// anchors the window as WindowStart does.
	BeforeCreate func(ctx context.Context, t review.Target) (time.Time, error)
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sessions) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Sessions) leaseFor() time.Duration {
	if s.LeaseFor > 0 {
		return s.LeaseFor
	}
	return time.Minute
}

// Action is what happened to one session.
type Action string

// The actions of a check.
const (
	Closed      Action = "closed"
	MarkExpired Action = "expired"
	StillOpen   Action = "open"
	Skipped     Action = "skipped" // ended already, or another run holds it
)

// Outcome is the result of checking one session.
type Outcome struct {
	Session   string   `json:"session"`
	SessionID string   `json:"sessionId,omitempty"`
	Action    Action   `json:"action"`
	Reason    string   `json:"reason,omitempty"`
	Missing   []string `json:"missing,omitempty"`
	Files     int      `json:"files"`
}

// createSettle is how long after a create attempt began a create it sent
// can still land in Graph: Lambda's longest invocation and a minute more.
// Only after it is an id-less index entry proven to have no session.
const createSettle = 16 * time.Minute

// goneAfter is how old a session must be before a 404 for it is taken to
// mean that Graph no longer has it, rather than a read that outran the
// create.
const goneAfter = 5 * time.Minute
