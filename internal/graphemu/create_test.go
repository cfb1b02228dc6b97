package graphemu

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCreateBodyIsStrictPerProfile(t *testing.T) {
	cur := createBody("v1.0", defID, instID)
	old := createBody("beta-2025", defID, instID)
	tests := []struct {
		name     string
		profiles []string
		body     string
		ct       string
		status   int
		msg      string // part of the error message
	}{
		{"documented body is accepted", []string{"v1.0", "beta"}, cur, "", 201, ""},
		{"documented 2025 body is accepted", []string{"beta-2025"}, old, "", 201, ""},
		{"2025 body with the seed's bare type name is accepted", []string{"beta-2025"}, strings.Replace(old, "#microsoft.graph.accessReviewData", "accessReviewData", 1), "", 201, ""},
		{"2025 body with the session @odata.type is accepted", []string{"beta-2025"}, strings.Replace(old, `{"source"`, `{"@odata.type":"#microsoft.graph.customDataProvidedResourceUploadSession","source"`, 1), "", 201, ""},
		{"charset in the content type is accepted", []string{"v1.0"}, cur, "application/json; charset=utf-8", 201, ""},
		{"2025 body on a current profile is refused", []string{"v1.0", "beta"}, old, "", 400, "source"},
		{"current body on beta-2025 is refused", []string{"beta-2025"}, cur, "", 400, "could not be resolved"},
		{"missing @odata.type is refused", []string{"v1.0", "beta"}, strings.Replace(cur, `"@odata.type":"#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession",`, "", 1), "", 400, "@odata.type"},
		{"wrong session @odata.type is refused", []string{"v1.0", "beta"}, strings.Replace(cur, "AccessReviewUploadSession", "UploadSession", 1), "", 400, "could not be resolved"},
		{"wrong data @odata.type is refused", []string{"v1.0", "beta"}, strings.Replace(cur, "Payloads.accessReviewContextData", "Payloads.other", 1), "", 400, "could not be resolved"},
		{"missing data is refused", []string{"v1.0", "beta"}, `{"@odata.type":"#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession"}`, "", 400, "'data'"},
		{"data that is not an object is refused", []string{"v1.0"}, `{"@odata.type":"#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession","data":"x"}`, "", 400, "'data'"},
		{"missing reviewInstanceId is refused", []string{"v1.0", "beta"}, strings.Replace(cur, `,"reviewInstanceId":"`+instID+`"`, "", 1), "", 400, "reviewInstanceId"},
		{"missing reviewDefinitionId is refused", []string{"v1.0"}, strings.Replace(cur, `"reviewDefinitionId":"`+defID+`",`, "", 1), "", 400, "reviewDefinitionId"},
		{"non-GUID reviewInstanceId is refused", []string{"v1.0"}, strings.Replace(cur, instID, "instance-1", 1), "", 400, "GUID"},
		{"numeric id is refused", []string{"v1.0"}, strings.Replace(cur, `"`+instID+`"`, "42", 1), "", 400, "string"},
		{"unknown top-level property is refused", []string{"v1.0", "beta"}, strings.Replace(cur, `{"@odata.type"`, `{"status":"active","@odata.type"`, 1), "", 400, "'status' does not exist"},
		{"unknown data property is refused", []string{"v1.0"}, strings.Replace(cur, `"reviewDefinitionId"`, `"extra":1,"reviewDefinitionId"`, 1), "", 400, "'extra' does not exist"},
		{"missing source is refused", []string{"beta-2025"}, strings.Replace(old, `"source":"Door badges",`, "", 1), "", 400, "'source'"},
		{"empty source is refused", []string{"beta-2025"}, strings.Replace(old, `"Door badges"`, `""`, 1), "", 400, "'source'"},
		{"missing type is refused", []string{"beta-2025"}, strings.Replace(old, `"type":"#microsoft.graph.accessReviewDataUploadTriggerCallbackData",`, "", 1), "", 400, "'type'"},
		{"wrong type is refused", []string{"beta-2025"}, strings.Replace(old, "TriggerCallbackData", "Other", 1), "", 400, "'type'"},
		{"missing accessReviewInstanceId is refused", []string{"beta-2025"}, strings.Replace(old, `,"accessReviewInstanceId":"`+instID+`"`, "", 1), "", 400, "accessReviewInstanceId"},
		{"2025 data with current names is refused", []string{"beta-2025"}, strings.Replace(old, "accessReviewInstanceId", "reviewInstanceId", 1), "", 400, "reviewInstanceId"},
		{"invalid JSON is refused", []string{"v1.0", "beta-2025"}, `{"@odata.type":`, "", 400, "Invalid request body"},
		{"trailing data is refused", []string{"v1.0"}, cur + `{}`, "", 400, "after the JSON object"},
		{"a JSON array is refused", []string{"v1.0"}, `[]`, "", 400, "Invalid request body"},
		{"a non-JSON content type is refused", []string{"v1.0", "beta-2025"}, cur, "text/plain", 415, "application/json"},
	}
	for _, tc := range tests {
		for _, profile := range tc.profiles {
			t.Run(tc.name+"/"+profile, func(t *testing.T) {
				s := startT(t, Options{})
				ct := tc.ct
				if ct == "" {
					ct = "application/json"
				}
				r := send(t, s, http.MethodPost, collection(s, profile, catalogID, resourceID), s.IssueToken(), ct, strings.NewReader(tc.body))
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if tc.status >= 400 {
					if _, msg := r.graphErr(t); !strings.Contains(msg, tc.msg) {
						t.Errorf("message %q does not mention %q", msg, tc.msg)
					}
					if n := len(s.Sessions()); n != 0 {
						t.Errorf("a refused create left %d sessions", n)
					}
				}
			})
		}
	}
}

func TestCreateAnswersTheSessionInTheProfileShape(t *testing.T) {
	for _, tc := range []struct {
		profile, odataType, status string
		expiration, reference      bool
		dataKeys                   []string
	}{
		{"v1.0", currentSessionType, "active", false, true, []string{"reviewDefinitionId", "reviewInstanceId"}},
		{"beta", currentSessionType, "active", false, true, []string{"reviewDefinitionId", "reviewInstanceId"}},
		{"beta-2025", legacySessionType, "Active", true, false, []string{"accessReviewId", "accessReviewInstanceId"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			s := startT(t, Options{Now: fakeClock()})
			r := sendJSON(t, s, http.MethodPost, collection(s, tc.profile, catalogID, resourceID), s.IssueToken(), createBody(tc.profile, defID, instID))
			if r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json;") {
				t.Errorf("Content-Type %q", ct)
			}
			m := r.json(t)
			id, _ := m["id"].(string)
			if !isGUID(id) {
				t.Errorf("id %q is not a GUID", id)
			}
			if m["@odata.type"] != tc.odataType || m["status"] != tc.status || m["isUploadDone"] != false {
				t.Errorf("@odata.type %v status %v isUploadDone %v", m["@odata.type"], m["status"], m["isUploadDone"])
			}
			if m["createdDateTime"] != "2026-11-28T10:00:00.0000000Z" {
				t.Errorf("createdDateTime = %v", m["createdDateTime"])
			}
			if _, ok := m["expirationDateTime"]; ok != tc.expiration {
				t.Errorf("expirationDateTime present = %v, want %v", ok, tc.expiration)
			}
			if tc.expiration && m["expirationDateTime"] != "2026-11-29T10:00:00.0000000Z" {
				t.Errorf("expirationDateTime = %v, want creation + 24h", m["expirationDateTime"])
			}
			if got, ok := m["referenceId"]; ok != tc.reference || (ok && got != instID) {
				t.Errorf("referenceId = %v (present %v)", got, ok)
			}
			if tc.profile == "beta-2025" && (m["source"] != "Door badges" || m["type"] != legacyTriggerType) {
				t.Errorf("source %v type %v", m["source"], m["type"])
			}
			data := m["data"].(map[string]any)
			if data[tc.dataKeys[0]] != defID || data[tc.dataKeys[1]] != instID || data["@odata.type"] == nil {
				t.Errorf("data = %v", data)
			}
			stats := m["stats"].(map[string]any)
			if stats["filesUploaded"] != 0.0 || stats["totalBytesUploaded"] != 0.0 {
				t.Errorf("stats = %v", stats)
			}
			if files, ok := m["files"].([]any); !ok || len(files) != 0 {
				t.Errorf("files = %v, want []", m["files"])
			}
			if !strings.Contains(r.header.Get("Location"), id) {
				t.Errorf("Location %q does not name the session", r.header.Get("Location"))
			}
		})
	}
}

func isGUID(s string) bool { return len(s) == 36 && strings.Count(s, "-") == 4 }

func TestOnlyOneSessionPerResourceAndReviewInstance(t *testing.T) {
	s := startT(t, Options{Now: fakeClock(), UploadWindow: time.Hour})
	v1 := collection(s, "v1.0", catalogID, resourceID)
	first := create(t, s, s.IssueToken(), "v1.0", instID)
	conflict := func(t *testing.T, profile, inst string) {
		t.Helper()
		r := sendJSON(t, s, http.MethodPost, collection(s, profile, catalogID, resourceID), s.IssueToken(), createBody(profile, defID, inst))
		if r.status != http.StatusConflict {
			t.Fatalf("second create: %d, want 409: %s", r.status, r.body)
		}
		if code, _ := r.graphErr(t); code != "Conflict" {
			t.Errorf("code %s, want Conflict", code)
		}
	}
	t.Run("second create for the pair is a conflict", func(t *testing.T) { conflict(t, "v1.0", instID) })
	t.Run("instance ids compare without case", func(t *testing.T) { conflict(t, "v1.0", strings.ToUpper(instID)) })
	t.Run("the pair is shared by every profile", func(t *testing.T) { conflict(t, "beta-2025", instID) })
	t.Run("another instance of the same resource gets its own session", func(t *testing.T) { create(t, s, s.IssueToken(), "v1.0", instID2) })
	t.Run("another resource gets its own session", func(t *testing.T) {
		r := sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, newGUID()), s.IssueToken(), createBody("v1.0", defID, instID))
		if r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("a completed session still blocks the pair", func(t *testing.T) {
		if r := sendJSON(t, s, http.MethodPatch, v1+"/"+first, s.IssueToken(), `{"isUploadDone":true}`); r.status != 200 {
			t.Fatalf("patch: %d %s", r.status, r.body)
		}
		conflict(t, "v1.0", instID)
	})
	t.Run("an expired session still blocks the pair", func(t *testing.T) {
		s.Advance(2 * time.Hour) // instID2's session expires
		conflict(t, "v1.0", instID2)
	})
	t.Run("a deleted session frees the pair", func(t *testing.T) {
		inst := newGUID()
		id := create(t, s, s.IssueToken(), "beta", inst)
		if r := send(t, s, http.MethodDelete, collection(s, "beta", catalogID, resourceID)+"/"+id, s.IssueToken(), "", nil); r.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		create(t, s, s.IssueToken(), "beta", inst)
	})
}

// Concurrent creates for one pair: exactly one wins, the others conflict.
func TestConcurrentCreatesMakeOneSession(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	const n = 12
	statuses := make(chan int, n)
	for range n {
		go func() {
			r := sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, resourceID), tok, createBody("v1.0", defID, instID))
			statuses <- r.status
		}()
	}
	count := map[int]int{}
	for range n {
		count[<-statuses]++
	}
	if count[201] != 1 || count[409] != n-1 || len(s.Sessions()) != 1 {
		t.Errorf("statuses %v, %d sessions; want one 201 and %d 409", count, len(s.Sessions()), n-1)
	}
}
