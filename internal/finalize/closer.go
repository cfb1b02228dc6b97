// Package finalize is the scheduled function's run: every session in the
// open index is checked, the most urgent first, each within its own time
// bound, and closed or recorded as expired by the session lifecycle
// (package lifecycle) when its rules say so, so that no uploaded data is
// silently left unprocessed.
package finalize

import (
	"context"
	"log/slog"
	"time"

	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/review"
)

// Graph is what the finalizer needs of the Graph client.
type Graph = lifecycle.Graph

// Closer runs the finalizer over the open index.
type Closer struct {
	Graph  Graph
	Ledger *ledger.Ledger
	Policy review.Policy
	// UploadWindow is the UPLOAD_WINDOW setting (default 2h).
	UploadWindow time.Duration
	// Profile and CanList describe the Graph API profile in use.
	Profile string
	CanList bool
	Log     *slog.Logger
	// Owner names this run in leases; unique per invocation.
	Owner string
	// LeaseFor is how long a closing lease is held at most (default 2m).
	LeaseFor time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PerSession bounds the check of one session (default 30s), so that
	// one hanging request cannot use up the run.
	PerSession time.Duration
	// Workers is how many sessions are checked at once (default 4).
	Workers int
	// Margin is kept free before the run's deadline: no session check
	// starts later than that (default 10s).
	Margin time.Duration
}

// Action and Outcome are the lifecycle's, re-exported for the run summary.
type (
	Action  = lifecycle.Action
	Outcome = lifecycle.Outcome
)

// The actions of a finalizer run.
const (
	Closed      = lifecycle.Closed
	MarkExpired = lifecycle.MarkExpired
	StillOpen   = lifecycle.StillOpen
	Skipped     = lifecycle.Skipped
)

func (c *Closer) sessions() *lifecycle.Sessions {
	window := c.UploadWindow
	if window <= 0 {
		window = 2 * time.Hour
	}
	claims := claim.New(c.Ledger)
	if c.Now != nil {
		claims.Now = c.Now
	}
	return &lifecycle.Sessions{
		Graph: c.Graph, Ledger: c.Ledger, Claims: claims, Policy: c.Policy, UploadWindow: window,
		Profile: c.Profile, CanList: c.CanList, Log: c.Log, Owner: c.Owner, LeaseFor: c.LeaseFor, Now: c.Now,
	}
}

// Check checks the session at sessionKey (see lifecycle.Sessions.Check).
func (c *Closer) Check(ctx context.Context, sessionKey string, onlyManifest bool) (Outcome, error) {
	return c.sessions().Check(ctx, sessionKey, onlyManifest)
}

// Refresh reads t's session from Graph and records what Graph says of it.
func (c *Closer) Refresh(ctx context.Context, t review.Target) (*ledger.Session, error) {
	return c.sessions().Refresh(ctx, t)
}
