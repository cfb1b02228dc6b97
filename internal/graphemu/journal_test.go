package graphemu

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestJournalRecordsEveryRequest(t *testing.T) {
	s := startT(t, Options{Now: fakeClock()})
	tok := tokenForm(t, s, s.Options().TenantID, secretForm(s)).json(t)["access_token"].(string)
	id := create(t, s, tok, "beta", instID)
	r := upload(t, s, tok, "beta", id, "a.csv", "abc\n")
	send(t, s, http.MethodGet, collection(s, "beta", catalogID, resourceID)+"?$top=5", tok, "", nil)
	send(t, s, http.MethodGet, collection(s, "beta", catalogID, resourceID)+"/"+id, "", "", nil)

	j := s.Journal()
	want := []struct {
		op, method, query string
		status            int
	}{
		{"token", "POST", "", 200},
		{"create", "POST", "", 201},
		{"upload", "POST", "", 200},
		{"list", "GET", "$top=5", 200},
		{"get", "GET", "", 401},
	}
	if len(j) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(j), len(want), j)
	}
	for i, w := range want {
		e := j[i]
		if e.Op != w.op || e.Method != w.method || e.Query != w.query || e.Status != w.status || e.At.IsZero() || e.RequestID == "" || !strings.HasPrefix(e.Path, "/") {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	if j[2].BodyBytes != int64(len(multipartBody("XyZ", "file", "a.csv", "abc\n"))) || j[2].Profile != "beta" || j[2].RequestID != r.header.Get("request-id") {
		t.Errorf("upload entry %+v", j[2])
	}
	if j[4].Code != "InvalidAuthenticationToken" {
		t.Errorf("refusal entry code %q", j[4].Code)
	}
	s.ResetJournal()
	if len(s.Journal()) != 0 {
		t.Error("ResetJournal left entries")
	}
}

func TestJournalIsSafeForConcurrentUse(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	id := create(t, s, tok, "v1.0", instID)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				upload(t, s, tok, "v1.0", id, "f.csv", "x\n")
			} else {
				send(t, s, http.MethodGet, collection(s, "v1.0", catalogID, resourceID)+"/"+id, tok, "", nil)
			}
			_ = s.Journal()
			_ = s.Sessions()
		}()
	}
	wg.Wait()
	if n := s.Count("upload", 200) + s.Count("get", 200); n != 16 {
		t.Errorf("%d successful entries, want 16", n)
	}
	if v, _ := s.Session(id); len(v.Files) != 8 || v.TotalBytes != 16 {
		t.Errorf("session %+v", v)
	}
}

func TestSessionsExpireWhenTheirWindowPasses(t *testing.T) {
	s := startT(t, Options{Now: fakeClock(), UploadWindow: 2 * time.Hour, TokenTTL: 24 * time.Hour})
	tok := s.IssueToken()
	id := create(t, s, tok, "v1.0", instID)
	item := collection(s, "v1.0", catalogID, resourceID) + "/" + id
	status := func() string {
		r := send(t, s, http.MethodGet, item, tok, "", nil)
		return r.json(t)["status"].(string)
	}
	s.Advance(2*time.Hour - time.Second)
	if st := status(); st != "active" {
		t.Fatalf("status %q a second before the window ends", st)
	}
	if r := upload(t, s, tok, "v1.0", id, "a.csv", "x"); r.status != 200 {
		t.Fatalf("upload inside the window: %d", r.status)
	}
	s.Advance(time.Second)
	if st := status(); st != "expired" {
		t.Fatalf("status %q when the window ends", st)
	}
	r := send(t, s, http.MethodGet, collection(s, "v1.0", catalogID, resourceID)+"?$filter=status%20eq%20'expired'", tok, "", nil)
	if got := ids(t, r); len(got) != 1 || got[0] != id {
		t.Errorf("expired sessions listed: %v", got)
	}
	if v, _ := s.Session(id); v.Status != "expired" || v.IsUploadDone || len(v.Files) != 1 || !v.WindowEnd.Equal(v.CreatedAt.Add(2*time.Hour)) {
		t.Errorf("Session = %+v", v)
	}
}
