package graph_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/review"
)

// emuTokens takes tokens straight from the emulator; refresh issues a new one.
type emuTokens struct {
	s         *graphemu.Server
	mu        sync.Mutex
	tok       string
	refreshes int
}

func (e *emuTokens) Token(ctx context.Context, refresh bool) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if refresh {
		e.refreshes++
	}
	if refresh || e.tok == "" {
		e.tok = e.s.IssueToken()
	}
	return e.tok, nil
}

type emuEnv struct {
	s      *graphemu.Server
	c      *graph.Client
	tokens *emuTokens
	mu     sync.Mutex
	retry  []string
	waits  []time.Duration
}

func startEmu(t *testing.T, profile string) *emuEnv {
	t.Helper()
	s, err := graphemu.Start(graphemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	p, err := graph.ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	e := &emuEnv{s: s, tokens: &emuTokens{s: s}}
	e.c, err = graph.New(graph.Config{
		Endpoint: s.URL(), Profile: p, Tokens: e.tokens, HTTPClient: s.Client(),
		Retry: graph.RetryPolicy{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		OnRetry: func(op string, attempt int, err error, wait time.Duration) {
			e.mu.Lock()
			e.retry = append(e.retry, fmt.Sprintf("%s#%d", op, attempt))
			e.waits = append(e.waits, wait)
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newTarget(instance string) review.Target {
	return review.Target{
		CatalogID:          "6a1f8c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
		ResourceID:         "7b2a9d3f-4c5e-4f60-9bac-1d2e3f4a5b6c",
		ReviewDefinitionID: "8c3bae40-5d6f-4071-acbd-2e3f4a5b6c7d",
		ReviewInstanceID:   instance,
		Source:             "Door badges",
	}
}

const (
	inst1 = "9d4cbf51-6e70-4182-bdce-3f4a5b6c7d8e"
	inst2 = "ae5dc062-7f81-4293-cedf-4a5b6c7d8e9f"
)

func csvOf(rows int) []byte {
	var b bytes.Buffer
	b.WriteString("PrincipalId,PrincipalType,PermissionId,PermissionName\n")
	for i := range rows {
		fmt.Fprintf(&b, "00000000-0000-4000-8000-%012d,EntraIdUser,perm-%d,Door %d\n", i, i%7, i%7)
	}
	return b.Bytes()
}

func opener(data []byte) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEmulatorEveryProfileAndOperation(t *testing.T) {
	for _, profile := range []string{"v1.0", "beta", "beta-2025"} {
		t.Run(profile, func(t *testing.T) {
			e := startEmu(t, profile)
			ctx := ctxT(t)
			tg := newTarget(inst1)

			s, err := e.c.Create(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			if s.Status != graph.StatusActive || s.InstanceID() != inst1 || s.Data.ReviewDefinitionID != tg.ReviewDefinitionID {
				t.Fatalf("created %+v", s)
			}
			// One session per pair.
			if _, err := e.c.Create(ctx, tg); review.KindOf(err) != review.Conflict {
				t.Fatalf("second create: %v (kind %v), want conflict", err, review.KindOf(err))
			}

			a, b := csvOf(100), csvOf(2000)
			if _, err := e.c.UploadFile(ctx, tg, s.ID, "a.csv", int64(len(a)), opener(a)); err != nil {
				t.Fatal(err)
			}
			up, err := e.c.UploadFile(ctx, tg, s.ID, `b "quoted" ü.csv`, int64(len(b)), opener(b))
			if err != nil {
				t.Fatal(err)
			}
			if up.Stats.FilesUploaded != 2 || up.Stats.TotalBytesUploaded != int64(len(a)+len(b)) {
				t.Errorf("stats after uploads %+v", up.Stats)
			}

			got, err := e.c.Get(ctx, tg, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Files) != 2 || got.Files[1].Name != `b "quoted" ü.csv` || got.Files[1].Size != int64(len(b)) {
				t.Fatalf("files %+v", got.Files)
			}
			view, _ := e.s.Session(s.ID)
			if len(view.Files) != 2 || view.Files[0].SHA256 != sha(a) || view.Files[1].SHA256 != sha(b) {
				t.Fatalf("emulator holds %+v", view.Files)
			}

			list, err := e.c.List(ctx, tg, graph.Filter{ReferenceID: inst1, Status: graph.StatusActive})
			if p := e.c.Profile(); !p.CanList {
				if !errors.Is(err, graph.ErrListUnsupported) {
					t.Fatalf("List on %s: %v", profile, err)
				}
			} else if err != nil || len(list) != 1 || list[0].ID != s.ID {
				t.Fatalf("List = %+v, %v", list, err)
			}

			done, err := e.c.MarkDone(ctx, tg, s.ID)
			if err != nil || !done.IsUploadDone || done.Status != graph.StatusComplete {
				t.Fatalf("MarkDone = %+v, %v", done, err)
			}
			// Closing twice is fine; uploading to a closed session is Gone.
			if _, err := e.c.MarkDone(ctx, tg, s.ID); err != nil {
				t.Fatalf("second MarkDone: %v", err)
			}
			if _, err := e.c.UploadFile(ctx, tg, s.ID, "late.csv", 3, opener([]byte("a,b"))); review.KindOf(err) != review.Gone {
				t.Fatalf("upload to a complete session: %v (kind %v)", err, review.KindOf(err))
			}

			// Delete an active session (where the shape has delete).
			tg2 := newTarget(inst2)
			s2, err := e.c.Create(ctx, tg2)
			if err != nil {
				t.Fatal(err)
			}
			err = e.c.Delete(ctx, tg2, s2.ID)
			if !e.c.Profile().CanDelete {
				if !errors.Is(err, graph.ErrDeleteUnsupported) {
					t.Fatalf("Delete on %s: %v", profile, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.c.Get(ctx, tg2, s2.ID); review.KindOf(err) != review.NotFound {
				t.Fatalf("Get after delete: %v", err)
			}
			if err := e.c.Delete(ctx, tg, s.ID); review.KindOf(err) != review.Gone {
				t.Fatalf("Delete of a complete session: %v (kind %v)", err, review.KindOf(err))
			}
		})
	}
}

func TestEmulatorListPagesThroughNextLinks(t *testing.T) {
	s, err := graphemu.Start(graphemu.Options{MaxPageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	p, _ := graph.ProfileByName("v1.0")
	c, err := graph.New(graph.Config{Endpoint: s.URL(), Profile: p, Tokens: &emuTokens{s: s}, HTTPClient: s.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for i := range 5 {
		tg := newTarget(fmt.Sprintf("9d4cbf51-6e70-4182-bdce-%012d", i))
		if _, err := c.Create(ctx, tg); err != nil {
			t.Fatal(err)
		}
	}
	all, err := c.List(ctx, newTarget(inst1), graph.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || s.Count("list", http.StatusOK) != 3 {
		t.Fatalf("%d sessions in %d pages", len(all), s.Count("list", http.StatusOK))
	}
	one, err := c.List(ctx, newTarget(inst1), graph.Filter{ReferenceID: "9d4cbf51-6e70-4182-bdce-000000000003"})
	if err != nil || len(one) != 1 || one[0].InstanceID() != "9d4cbf51-6e70-4182-bdce-000000000003" {
		t.Fatalf("filtered: %+v, %v", one, err)
	}
}

func TestEmulatorFaults(t *testing.T) {
	data := csvOf(5000) // ~300 KB
	tests := []struct {
		name  string
		fault graphemu.Fault
		check func(t *testing.T, e *emuEnv, s *graph.Session, err error)
	}{
		{"429 with Retry-After", graphemu.Fault{Op: "upload", Status: 429, RetryAfter: "1"},
			func(t *testing.T, e *emuEnv, s *graph.Session, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if len(e.waits) != 1 || e.waits[0] != time.Second {
					t.Fatalf("waits %v, want [1s]", e.waits)
				}
			}},
		{"503 twice", graphemu.Fault{Op: "upload", Status: 503, Times: 2},
			func(t *testing.T, e *emuEnv, s *graph.Session, err error) {
				if err != nil || fmt.Sprint(e.retry) != "[upload#1 upload#2]" {
					t.Fatalf("err %v, retries %v", err, e.retry)
				}
			}},
		{"500 always", graphemu.Fault{Op: "upload", Status: 500, Times: -1},
			func(t *testing.T, e *emuEnv, s *graph.Session, err error) {
				var ge *graph.Error
				if !errors.As(err, &ge) || ge.StatusCode != 500 || review.KindOf(err) != review.Transient || ge.RequestID == "" {
					t.Fatalf("err %v", err)
				}
				if n := e.s.Count("upload", 500); n != 4 {
					t.Fatalf("%d attempts, want 4", n)
				}
			}},
		{"501 not retried", graphemu.Fault{Op: "upload", Status: 501, Times: -1},
			func(t *testing.T, e *emuEnv, s *graph.Session, err error) {
				if err == nil || e.s.Count("upload", 0) != 1 {
					t.Fatalf("err %v, attempts %d", err, e.s.Count("upload", 0))
				}
			}},
		{"reset after 4 KiB", graphemu.Fault{Op: "upload", ResetAfterBytes: 4 << 10},
			func(t *testing.T, e *emuEnv, s *graph.Session, err error) {
				if err != nil || len(e.retry) != 1 {
					t.Fatalf("err %v, retries %v", err, e.retry)
				}
			}},
		{"response lost after the file was stored", graphemu.Fault{Op: "upload", DropResponse: true},
			func(t *testing.T, e *emuEnv, s *graph.Session, err error) {
				if err != nil || s.Stats.FilesUploaded != 1 {
					t.Fatalf("err %v, session %+v", err, s)
				}
				if n := e.s.Count("upload", 0); n != 1 {
					t.Fatalf("%d uploads: the file was sent again", n)
				}
			}},
		{"expired token", graphemu.Fault{}, // ExpireTokens below
			func(t *testing.T, e *emuEnv, s *graph.Session, err error) {
				if err != nil || e.tokens.refreshes != 1 || e.s.Count("upload", 401) != 1 {
					t.Fatalf("err %v, refreshes %d, 401s %d", err, e.tokens.refreshes, e.s.Count("upload", 401))
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmu(t, "v1.0")
			ctx := ctxT(t)
			tg := newTarget(inst1)
			created, err := e.c.Create(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "expired token" {
				e.s.ExpireTokens()
			} else {
				e.s.Inject(tc.fault)
			}
			s, err := e.c.UploadFile(ctx, tg, created.ID, "a.csv", int64(len(data)), opener(data))
			tc.check(t, e, s, err)
			view, _ := e.s.Session(created.ID)
			if err == nil && (len(view.Files) != 1 || view.Files[0].SHA256 != sha(data)) {
				t.Fatalf("emulator holds %+v, want the file once", view.Files)
			}
		})
	}
}

func TestEmulatorDelayPastTheDeadline(t *testing.T) {
	e := startEmu(t, "v1.0")
	tg := newTarget(inst1)
	created, err := e.c.Create(ctxT(t), tg)
	if err != nil {
		t.Fatal(err)
	}
	e.s.Inject(graphemu.Fault{Op: "get", Delay: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.c.Get(ctx, tg, created.ID)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || review.KindOf(err) != review.Transient {
		t.Fatalf("err %v (kind %v)", err, review.KindOf(err))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("returned after %v", d)
	}
}

func TestEmulatorLostAnswersOfCreateAndPatch(t *testing.T) {
	e := startEmu(t, "v1.0")
	ctx := ctxT(t)
	tg := newTarget(inst1)
	// The session is created but the answer is lost: the retry meets the
	// one-session rule. The caller finds the session with List.
	e.s.Inject(graphemu.Fault{Op: "create", DropResponse: true})
	_, err := e.c.Create(ctx, tg)
	if review.KindOf(err) != review.Conflict {
		t.Fatalf("create after a lost answer: %v (kind %v), want conflict", err, review.KindOf(err))
	}
	found, err := e.c.List(ctx, tg, graph.Filter{ReferenceID: tg.ReviewInstanceID})
	if err != nil || len(found) != 1 {
		t.Fatalf("List = %+v, %v", found, err)
	}
	// The close is done but its answer lost: the retry is refused, and
	// MarkDone finds the session closed.
	e.s.Inject(graphemu.Fault{Op: "patch", DropResponse: true})
	s, err := e.c.MarkDone(ctx, tg, found[0].ID)
	if err != nil || !s.IsUploadDone || s.Status != graph.StatusComplete {
		t.Fatalf("MarkDone = %+v, %v", s, err)
	}
}

func TestEmulatorExpiredSessionIsGone(t *testing.T) {
	e := startEmu(t, "beta")
	ctx := ctxT(t)
	tg := newTarget(inst1)
	created, err := e.c.Create(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	e.s.Advance(2*time.Hour + time.Second) // the upload window passes
	if _, err := e.c.UploadFile(ctx, tg, created.ID, "a.csv", 3, opener([]byte("a,b"))); review.KindOf(err) != review.Gone {
		t.Fatalf("upload: %v (kind %v)", err, review.KindOf(err))
	}
	if _, err := e.c.MarkDone(ctx, tg, created.ID); review.KindOf(err) != review.Gone {
		t.Fatalf("MarkDone: %v (kind %v)", err, review.KindOf(err))
	}
	s, err := e.c.Get(ctx, tg, created.ID)
	if err != nil || s.Status != graph.StatusExpired || s.IsUploadDone {
		t.Fatalf("Get = %+v, %v", s, err)
	}
}

func TestEmulatorRejectsWhatTheClientWouldNotSend(t *testing.T) {
	// The client refuses a non-GUID session id before sending; the
	// emulator refuses it too, so a check dropped on either side shows.
	e := startEmu(t, "v1.0")
	if _, err := e.c.Get(ctxT(t), newTarget(inst1), "not-a-guid"); review.KindOf(err) != review.Invalid {
		t.Fatalf("Get with a non-GUID session id: %v", err)
	}
	if n := len(e.s.Journal()); n != 0 {
		t.Fatalf("%d requests reached the emulator, want none", n)
	}
	p, _ := graph.ProfileByName("v1.0")
	req, _ := http.NewRequest(http.MethodGet, e.s.URL()+"/v1.0"+p.CollectionPath(newTarget(inst1).CatalogID, newTarget(inst1).ResourceID)+"/not-a-guid", nil)
	req.Header.Set("Authorization", "Bearer "+e.s.IssueToken())
	resp, err := e.s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("emulator answered %d to a non-GUID session id, want 400", resp.StatusCode)
	}
}
