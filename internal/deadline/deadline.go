// Package deadline decides when an invocation stops starting work, so that
// it ends cleanly (claims settled, reports and summaries written) before
// Lambda's own deadline cuts it off.
package deadline

import (
	"context"
	"sync"
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

// Run hands items, in order, to workers goroutines running work, and
// starts none once ctx is done or now() is no longer before stopAt. It
// waits for the work started and returns the items it did not start, for
// the next run. work must be safe for concurrent use.
func Run[T any](ctx context.Context, items []T, workers int, stopAt time.Time, now func() time.Time, work func(T)) []T {
	queue := make(chan T)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for it := range queue {
				work(it)
			}
		})
	}
	var left []T
	for i, it := range items {
		if ctx.Err() != nil || !now().Before(stopAt) {
			left = items[i:]
			break
		}
		queue <- it
	}
	close(queue)
	wg.Wait()
	return left
}
