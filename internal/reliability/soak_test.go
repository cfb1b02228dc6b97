package reliability_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// soakParams size a soak run; soakSize (soak_size*_test.go) picks the
// short one for `make test` and the long one with -tags soak.
type soakParams struct {
	objects, reviews int
	// Lambda's attempts per event: the first, its two async retries, and
	// replays from the failure queue.
	maxAttempts int
	// kills is how many real bootstraps TestSoakKilledMidUpload kills.
	kills int
}

// soakFault is a fault and its share of the faulted requests.
type soakFault struct {
	name  string
	share float64
	fault graphemu.Fault
}

// soakFaults are the faults drawn for ~10% of Graph and Entra requests,
// with their share of that 10%. Timeouts are left to the fault matrix,
// where a late-landing upload is examined on its own, unless
// BYODROP_SOAK_TIMEOUTS=1 adds them.
var soakFaults = []soakFault{
	{"503", 0.3, graphemu.Fault{Status: 503}},
	{"500", 0.15, graphemu.Fault{Status: 500}},
	{"429", 0.2, graphemu.Fault{Status: 429, RetryAfter: "0"}},
	{"reset", 0.2, graphemu.Fault{ResetAfterBytes: 8}},
	{"lost response", 0.15, graphemu.Fault{DropResponse: true}},
}

const soakFaultRate = 0.10

// soakObject is one dropped object and what must become of it.
type soakObject struct {
	key    string
	name   string
	review int // index in reviews; -1 for a key that names none
	body   []byte
	valid  bool
	rec    eventRecord
}

// TestSoak drops many objects for many reviews, delivers their events
// duplicated and out of order to 8 concurrent invocations while ~10% of
// Graph requests fail and tokens expire, retries failed invocations as
// Lambda does, then runs the finalizer, and checks: every valid file is in
// its review's one session exactly once, every invalid file has a rejected
// report, every session is closed. BYODROP_SOAK_SEED replays a run.
func TestSoak(t *testing.T) {
	p := soakSize
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BYODROP_SOAK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BYODROP_SOAK_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (BYODROP_SOAK_SEED=%d replays this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var rngMu sync.Mutex
	draw := func() float64 {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.Float64()
	}

	faults := soakFaults
	opts := rigOptions{Options: harness.Options{Retry: graph.RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}}}
	if os.Getenv("BYODROP_SOAK_TIMEOUTS") == "1" {
		// Late answers too: the client gives up after a second, the
		// emulator answers after two.
		opts.PerTryTimeout = time.Second
		faults = append(slices.Clone(faults), soakFault{"timeout", 0.1, graphemu.Fault{Delay: 2 * time.Second}})
		t.Log("with timeouts (BYODROP_SOAK_TIMEOUTS=1)")
	}
	r := newRig(t, opts)
	ctx := context.Background()
	start := time.Now()

	// Reviews: distinct instances, some sharing a catalog and resource.
	reviews := make([]review.Target, p.reviews)
	for i := range reviews {
		tg := review.Target{CatalogID: guid(rng), ResourceID: guid(rng), ReviewDefinitionID: guid(rng), ReviewInstanceID: guid(rng)}
		if i > 0 && i%3 == 0 {
			tg.CatalogID, tg.ResourceID = reviews[i-1].CatalogID, reviews[i-1].ResourceID
		}
		reviews[i] = tg
	}
	withManifest := map[int]bool{}
	for i := range reviews {
		withManifest[i] = i%4 == 1
	}

	// Objects: ~12% invalid content, a few invalid keys.
	objs := make([]*soakObject, 0, p.objects)
	for i := range p.objects {
		o := &soakObject{review: i % p.reviews, valid: true}
		o.name = fmt.Sprintf("export-%03d.csv", i)
		o.body = csvRows(2+rng.IntN(30), i)
		switch x := rng.Float64(); {
		case x < 0.12:
			o.valid = false
			o.body = badCSV(rng, i)
		case x < 0.15:
			o.valid, o.review = false, -1
		}
		if o.review >= 0 {
			o.key = harness.KeyFor(reviews[o.review], o.name)
		} else {
			bad := reviews[i%p.reviews]
			bad.ReviewInstanceID = "not-a-guid-" + strconv.Itoa(i)
			o.key = harness.KeyFor(bad, o.name)
		}
		o.rec = r.Put(o.key, o.body)
		objs = append(objs, o)
	}
	var manifests []eventRecord
	for i, tgt := range reviews {
		if !withManifest[i] {
			continue
		}
		var names []string
		for _, o := range objs {
			if o.review == i && o.valid {
				names = append(names, `"`+o.name+`"`)
			}
		}
		manifests = append(manifests, r.Put(harness.KeyFor(tgt, "manifest.json"), []byte(`{"files":[`+strings.Join(names, ",")+`]}`)))
	}

	// Events: every record once, ~25% again (some three times), shuffled,
	// one to three records per invocation.
	var recs []eventRecord
	for _, o := range objs {
		recs = append(recs, o.rec)
		if rng.Float64() < 0.25 {
			recs = append(recs, o.rec)
			if rng.Float64() < 0.3 {
				recs = append(recs, o.rec)
			}
		}
	}
	recs = append(recs, manifests...)
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	var batches [][]eventRecord
	for len(recs) > 0 {
		n := min(len(recs), 1+rng.IntN(3))
		batches = append(batches, recs[:n])
		recs = recs[n:]
	}

	// Faults on ~10% of requests: one draw per request decides whether and
	// which fault applies (Match runs for each pending fault in turn).
	injected := map[string]*atomic.Int64{}
	shares := 0.0
	for _, f := range faults {
		shares += f.share
	}
	var decided sync.Map // *http.Request -> fault name or ""
	decide := func(req *http.Request) string {
		if v, ok := decided.Load(req); ok {
			return v.(string)
		}
		name := ""
		if x := draw(); x < soakFaultRate {
			acc := 0.0
			for _, f := range faults {
				if acc += f.share / shares * soakFaultRate; x < acc {
					name = f.name
					break
				}
			}
		}
		v, _ := decided.LoadOrStore(req, name)
		return v.(string)
	}
	for _, f := range faults {
		injected[f.name] = &atomic.Int64{}
		fault := f.fault
		fault.Times = -1
		name := f.name
		fault.Match = func(req *http.Request) bool {
			if decide(req) != name {
				return false
			}
			injected[name].Add(1)
			return true
		}
		r.Emu.Inject(fault)
	}
	// Tokens expire now and then, as they do every hour.
	stopExpiry := make(chan struct{})
	var expiries atomic.Int64
	var expiryDone sync.WaitGroup
	expiryDone.Go(func() {
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopExpiry:
				return
			case <-tick.C:
				r.Emu.ExpireTokens()
				expiries.Add(1)
			}
		}
	})

	// Invocations: 8 workers; a failed one goes back to the end of the
	// queue, as Lambda's retries (and replays) come later, up to
	// maxAttempts times.
	type invocation struct {
		recs    []eventRecord
		attempt int
	}
	queue := make(chan invocation, len(batches)*p.maxAttempts)
	var pending sync.WaitGroup
	var invocations, failures, gaveUp atomic.Int64
	for _, b := range batches {
		pending.Add(1)
		queue <- invocation{recs: b, attempt: 1}
	}
	var workers sync.WaitGroup
	for range 8 {
		workers.Go(func() {
			for inv := range queue {
				ictx, cancel := context.WithTimeout(ctx, time.Minute)
				err := r.ingest(ictx, inv.recs...)
				cancel()
				invocations.Add(1)
				if err != nil {
					failures.Add(1)
					if inv.attempt < p.maxAttempts {
						pending.Add(1)
						queue <- invocation{recs: inv.recs, attempt: inv.attempt + 1}
					} else {
						gaveUp.Add(1)
						t.Errorf("invocation failed %d times, last: %v", inv.attempt, err)
					}
				}
				pending.Done()
			}
		})
	}
	pending.Wait()
	close(queue)
	workers.Wait()
	ingestTime := time.Since(start)

	// The finalizer, past the quiet period, still under faults; a failed
	// run is retried like the next scheduled run.
	var runs int
	var lastErr error
	for runs = 1; runs <= 10; runs++ {
		sum, err := r.finalizeLater(ctx)
		if lastErr = err; err == nil && len(sum.Open) == 0 {
			break
		}
	}
	if lastErr != nil {
		t.Errorf("finalizer still failing after %d runs: %v", runs, lastErr)
	}
	close(stopExpiry)
	expiryDone.Wait()
	r.Emu.ClearFaults()
	settle(t, r)

	// Every valid file in its review's one session, exactly once.
	type fileID struct{ name, sha string }
	bySession := map[string]map[fileID]int{} // review instance -> files
	sessions := map[string]int{}
	closed, files := 0, 0
	for _, s := range r.Emu.Sessions() {
		sessions[s.ReviewInstanceID]++
		if s.IsUploadDone {
			closed++
		} else {
			t.Errorf("session %s of review %s is not closed", s.ID, s.ReviewInstanceID)
		}
		m := bySession[s.ReviewInstanceID]
		if m == nil {
			m = map[fileID]int{}
			bySession[s.ReviewInstanceID] = m
		}
		for _, f := range s.Files {
			m[fileID{f.Name, f.SHA256}]++
			files++
		}
	}
	valid, invalid := 0, 0
	want := map[string]map[fileID]bool{}
	for _, o := range objs {
		rep := r.report(o.key)
		if !o.valid {
			invalid++
			if rep.Status != review.Rejected {
				t.Errorf("invalid %s: report %q, want rejected", o.key, rep.Status)
			}
			continue
		}
		valid++
		inst := reviews[o.review].ReviewInstanceID
		id := fileID{o.name, sha(o.body)}
		if want[inst] == nil {
			want[inst] = map[fileID]bool{}
		}
		want[inst][id] = true
		if n := bySession[inst][id]; n != 1 {
			t.Errorf("%s is in its session %d times, want 1", o.key, n)
		}
		if rep.Status != review.Uploaded && rep.Status != review.Duplicate {
			t.Errorf("%s: report %q, want uploaded (or duplicate)", o.key, rep.Status)
		}
	}
	for inst, m := range bySession {
		if sessions[inst] != 1 {
			t.Errorf("review %s has %d sessions, want 1", inst, sessions[inst])
		}
		for id, n := range m {
			if !want[inst][id] {
				t.Errorf("review %s holds %d unexpected copies of %s", inst, n, id.name)
			}
		}
	}
	if len(bySession) != len(want) {
		t.Errorf("%d reviews have sessions, %d have valid files", len(bySession), len(want))
	}
	open, err := r.Ledger.OpenSessions(ctx)
	if err != nil || len(open) != 0 {
		t.Errorf("open index after the finalizer: %v, %v; want empty", open, err)
	}
	for inst := range want {
		for i, tgt := range reviews {
			if tgt.ReviewInstanceID != inst {
				continue
			}
			rec, err := r.Ledger.Session(ctx, reviews[i])
			if err != nil || rec.State != ledger.Complete {
				t.Errorf("ledger of review %s: %+v, %v; want complete", inst, rec, err)
			}
		}
	}

	events := 0
	for _, b := range batches {
		events += len(b)
	}
	var faultCounts []string
	total := int64(0)
	for _, f := range faults {
		n := injected[f.name].Load()
		total += n
		faultCounts = append(faultCounts, fmt.Sprintf("%s %d", f.name, n))
	}
	requests := len(r.Emu.Journal())
	uploadsOK := r.Emu.Count("upload", 200)
	t.Logf("soak (seed %d): %d objects (%d valid, %d invalid) for %d reviews (%d with a manifest); "+
		"%d events (%d duplicates) in %d invocations, %d failed and retried, %d given up; "+
		"%d Graph/Entra requests, %d faults injected (%.1f%%: %s), %d token expiries, %d client retries; "+
		"%d sessions (%d closed), %d files, %d uploads answered 200; finalizer runs %d; "+
		"ingest %s, total %s",
		seed, len(objs), valid, invalid, len(reviews), len(manifests),
		events, events-len(objs)-len(manifests), invocations.Load(), failures.Load(), gaveUp.Load(),
		requests, total, 100*float64(total)/float64(max(requests, 1)), strings.Join(faultCounts, ", "), expiries.Load(), r.retries.Load(),
		len(r.Emu.Sessions()), closed, files, uploadsOK, min(runs, 10),
		ingestTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// guid draws a random version-4 GUID.
func guid(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()&(1<<48-1))
}

// badCSV returns one of several invalid files.
func badCSV(rng *rand.Rand, seed int) []byte {
	good := string(csvRows(1+rng.IntN(10), seed))
	switch rng.IntN(5) {
	case 0:
		return []byte(good + "bob,EntraIdUser,p,P,d,t,s,S,,,\r\n")
	case 1:
		return []byte(header)
	case 2:
		return []byte(good + "\"00000000-1111-4111-8111-111111111111,EntraIdUser\r\n")
	case 3:
		return []byte("name,email\r\nbob,bob@example.com\r\n")
	default:
		return []byte(good + "00000000-1111-4111-8111-111111111111,EntraIdUser,=cmd|' /C calc'!A0,P,d,t,s,S,,,\r\n")
	}
}
