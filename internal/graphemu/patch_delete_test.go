package graphemu

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPatchOnlySetsIsUploadDoneToTrue(t *testing.T) {
	for _, tc := range []struct {
		name, body, ct string
		status         int
		msg            string
	}{
		{"isUploadDone true completes the session", `{"isUploadDone": true}`, "", 200, ""},
		{"isUploadDone false is refused", `{"isUploadDone": false}`, "", 400, "only be set to true"},
		{"a string true is refused", `{"isUploadDone": "true"}`, "", 400, "only be set to true"},
		{"another property is refused", `{"isUploadDone": true, "status": "complete"}`, "", 400, "'status'"},
		{"status alone is refused", `{"status": "complete"}`, "", 400, "'status'"},
		{"an empty object is refused", `{}`, "", 400, "isUploadDone"},
		{"invalid JSON is refused", `{"isUploadDone": tru`, "", 400, "Invalid request body"},
		{"null is refused", `null`, "", 400, "Invalid request body"},
		{"a non-JSON content type is refused", `{"isUploadDone": true}`, "text/plain", 415, "application/json"},
	} {
		for _, profile := range []string{"v1.0", "beta-2025"} {
			t.Run(tc.name+"/"+profile, func(t *testing.T) {
				s := startT(t, Options{})
				tok := s.IssueToken()
				id := create(t, s, tok, profile, instID)
				ct := tc.ct
				if ct == "" {
					ct = "application/json"
				}
				r := send(t, s, http.MethodPatch, collection(s, profile, catalogID, resourceID)+"/"+id, tok, ct, strings.NewReader(tc.body))
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				v, _ := s.Session(id)
				if tc.status != 200 {
					if _, msg := r.graphErr(t); !strings.Contains(msg, tc.msg) {
						t.Errorf("message %q does not mention %q", msg, tc.msg)
					}
					if v.Status != "active" || v.IsUploadDone {
						t.Errorf("a refused patch changed the session: %+v", v)
					}
					return
				}
				m := r.json(t)
				if !strings.EqualFold(m["status"].(string), "complete") || m["isUploadDone"] != true {
					t.Errorf("answer status %v isUploadDone %v", m["status"], m["isUploadDone"])
				}
				if v.Status != "complete" || !v.IsUploadDone {
					t.Errorf("session after patch: %+v", v)
				}
			})
		}
	}
}

func TestChangesNeedAnActiveSession(t *testing.T) {
	s := startT(t, Options{Now: fakeClock()})
	tok := func() string { return s.IssueToken() }
	for _, tc := range []struct {
		name    string
		profile string
		end     func(id string) // makes the session not active
		status  string
	}{
		{"complete", "v1.0", func(id string) {
			sendJSON(t, s, http.MethodPatch, collection(s, "v1.0", catalogID, resourceID)+"/"+id, tok(), `{"isUploadDone":true}`)
		}, "complete"},
		{"expired by ExpireSession", "beta", func(id string) { s.ExpireSession(id) }, "expired"},
		{"expired by the window", "beta-2025", func(string) { s.Advance(2 * time.Hour) }, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := create(t, s, tok(), tc.profile, newGUID())
			tc.end(id)
			item := collection(s, tc.profile, catalogID, resourceID) + "/" + id
			refused := []resp{
				sendJSON(t, s, http.MethodPatch, item, tok(), `{"isUploadDone":true}`),
				upload(t, s, tok(), tc.profile, id, "late.csv", "a\n"),
			}
			if tc.profile != "beta-2025" {
				refused = append(refused, send(t, s, http.MethodDelete, item, tok(), "", nil))
			}
			for i, r := range refused {
				if r.status != http.StatusBadRequest {
					t.Fatalf("request %d: status %d, want 400: %s", i, r.status, r.body)
				}
				code, msg := r.graphErr(t)
				if code != codeSessionNotActive || !strings.Contains(msg, "not active") || !strings.Contains(msg, tc.status) {
					t.Errorf("request %d: %s %q", i, code, msg)
				}
			}
			g := send(t, s, http.MethodGet, item, tok(), "", nil)
			if st, _ := g.json(t)["status"].(string); !strings.EqualFold(st, tc.status) {
				t.Errorf("GET status %q, want %s", st, tc.status)
			}
			if v, _ := s.Session(id); len(v.Files) != 0 {
				t.Errorf("a file was recorded in a %s session", tc.status)
			}
		})
	}
}

func TestDeleteRemovesAnActiveSession(t *testing.T) {
	for _, profile := range []string{"v1.0", "beta"} {
		t.Run(profile, func(t *testing.T) {
			s := startT(t, Options{})
			tok := s.IssueToken()
			id := create(t, s, tok, profile, instID)
			item := collection(s, profile, catalogID, resourceID) + "/" + id
			r := send(t, s, http.MethodDelete, item, tok, "", nil)
			if r.status != http.StatusNoContent || len(r.body) != 0 {
				t.Fatalf("delete: %d %s", r.status, r.body)
			}
			if r := send(t, s, http.MethodGet, item, tok, "", nil); r.status != http.StatusNotFound {
				t.Errorf("GET after delete: %d", r.status)
			}
			if r := send(t, s, http.MethodDelete, item, tok, "", nil); r.status != http.StatusNotFound {
				t.Errorf("second delete: %d", r.status)
			}
			if n := len(s.Sessions()); n != 0 {
				t.Errorf("%d sessions left", n)
			}
		})
	}
}
