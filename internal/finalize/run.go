package finalize

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Summary is what a finalizer run returns and logs.
type Summary struct {
	Checked int              `json:"checked"`
	Closed  []Outcome        `json:"closed"`
	Expired []Outcome        `json:"expired"`
	Open    []Outcome        `json:"open"`
	Skipped []Outcome        `json:"skipped,omitempty"`
	Errors  []SessionFailure `json:"errors"`
}

// SessionFailure is a session the run could not handle; the next run
// tries again.
type SessionFailure struct {
	Session string `json:"session"`
	Error   string `json:"error"`
}

// Run handles every session in the open index. A failure on one session
// does not stop the others; the run returns an error only if some session
// could not be handled (so the schedule's retry policy and dead-letter queue
// see it), and always returns the summary.
func (c *Closer) Run(ctx context.Context) (Summary, error) {
	s := Summary{Closed: []Outcome{}, Expired: []Outcome{}, Open: []Outcome{}, Errors: []SessionFailure{}}
	keys, err := c.Ledger.OpenSessions(ctx)
	if err != nil {
		return s, fmt.Errorf("listing open sessions: %w", err)
	}
	var errs []error
	for _, k := range keys {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("stopped before %s: %w", k, ctx.Err()))
			s.Errors = append(s.Errors, SessionFailure{Session: k, Error: ctx.Err().Error()})
			continue
		}
		s.Checked++
		out, err := c.Check(ctx, k, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", k, err))
			s.Errors = append(s.Errors, SessionFailure{Session: k, Error: err.Error()})
			continue
		}
		switch out.Action {
		case Closed:
			s.Closed = append(s.Closed, out)
		case MarkExpired:
			s.Expired = append(s.Expired, out)
		case Skipped:
			s.Skipped = append(s.Skipped, out)
		default:
			s.Open = append(s.Open, out)
		}
	}
	return s, errors.Join(errs...)
}

// Input accepts whatever the schedule sends: {}, an EventBridge Scheduled
// Event, a Scheduler input, or nothing. The content does not matter; every
// run checks every open session.
type Input = json.RawMessage
