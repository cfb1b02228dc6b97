package graphemu

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
)

// Every profile supports the documented lifecycle: create, upload files,
// read the session back, close it; the emulator records what arrived.
func TestSessionLifecycleInEveryProfile(t *testing.T) {
	for _, profile := range []string{"v1.0", "beta", "beta-2025"} {
		t.Run(profile, func(t *testing.T) {
			s := startT(t, Options{})
			tok := s.IssueToken()
			id := create(t, s, tok, profile, instID)

			content := "PrincipalId,PermissionId\n1,2\n"
			r := upload(t, s, tok, profile, id, "badge-access.csv", content)
			if r.status != http.StatusOK {
				t.Fatalf("upload: %d %s", r.status, r.body)
			}
			stats := r.json(t)["stats"].(map[string]any)
			if stats["filesUploaded"] != 1.0 || stats["totalBytesUploaded"] != float64(len(content)) {
				t.Errorf("stats after one upload = %v", stats)
			}
			if r := upload(t, s, tok, profile, id, "more.csv", "x\n"); r.status != http.StatusOK {
				t.Fatalf("second upload: %d %s", r.status, r.body)
			}

			get := send(t, s, http.MethodGet, collection(s, profile, catalogID, resourceID)+"/"+id+"?$expand=files", tok, "", nil)
			if get.status != http.StatusOK {
				t.Fatalf("get: %d %s", get.status, get.body)
			}
			if files := get.json(t)["files"].([]any); len(files) != 2 {
				t.Errorf("get: %d files, want 2", len(files))
			}

			done := sendJSON(t, s, http.MethodPatch, collection(s, profile, catalogID, resourceID)+"/"+id, tok, `{"isUploadDone": true}`)
			if done.status != http.StatusOK {
				t.Fatalf("patch: %d %s", done.status, done.body)
			}
			m := done.json(t)
			if !strings.EqualFold(m["status"].(string), "complete") || m["isUploadDone"] != true {
				t.Errorf("after patch: status %v isUploadDone %v", m["status"], m["isUploadDone"])
			}

			v, ok := s.Session(id)
			if !ok || v.Status != "complete" || !v.IsUploadDone || len(v.Files) != 2 {
				t.Fatalf("Session(%s) = %+v, %v", id, v, ok)
			}
			sum := sha256.Sum256([]byte(content))
			if f := v.Files[0]; f.Name != "badge-access.csv" || f.Size != int64(len(content)) || f.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("recorded file = %+v", f)
			}
			if v.Profile != profile || v.ReviewInstanceID != instID || v.ReviewDefinitionID != defID {
				t.Errorf("recorded session = %+v", v)
			}
		})
	}
}
