package finalize

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/byodrop/byodrop/internal/deadline"
	"github.com/byodrop/byodrop/internal/ledger"
)

// Summary is what a finalizer run returns and logs.
type Summary struct {
	Checked int              `json:"checked"`
	Closed  []Outcome        `json:"closed"`
	Expired []Outcome        `json:"expired"`
	Open    []Outcome        `json:"open"`
	Skipped []Outcome        `json:"skipped,omitempty"`
	Errors  []SessionFailure `json:"errors"`
	// Deferred lists the sessions left for the next run because this one
	// reached its deadline first.
	Deferred []string `json:"deferred,omitempty"`
}

// SessionFailure is a session the run could not handle; the next run
// tries again.
type SessionFailure struct {
	Session string `json:"session"`
	Error   string `json:"error"`
}

// Run handles every session in the open index: their records are read,
// the sessions whose windows end first are checked first, a few at a time,
// each within PerSession, and no check starts within Margin of the run's
// deadline (those left are Deferred to the next run). A failure on one
// session does not stop the others; the run returns an error only if some
// session could not be handled (so the schedule's retry policy and
// dead-letter queue see it), and always returns the summary.
func (c *Closer) Run(ctx context.Context) (Summary, error) {
	s := Summary{Closed: []Outcome{}, Expired: []Outcome{}, Open: []Outcome{}, Errors: []SessionFailure{}}
	keys, err := c.Ledger.OpenSessions(ctx)
	if err != nil {
		return s, fmt.Errorf("listing open sessions: %w", err)
	}
	stopAt := c.stopAt(ctx)
	recs := c.readAll(ctx, keys, stopAt)
	// Most urgent first: the earliest window end; records not read (an
	// error, no record) after them, in index order.
	slices.SortStableFunc(recs, func(a, b read) int {
		return cmp.Compare(a.urgency(), b.urgency())
	})

	var (
		mu   sync.Mutex
		errs []error
	)
	sessions := c.sessions()
	left := deadline.Run(ctx, recs, c.workers(), stopAt, time.Now, func(r read) {
		out, err := c.checkOne(ctx, r, sessions)
		mu.Lock()
		defer mu.Unlock()
		s.Checked++
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("session %s: %w", r.key, err))
			s.Errors = append(s.Errors, SessionFailure{Session: r.key, Error: err.Error()})
		case out.Action == Closed:
			s.Closed = append(s.Closed, out)
		case out.Action == MarkExpired:
			s.Expired = append(s.Expired, out)
		case out.Action == Skipped:
			s.Skipped = append(s.Skipped, out)
		default:
			s.Open = append(s.Open, out)
		}
	})
	for _, r := range left {
		s.Deferred = append(s.Deferred, r.key)
	}
	if len(s.Deferred) > 0 {
		c.log().Warn("finalizer run reached its deadline; sessions left for the next run", "deferred", len(s.Deferred))
	}
	return s, errors.Join(errs...)
}

// read is one index entry with its record, read ahead of the checks.
type read struct {
	key string
	rec *ledger.Session
	err error
}

func (r read) urgency() int64 {
	if r.rec == nil || r.rec.WindowEnds.IsZero() {
		return 1<<63 - 1
	}
	return r.rec.WindowEnds.UnixNano()
}

// readAll reads the records of keys, a few at a time.
func (c *Closer) readAll(ctx context.Context, keys []string, stopAt time.Time) []read {
	out := make([]read, len(keys))
	sem := make(chan struct{}, 2*c.workers())
	var wg sync.WaitGroup
	for i, k := range keys {
		out[i].key = k
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rctx, cancel := context.WithDeadline(ctx, stopAt)
			defer cancel()
			out[i].rec, out[i].err = c.Ledger.SessionByKey(rctx, k)
		})
	}
	wg.Wait()
	return out
}

// checkOne checks one session within PerSession.
func (c *Closer) checkOne(ctx context.Context, r read, sessions interface {
	CheckRecord(context.Context, *ledger.Session, bool) (Outcome, error)
	Check(context.Context, string, bool) (Outcome, error)
}) (Outcome, error) {
	per := c.PerSession
	if per <= 0 {
		per = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, per)
	defer cancel()
	if r.rec == nil {
		// Not read ahead (an error, or no record): Check reads it again
		// within the session's own bound, and drops an entry with none.
		return sessions.Check(cctx, r.key, false)
	}
	return sessions.CheckRecord(cctx, r.rec, false)
}

func (c *Closer) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

func (c *Closer) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return 4
}

// stopAt is when the run stops starting checks.
func (c *Closer) stopAt(ctx context.Context) time.Time {
	return deadline.Margin{Fixed: c.Margin, Default: 10 * time.Second, Share: 4}.StopAt(ctx, time.Now())
}

// Input accepts whatever the schedule sends: {}, an EventBridge Scheduled
// Event, a Scheduler input, or nothing. The content does not matter; every
// run checks every open session.
type Input = json.RawMessage
