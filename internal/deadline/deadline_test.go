package deadline_test

import (
	"context"
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
