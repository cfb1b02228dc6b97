package graphemu

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	catalogID  = "6a1f8c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	resourceID = "7b2a9d3f-4c5e-4f60-9bac-1d2e3f4a5b6c"
	defID      = "8c3bae40-5d6f-4071-acbd-2e3f4a5b6c7d"
	instID     = "9d4cbf51-6e70-4182-bdce-3f4a5b6c7d8e"
	instID2    = "ae5dc062-7f81-4293-cedf-4a5b6c7d8e9f"
)

// startT starts an emulator closed at the end of the test.
func startT(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// fakeClock is a settable clock for Options.Now.
func fakeClock() func() time.Time {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	return func() time.Time { return t0 }
}

// collection returns the session collection URL of a profile.
func collection(s *Server, profile, cat, res string) string {
	switch profile {
	case "v1.0":
		return s.URL() + "/v1.0/identityGovernance/entitlementManagement/catalogs/" + cat + "/resources/" + res + "/uploadSessions"
	case "beta":
		return s.URL() + "/beta/identityGovernance/catalogs/" + cat + "/accessPackageResources/" + res + "/uploadSessions"
	case "beta-2025":
		return s.URL() + "/beta/identityGovernance/entitlementManagement/accessPackageCatalogs/" + cat + "/accessPackageResources/" + res + "/uploadSessions"
	}
	panic("unknown profile " + profile)
}

// createBody is the documented create body of a profile.
func createBody(profile, def, inst string) string {
	if profile == "beta-2025" {
		return fmt.Sprintf(`{"source":"Door badges","type":"#microsoft.graph.accessReviewDataUploadTriggerCallbackData","data":{"@odata.type":"#microsoft.graph.accessReviewResourceDataUploadSessionContextData","accessReviewId":%q,"accessReviewInstanceId":%q}}`, def, inst)
	}
	return fmt.Sprintf(`{"@odata.type":"#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession","data":{"@odata.type":"#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData","reviewDefinitionId":%q,"reviewInstanceId":%q}}`, def, inst)
}

// resp is a finished HTTP exchange.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
	return m
}

// graphErr returns the code and message of a Graph error answer, failing
// the test when the body is not Graph's error envelope.
func (r resp) graphErr(t *testing.T) (code, msg string) {
	t.Helper()
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID       string `json:"request-id"`
				Date            string `json:"date"`
				ClientRequestID string `json:"client-request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not a Graph error (%v): %s", err, r.body)
	}
	ie := e.Error.InnerError
	if ie.RequestID == "" || ie.Date == "" || ie.ClientRequestID == "" {
		t.Fatalf("Graph error without innerError ids: %s", r.body)
	}
	if ie.RequestID != r.header.Get("request-id") {
		t.Fatalf("innerError request-id %q differs from the header %q", ie.RequestID, r.header.Get("request-id"))
	}
	return e.Error.Code, e.Error.Message
}

// send makes one request with the emulator's client.
func send(t *testing.T, s *Server, method, u, token, contentType string, body io.Reader) resp {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	if res.Header.Get("request-id") == "" {
		t.Fatalf("%s %s: no request-id header", method, u)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func sendJSON(t *testing.T, s *Server, method, u, token, body string) resp {
	t.Helper()
	return send(t, s, method, u, token, "application/json", strings.NewReader(body))
}

// create creates a session and returns its id.
func create(t *testing.T, s *Server, token, profile, inst string) string {
	t.Helper()
	r := sendJSON(t, s, http.MethodPost, collection(s, profile, catalogID, resourceID), token, createBody(profile, defID, inst))
	if r.status != http.StatusCreated {
		t.Fatalf("create (%s): %d %s", profile, r.status, r.body)
	}
	return r.json(t)["id"].(string)
}

// multipartBody frames content as uploadFile expects.
func multipartBody(boundary, name, filename, content string) string {
	return "--" + boundary + "\r\n" +
		`Content-Disposition: form-data; name="` + name + `"; filename="` + filename + "\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n" +
		content + "\r\n--" + boundary + "--\r\n"
}

func upload(t *testing.T, s *Server, token, profile, id, filename, content string) resp {
	t.Helper()
	return send(t, s, http.MethodPost, collection(s, profile, catalogID, resourceID)+"/"+id+"/uploadFile", token,
		"multipart/form-data; boundary=XyZ", strings.NewReader(multipartBody("XyZ", "file", filename, content)))
}

// tokenForm posts a token request and returns the answer.
func tokenForm(t *testing.T, s *Server, tenant string, form url.Values) resp {
	t.Helper()
	return send(t, s, http.MethodPost, s.URL()+"/"+tenant+"/oauth2/v2.0/token", "", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}
