package ingest_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ingest"
	"github.com/byodrop/byodrop/internal/review"
)

// A file for a session that exists costs one Graph request, its upload:
// the token and the session come from cache, and the session is read back
// only when the file completes its manifest.
func TestFileIntoAnOpenSessionSendsOnlyItsUpload(t *testing.T) {
	tests := []struct {
		name     string
		manifest string // "" for none
		want     []string
	}{
		{"no manifest", "", []string{"upload"}},
		{"manifest still missing a file", `{"files":["a.csv","b.csv","c.csv"]}`, []string{"upload"}},
		{"file completes the manifest", `{"files":["a.csv","b.csv"]}`, []string{"upload", "get", "patch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := harness.New(t, harness.Options{})
			mustIngest(t, w, w.Put(harness.Key("a.csv"), csvRows(3)))
			if tt.manifest != "" {
				mustIngest(t, w, w.Put(harness.Key("manifest.json"), []byte(tt.manifest)))
			}
			w.Emu.ResetJournal()
			mustIngest(t, w, w.Put(harness.Key("b.csv"), csvRows(3)))
			var ops []string
			for _, r := range w.Emu.Journal() {
				ops = append(ops, r.Op)
			}
			if !slices.Equal(ops, tt.want) {
				t.Fatalf("Graph requests for the second file: %v, want %v", ops, tt.want)
			}
		})
	}
}

// s3Counter counts S3 requests by method and what they touch.
type s3Counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	ops  []string
}

func (c *s3Counter) RoundTrip(req *http.Request) (*http.Response, error) {
	what := "object"
	switch p := req.URL.Path; {
	case strings.Contains(p, "/state/claims/"):
		what = "claim"
	case strings.Contains(p, "/state/sessions/"):
		what = "record"
	case strings.Contains(p, "/state/reports/"):
		what = "report"
	case strings.Contains(p, "/state/open/"):
		what = "index"
	}
	c.mu.Lock()
	c.ops = append(c.ops, req.Method+" "+what)
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

// A file into an open session costs 7 S3 requests, each needed for
// exactly-once: the claim's create and its final write (the lock, and the
// outcome a repeated event reads), two reads of the object (the pre-check
// before anything reaches Graph, then the upload stream), the session
// record's read (find the session) and its write (the file, once), and the
// report. In a warm container that already knows the session, the record
// is not read: 6.
func TestFileIntoAnOpenSessionMakesSevenS3RequestsSixWhenWarm(t *testing.T) {
	w := harness.New(t, harness.Options{})
	mustIngest(t, w, w.Put(harness.Key("a.csv"), csvRows(3)))
	counter := &s3Counter{next: http.DefaultTransport.(*http.Transport).Clone()}
	o := w.S3Client.Options()
	o.HTTPClient = &http.Client{Transport: counter}
	// A container that has not seen the session yet.
	h := ingest.New(w.Settings, w.Graph, s3.New(o), w.Log)
	for _, tt := range []struct {
		file string
		want []string
	}{
		{"b.csv", []string{"GET object", "GET object", "GET record", "PUT claim", "PUT claim", "PUT record", "PUT report"}},
		{"c.csv", []string{"GET object", "GET object", "PUT claim", "PUT claim", "PUT record", "PUT report"}},
	} {
		counter.mu.Lock()
		counter.ops = nil
		counter.mu.Unlock()
		if err := h.Handle(context.Background(), harness.Payload(w.Put(harness.Key(tt.file), csvRows(3)))); err != nil {
			t.Fatal(err)
		}
		got := slices.Clone(counter.ops)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("S3 requests for %s into an open session: %v, want %v", tt.file, got, tt.want)
		}
	}
	if _, files := sessionFiles(t, w); len(files) != 3 {
		t.Fatalf("%d files in Graph, want 3", len(files))
	}
}

// A warm container's cached record may say open after the finalizer closed
// the session: Graph's refusal of the upload is then read back, and the
// file is late, with nothing stored.
func TestCachedRecordOfASessionClosedSinceGivesLate(t *testing.T) {
	w := harness.New(t, harness.Options{})
	h := ingest.New(w.Settings, w.Graph, w.S3Client, w.Log)
	ctx := context.Background()
	if err := h.Handle(ctx, harness.Payload(w.Put(harness.Key("a.csv"), csvRows(3)))); err != nil {
		t.Fatal(err)
	}
	c := w.Closer("finalizer")
	c.Now = func() time.Time { return time.Now().Add(w.Settings.QuietPeriod + time.Minute) }
	if s, err := c.Run(ctx); err != nil || len(s.Closed) != 1 {
		t.Fatalf("finalizer: %+v, %v", s, err)
	}
	key := harness.Key("b.csv")
	if err := h.Handle(ctx, harness.Payload(w.Put(key, csvRows(3)))); err != nil {
		t.Fatal(err)
	}
	if r := w.Report(key); r.Status != review.Late {
		t.Fatalf("report = %+v, want late", r)
	}
	if _, files := sessionFiles(t, w); len(files) != 1 {
		t.Fatalf("%d files in Graph, want the first only", len(files))
	}
}
