package graphemu

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestInjectedStatusFaults(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fault      Fault
		op         string // the op the test performs
		wantStatus []int  // statuses of consecutive requests
		code       string
	}{
		{"429 with Retry-After on create, once", Fault{Op: "create", Status: 429, RetryAfter: "3"}, "create", []int{429, 201}, "TooManyRequests"},
		{"503 twice on get", Fault{Op: "get", Status: 503, RetryAfter: "1", Times: 2}, "get", []int{503, 503, 200}, "ServiceUnavailable"},
		{"unlimited 500 until cleared", Fault{Op: "patch", Status: 500, Times: -1}, "patch", []int{500, 500, 500, 500}, "InternalServerError"},
		{"a fault for another op does not apply", Fault{Op: "upload", Status: 503}, "get", []int{200}, ""},
		{"an op-less fault applies to anything", Fault{Status: 502}, "list", []int{502, 200}, "BadGateway"},
		{"code and message can be chosen", Fault{Op: "upload", Status: 400, Code: codeSessionNotActive, Message: "gone"}, "upload", []int{400, 200}, codeSessionNotActive},
		{"Match narrows the requests", Fault{Op: "get", Status: 404, Match: func(r *http.Request) bool { return r.Header.Get("X-Test") == "" }}, "get", []int{200}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startT(t, Options{})
			tok := s.IssueToken()
			id := create(t, s, tok, "v1.0", instID)
			item := collection(s, "v1.0", catalogID, resourceID) + "/" + id
			if tc.fault.Match != nil {
				tc.fault.Match = func(r *http.Request) bool { return r.URL.Path == "/nowhere" }
			}
			s.Inject(tc.fault)
			for i, want := range tc.wantStatus {
				var r resp
				switch tc.op {
				case "create":
					r = sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, resourceID), tok, createBody("v1.0", defID, newGUID()))
				case "get":
					r = send(t, s, http.MethodGet, item, tok, "", nil)
				case "list":
					r = send(t, s, http.MethodGet, collection(s, "v1.0", catalogID, resourceID), tok, "", nil)
				case "patch":
					r = sendJSON(t, s, http.MethodPatch, item, tok, `{"isUploadDone":true}`)
				case "upload":
					r = upload(t, s, tok, "v1.0", id, "a.csv", "x\n")
				}
				if r.status != want {
					t.Fatalf("request %d: status %d, want %d: %s", i, r.status, want, r.body)
				}
				if want < 300 {
					continue
				}
				code, msg := r.graphErr(t)
				if code != tc.code {
					t.Errorf("request %d: code %s, want %s", i, code, tc.code)
				}
				if tc.fault.Message != "" && msg != tc.fault.Message {
					t.Errorf("message %q", msg)
				}
				if r.header.Get("Retry-After") != tc.fault.RetryAfter {
					t.Errorf("Retry-After %q, want %q", r.header.Get("Retry-After"), tc.fault.RetryAfter)
				}
			}
			if tc.fault.Times < 0 {
				s.ClearFaults()
				if r := sendJSON(t, s, http.MethodPatch, item, tok, `{"isUploadDone":true}`); r.status != 200 {
					t.Errorf("after ClearFaults: %d", r.status)
				}
			}
			// A faulted upload recorded nothing.
			if v, _ := s.Session(id); tc.op == "upload" && len(v.Files) != 1 {
				t.Errorf("files %+v, want only the one after the fault", v.Files)
			}
		})
	}
}

func TestInjectedTokenFaultAnswersLikeEntra(t *testing.T) {
	s := startT(t, Options{})
	s.Inject(Fault{Op: "token", Status: 503, RetryAfter: "2"})
	r := tokenForm(t, s, s.Options().TenantID, secretForm(s))
	if r.status != 503 || r.header.Get("Retry-After") != "2" {
		t.Fatalf("%d Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	checkEntraError(t, r, "temporarily_unavailable", 90033)
	if r := tokenForm(t, s, s.Options().TenantID, secretForm(s)); r.status != 200 {
		t.Errorf("after the fault: %d", r.status)
	}
}

func TestInjectedDelay(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	list := collection(s, "v1.0", catalogID, resourceID)

	t.Run("the answer comes after the delay", func(t *testing.T) {
		s.Inject(Fault{Op: "list", Delay: 150 * time.Millisecond})
		start := time.Now()
		if r := send(t, s, http.MethodGet, list, tok, "", nil); r.status != 200 {
			t.Fatalf("%d", r.status)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
	})
	t.Run("a delayed status answers that status", func(t *testing.T) {
		s.Inject(Fault{Op: "list", Delay: 50 * time.Millisecond, Status: 504})
		if r := send(t, s, http.MethodGet, list, tok, "", nil); r.status != 504 {
			t.Fatalf("%d", r.status)
		}
	})
	t.Run("a client that gives up ends the delay and nothing is done", func(t *testing.T) {
		s.ResetJournal()
		s.Inject(Fault{Op: "create", Delay: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, list, strings.NewReader(createBody("v1.0", defID, instID)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		res, err := s.Client().Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				t.Logf("answer %d %s; journal %+v", res.StatusCode, b, s.Journal())
			}
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		waitFor(t, func() bool { return s.Count("create", 0) == 1 })
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the handler kept waiting %v after the client left", d)
		}
		if j := s.Journal()[0]; j.Status != 0 || j.Fault != "delay" {
			t.Errorf("journal %+v", j)
		}
		if n := len(s.Sessions()); n != 0 {
			t.Errorf("an abandoned create made %d sessions", n)
		}
	})
	t.Run("Close ends pending delays", func(t *testing.T) {
		s2 := startT(t, Options{})
		s2.Inject(Fault{Op: "list", Delay: time.Hour})
		go s2.Client().Get(collection(s2, "v1.0", catalogID, resourceID))
		waitFor(t, func() bool { return s2.PendingFaults() == 0 })
		start := time.Now()
		s2.Close()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Close took %v", d)
		}
	})
}

func TestInjectedResetAfterBytes(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	id := create(t, s, tok, "v1.0", instID)
	s.ResetJournal()
	s.Inject(Fault{Op: "upload", ResetAfterBytes: 1000})
	content := strings.Repeat("x", 1<<20)
	req, _ := http.NewRequest(http.MethodPost, collection(s, "v1.0", catalogID, resourceID)+"/"+id+"/uploadFile",
		strings.NewReader(multipartBody("B", "file", "a.csv", content)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	res, err := s.Client().Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatalf("got an answer (%d) instead of a reset", res.StatusCode)
	}
	// Which error the client reports depends on whether it was writing or
	// reading when the RST arrived (reset, broken pipe, closed connection).
	t.Logf("client error: %v", err)
	waitFor(t, func() bool { return s.Count("upload", 0) == 1 })
	j := s.Journal()[0]
	if j.Status != 0 || j.Fault != "reset" || j.BodyBytes < 1000 || j.BodyBytes >= int64(len(content)) {
		t.Errorf("journal %+v", j)
	}
	if v, _ := s.Session(id); len(v.Files) != 0 {
		t.Errorf("a reset upload recorded %+v", v.Files)
	}
	if r := upload(t, s, tok, "v1.0", id, "a.csv", "x"); r.status != 200 {
		t.Errorf("the next upload: %d %s", r.status, r.body)
	}
}

// A lost response: the session is created, the client sees only a reset,
// and its retry meets the conflict it must be ready for.
func TestInjectedDropResponse(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	s.Inject(Fault{Op: "create", DropResponse: true})
	req, _ := http.NewRequest(http.MethodPost, collection(s, "v1.0", catalogID, resourceID), strings.NewReader(createBody("v1.0", defID, instID)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.Client().Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatalf("got an answer (%d) instead of a reset", res.StatusCode)
	}
	if n := len(s.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want the one created before the response was lost", n)
	}
	r := sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, resourceID), tok, createBody("v1.0", defID, instID))
	if r.status != http.StatusConflict {
		t.Errorf("retry: %d, want 409", r.status)
	}
	// The dropped request is journaled when its handler ends, which can
	// be after the retry's.
	dropped := func() bool {
		for _, j := range s.Journal() {
			if j.Op == "create" && j.Fault == "drop" && j.Status == 0 {
				return true
			}
		}
		return false
	}
	waitFor(t, dropped)
}

func TestInjectPanicsOnAnUnknownOp(t *testing.T) {
	s := startT(t, Options{})
	defer func() {
		if recover() == nil {
			t.Error("no panic for Op \"uploadFile\"")
		}
	}()
	s.Inject(Fault{Op: "uploadFile", Status: 500})
}
