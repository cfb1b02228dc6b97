// Package deadline decides when an invocation stops starting work, so that
// it ends cleanly (claims settled, reports and summaries written) before
// Lambda's own deadline cuts it off.
package deadline

import (
	"context"
	"time"
)

// Lambda is the longest a Lambda invocation can run: the budget assumed for
// a context without a deadline (tests, tools).
const Lambda = 15 * time.Minute

// Margin is how much to keep free before an invocation's deadline.
type Margin struct {
	// Fixed, when positive, is kept whatever the budget.
	Fixed time.Duration
	// Default is kept when Fixed is not set, but at most Share of the
	// budget, so that a short invocation still gets most of its time.
	Default time.Duration
	// Share is that fraction, as a divisor: 4 keeps at most a quarter.
	Share int
}

// StopAt returns when work must stop for ctx's deadline, now being now.
func (m Margin) StopAt(ctx context.Context, now time.Time) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = now.Add(Lambda)
	}
	if m.Fixed > 0 {
		return dl.Add(-m.Fixed)
	}
	margin := m.Default
	if budget := dl.Sub(now); m.Share > 0 && margin > budget/time.Duration(m.Share) {
		margin = budget / time.Duration(m.Share)
	}
	return dl.Add(-margin)
}
