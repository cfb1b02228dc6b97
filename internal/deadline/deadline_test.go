package deadline_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/deadline"
)

func TestStopAt(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	within := func(d time.Duration) context.Context {
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(d))
		t.Cleanup(cancel)
		return ctx
	}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		m    deadline.Margin
		want time.Duration // after now
	}{
		{"default margin of a long budget", within(15 * time.Minute), deadline.Margin{Default: 10 * time.Second, Share: 4}, 15*time.Minute - 10*time.Second},
		{"a short budget keeps at most its share", within(20 * time.Second), deadline.Margin{Default: 10 * time.Second, Share: 4}, 15 * time.Second},
		{"a fixed margin whatever the budget", within(20 * time.Second), deadline.Margin{Fixed: 10 * time.Second, Default: time.Second, Share: 4}, 10 * time.Second},
		{"no deadline: Lambda's longest", context.Background(), deadline.Margin{Default: 5 * time.Second, Share: 10}, deadline.Lambda - 5*time.Second},
	} {
		if got := tt.m.StopAt(tt.ctx, now).Sub(now); got != tt.want {
			t.Errorf("%s: stops %s after now, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRunStartsNothingPastItsStopAndReturnsWhatIsLeft(t *testing.T) {
	start := time.Now()
	clock := start
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var done, running, most atomic.Int32
	left := deadline.Run(context.Background(), []int{1, 2, 3, 4, 5, 6}, 2, start.Add(3*time.Second), now, func(i int) {
		if n := running.Add(1); n > most.Load() {
			most.Store(n)
		}
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		clock = clock.Add(time.Second) // each item takes a second of the clock
		mu.Unlock()
		running.Add(-1)
		done.Add(1)
	})
	if most.Load() > 2 {
		t.Errorf("%d items ran at once, want at most 2", most.Load())
	}
	if int(done.Load())+len(left) != 6 || len(left) == 0 || left[len(left)-1] != 6 {
		t.Errorf("%d done, left %v; want every item either done or left, the last ones left", done.Load(), left)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if left := deadline.Run(ctx, []int{1, 2}, 2, start.Add(time.Hour), time.Now, func(int) { t.Error("work started on a done context") }); len(left) != 2 {
		t.Errorf("left %v on a done context, want both", left)
	}
}
