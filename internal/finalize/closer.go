// Package finalize is the scheduled function's run: every session in the
// open index is checked, the most urgent first, each within its own time
// bound, and closed or recorded as expired by the session lifecycle
// (package lifecycle) when its rules say so, so that no uploaded data is
// silently left unprocessed.
package finalize

import (
	"context"
	"time"

	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/review"
)

// Closer runs the finalizer over the open index: the session lifecycle's
// settings, and the run's bounds.
type Closer struct {
	lifecycle.Sessions
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

// sessions is the lifecycle as this run drives it: with the claims that
// show uploads in flight, on the run's clock, and the default window.
func (c *Closer) sessions() *lifecycle.Sessions {
	s := c.Sessions
	if s.UploadWindow <= 0 {
		s.UploadWindow = 2 * time.Hour
	}
	if s.Claims == nil {
		s.Claims = claim.New(s.Ledger)
		if s.Now != nil {
			s.Claims.Now = s.Now
		}
	}
	return &s
}

// Check checks the session at sessionKey (see lifecycle.Sessions.Check).
func (c *Closer) Check(ctx context.Context, sessionKey string, onlyManifest bool) (Outcome, error) {
	return c.sessions().Check(ctx, sessionKey, onlyManifest)
}

// Refresh reads t's session from Graph and records what Graph says of it.
func (c *Closer) Refresh(ctx context.Context, t review.Target) (*ledger.Session, error) {
	return c.sessions().Refresh(ctx, t)
}
