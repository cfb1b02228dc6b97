// Package lease keeps a time-limited right alive while work runs: a claim
// on an object version, or the lease on creating or closing a session.
package lease

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLost is the cause of a kept context that ended because the lease went
// to someone else (or could not be renewed in time).
var ErrLost = errors.New("lease lost")

// Keep calls renew every third of period until the returned stop function
// is called, and returns a context derived from ctx that is cancelled, with
// a cause wrapping ErrLost, as soon as the lease cannot be kept: renew
// returned an error for which lost is true, or renewals kept failing for
// two thirds of a period (the holder must stop while the lease is still
// its own, before another can take over). stop waits for renewals to end.
func Keep(ctx context.Context, period time.Duration, renew func(context.Context) error, lost func(error) bool) (context.Context, func()) {
	work, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		kept := time.Now()
		for {
			select {
			case <-done:
				return
			case <-work.Done():
				return
			case <-time.After(period / 3):
			}
			rctx, rcancel := context.WithTimeout(work, period/3)
			err := renew(rctx)
			rcancel()
			switch {
			case err == nil:
				kept = time.Now()
			case lost != nil && lost(err):
				cancel(fmt.Errorf("%w: %v", ErrLost, err))
				return
			case time.Since(kept) > period*2/3:
				cancel(fmt.Errorf("%w: not renewed for %s: %v", ErrLost, time.Since(kept).Round(time.Second), err))
				return
			}
		}
	}()
	return work, func() {
		close(done)
		<-stopped
		cancel(nil)
	}
}
