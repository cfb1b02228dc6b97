package reliability_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

// TestSoakKilledMidUpload runs the real ingest bootstrap under the Lambda
// runtime interface emulator and kills it (SIGKILL) in the middle of
// uploads, soakSize.kills times: no release, no report, no last word. Every
// event is then delivered again, duplicated, as Lambda's retries do, and
// the finalizer runs. Every valid file must end in its review's one
// session exactly once, and every session closed.
func TestSoakKilledMidUpload(t *testing.T) {
	p := soakSize
	if p.kills == 0 {
		t.Skip("no kills in this soak size")
	}
	testenv.RequireTool(t, "aws-lambda-rie")
	t.Parallel()
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	bootstrap := buildIngestBootstrap(t)
	victimFn := startIngestRIE(t, r, bootstrap, "victim")
	retryFn := startIngestRIE(t, r, bootstrap, "retry")

	reviews := []review.Target{harness.Target(), harness.Target()}
	reviews[1].ReviewInstanceID = "00000000-0000-4000-8000-00000000cafe"
	type drop struct {
		key  string
		body []byte
		rec  eventRecord
	}
	var drops []drop
	for i := range 3 * p.kills {
		tg := reviews[i%len(reviews)]
		d := drop{key: harness.KeyFor(tg, fmt.Sprintf("export-%02d.csv", i)), body: csvRows(20+i, i)}
		d.rec = r.Put(d.key, d.body)
		drops = append(drops, d)
	}

	// The kills: one invocation at a time, its upload held by the
	// emulator until the process is gone.
	killed := 0
	for i := 0; i < p.kills; i++ {
		d := drops[i]
		r.Emu.Inject(graphemu.Fault{Op: "upload", Delay: time.Minute})
		res := make(chan testenv.InvokeResult, 1)
		go func() {
			out, _ := victimFn.Invoke(ctx, harness.Payload(d.rec))
			res <- out
		}()
		waitFor(t, "the upload to reach Graph", func() bool { return r.Emu.PendingFaults() == 0 })
		if n := victimFn.KillFunction(); n == 0 {
			t.Fatal("no function process to kill")
		}
		killed++
		if out := <-res; !out.FunctionError {
			t.Fatalf("a killed invocation answered %s without an error", out.Payload)
		}
		r.Emu.ClearFaults()
	}

	// Lambda's retries, and the other events, each twice, on another
	// execution environment. The killed invocations' claims lapse within
	// their lease; a retry that meets one waits, or fails and is retried.
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(drops))
	for round := range 2 {
		for _, d := range drops {
			wg.Go(func() {
				for attempt := 1; attempt <= p.maxAttempts; attempt++ {
					mu.Lock()
					out, err := retryFn.Invoke(ctx, harness.Payload(d.rec))
					mu.Unlock()
					if err == nil && !out.FunctionError {
						return
					}
					time.Sleep(time.Second)
				}
				errs <- fmt.Errorf("round %d: %s still failing after %d attempts", round, d.key, p.maxAttempts)
			})
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := r.finalizeLater(ctx); err != nil {
		t.Fatalf("finalizer: %v", err)
	}

	sessions := r.Emu.Sessions()
	if len(sessions) != len(reviews) {
		t.Fatalf("%d sessions, want %d", len(sessions), len(reviews))
	}
	copies := map[string]int{}
	for _, s := range sessions {
		if !s.IsUploadDone {
			t.Errorf("session %s is not closed", s.ID)
		}
		for _, f := range s.Files {
			copies[f.Name+"/"+f.SHA256]++
		}
	}
	for _, d := range drops {
		name := d.key[len(d.key)-len("export-00.csv"):]
		if n := copies[name+"/"+sha(d.body)]; n != 1 {
			t.Errorf("%s is in Graph %d times, want 1", d.key, n)
		}
		if rep := r.report(d.key); rep.Status != review.Uploaded && rep.Status != review.Duplicate {
			t.Errorf("%s: report %q", d.key, rep.Status)
		}
	}
	t.Logf("killed the bootstrap %d times mid-upload; %d files, each once in %d closed sessions", killed, len(drops), len(sessions))
}

// mu serializes invocations of one runtime emulator, which takes one at a
// time (its own lock does too; this keeps waits out of its timeout).
var mu sync.Mutex

var ingestBin struct {
	once sync.Once
	path string
	err  error
}

// buildIngestBootstrap builds the ingest function for the host once.
func buildIngestBootstrap(t *testing.T) string {
	t.Helper()
	ingestBin.once.Do(func() {
		ingestBin.path, ingestBin.err = testenv.BuildBootstrap(context.Background(), "./functions/ingest", "", "", t.TempDir())
	})
	if ingestBin.err != nil {
		t.Fatal(ingestBin.err)
	}
	return ingestBin.path
}

// startIngestRIE runs the ingest bootstrap under the runtime emulator with
// r's S3 server, state bucket and Graph emulator.
func startIngestRIE(t *testing.T, r *rig, bootstrap, name string) *testenv.RIE {
	t.Helper()
	env := r.FunctionEnv()
	fn, err := testenv.StartRIE(context.Background(), testenv.RIEOptions{
		Bootstrap: bootstrap, Env: env, FunctionName: "byodrop-IngestFunction-" + name, Timeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s function output:\n%s", name, fn.Logs())
		}
		fn.Close()
	})
	return fn
}
