package reliability_test

import (
	"context"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/review"
)

// TestDeadlineStopsCleanly gives an invocation less time than a Graph call
// takes. It must stop before its deadline, release its claim, report the
// failure and return an error, so that Lambda retries; the retry must then
// succeed with the file in Graph exactly once.
func TestDeadlineStopsCleanly(t *testing.T) {
	// The handler keeps a tenth of a short budget to settle the claim
	// and write the report; 2.5s leaves it 250ms, enough on a loaded
	// two-core machine.
	const budget = 2500 * time.Millisecond
	for _, op := range []string{"token", "create", "upload"} {
		t.Run(op+" slower than the time left", func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{})
			key := harness.Key("slow.csv")
			body := csvRows(20, 1)
			rec := r.Put(key, body)
			r.Emu.Inject(graphemu.Fault{Op: op, Delay: 5 * time.Second})

			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			deadline, _ := ctx.Deadline()
			err := r.ingest(ctx, rec)
			returned := time.Now()
			if err == nil {
				t.Fatal("the invocation ran out of time but returned no error: Lambda would not retry it")
			}
			if returned.After(deadline) {
				t.Errorf("returned %s after the deadline", returned.Sub(deadline))
			}
			t.Logf("returned %s before the deadline: %v", deadline.Sub(returned).Round(time.Millisecond), err)
			c, cerr := r.claim(rec)
			if cerr != nil || c.State != claim.Released || c.Owner == "" {
				t.Errorf("claim = %+v, %v; want released so that the retry takes over at once", c, cerr)
			}
			if rep := r.report(key); rep.Status != review.Failed || len(rep.Errors) != 1 {
				t.Errorf("report = %+v, want failed with the reason", rep)
			}

			// Lambda retries a minute later at the earliest; by then a
			// request the invocation abandoned has finished on the server.
			settle(t, r)
			if err := r.ingest(context.Background(), rec); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if rep := r.report(key); rep.Status != review.Uploaded {
				t.Fatalf("report after the retry = %+v, want uploaded", rep)
			}
			checkExactlyOnce(t, r, "slow.csv", body, false)
			if c, _ := r.claim(rec); c.State != claim.Done || c.Attempts != 2 {
				t.Errorf("claim after the retry = %+v, want done after 2 attempts", c)
			}
		})
	}
}
