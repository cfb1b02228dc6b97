package graph

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSessionReadsThePublishedExamples(t *testing.T) {
	tests := []struct {
		file string
		want Session
	}{
		{"v1.0-create.json", Session{
			ID: "0b64df22-1a83-472c-9556-6c3dc41742b9", Status: StatusActive,
			CreatedDateTime: mustTime(t, "2026-04-01T18:24:07.148406Z"),
			ReferenceID:     "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			ODataType:       "#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession",
			Data: ContextData{
				ODataType:          "#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData",
				ReviewDefinitionID: "f5744a40-bca0-4506-a286-a8afac513d1c",
				ReviewInstanceID:   "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			},
			Files: []File{},
		}},
		{"v1.0-get.json", Session{
			ID: "0b64df22-1a83-472c-9556-6c3dc41742b9", Status: StatusActive,
			CreatedDateTime: mustTime(t, "2026-04-01T18:24:07.1484627Z"),
			ReferenceID:     "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			ODataType:       "#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession",
			Data: ContextData{
				ODataType:          "#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData",
				ReviewDefinitionID: "f5744a40-bca0-4506-a286-a8afac513d1c",
				ReviewInstanceID:   "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			},
		}},
		{"v1.0-uploadfile.json", Session{
			ID: "0b64df22-1a83-472c-9556-6c3dc41742b9", Status: StatusActive,
			CreatedDateTime: mustTime(t, "2026-04-01T18:24:07.1484627Z"),
			ReferenceID:     "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			ODataType:       "#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession",
			Data: ContextData{
				ODataType:          "#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData",
				ReviewDefinitionID: "f5744a40-bca0-4506-a286-a8afac513d1c",
				ReviewInstanceID:   "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			},
			Stats: Stats{FilesUploaded: 1, TotalBytesUploaded: 198374},
			Files: []File{{ID: "22125c79-b0fe-4553-8229-6556d85b2561", Name: "valid.csv", Size: 198374,
				UploadedDateTime: mustTime(t, "2026-04-01T18:42:07.7890258Z")}},
		}},
		{"beta-create.json", Session{
			ID: "0b64df22-1a83-472c-9556-6c3dc41742b9", Status: StatusActive,
			CreatedDateTime: mustTime(t, "2026-04-01T18:24:07.148406Z"),
			ReferenceID:     "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			Source:          "BuildingAccessDataTIP",
			Type:            "#microsoft.graph.accessReviewDataUploadTriggerCallbackData",
			Data: ContextData{
				ODataType:          "#microsoft.graph.accessReviewResourceDataUploadSessionContextData",
				ReviewDefinitionID: "f5744a40-bca0-4506-a286-a8afac513d1c",
				ReviewInstanceID:   "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
			},
			Files: []File{},
		}},
		{"beta-2025-create.json", Session{
			ID: "23f27c15-72f9-45fe-9e9c-e3d8f75bdc44", Status: StatusActive,
			CreatedDateTime:    mustTime(t, "2024-03-06T01:35:12.123Z"),
			ExpirationDateTime: mustTime(t, "2024-03-07T01:35:12.123Z"),
			Files:              []File{},
		}},
		{"beta-2025-update.json", Session{
			ID: "23f27c15-72f9-45fe-9e9c-e3d8f75bdc44", Status: StatusComplete, IsUploadDone: true,
			CreatedDateTime:    mustTime(t, "2024-03-06T01:35:12.123Z"),
			ExpirationDateTime: mustTime(t, "2024-03-07T01:35:12.123Z"),
			Stats:              Stats{FilesUploaded: 1, TotalBytesUploaded: 2000000},
			Files: []File{{Name: "building-a-access.csv", Size: 2000000,
				UploadedDateTime: mustTime(t, "2024-03-06T01:35:12.123Z")}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseSession(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.ODataContext = got.ODataContext // long; checked below
			if !strings.HasPrefix(got.ODataContext, "https://graph.microsoft.com/") && got.ODataContext != "" {
				t.Errorf("ODataContext = %q", got.ODataContext)
			}
			assertSession(t, got, &tc.want)
		})
	}
}

func assertSession(t *testing.T, got, want *Session) {
	t.Helper()
	if got.ID != want.ID || got.Status != want.Status || got.IsUploadDone != want.IsUploadDone ||
		!got.CreatedDateTime.Equal(want.CreatedDateTime) || !got.ExpirationDateTime.Equal(want.ExpirationDateTime) ||
		got.ReferenceID != want.ReferenceID || got.Source != want.Source || got.Type != want.Type ||
		got.ODataType != want.ODataType || got.ODataContext != want.ODataContext ||
		got.Data != want.Data || got.Stats != want.Stats {
		t.Errorf("session\n got %+v\nwant %+v", *got, *want)
	}
	if (got.Files == nil) != (want.Files == nil) || len(got.Files) != len(want.Files) {
		t.Fatalf("files: got %+v, want %+v", got.Files, want.Files)
	}
	for i := range want.Files {
		g, w := got.Files[i], want.Files[i]
		if g.ID != w.ID || g.Name != w.Name || g.Size != w.Size || !g.UploadedDateTime.Equal(w.UploadedDateTime) {
			t.Errorf("file %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestParseListPageReadsThePublishedExamples(t *testing.T) {
	tests := []struct {
		file          string
		ids           []string
		instance      string // of the first
		definition    string
		files         int
		contextODType string
	}{
		{"v1.0-list.json", []string{"2fa3bc17-de50-4f48-91f0-dd4aede5c424"}, "6ddffb12-922b-4825-93c3-9457dc2c1f81",
			"a89003b1-d457-4b8a-b060-42a3b6ad6c44", 0, "#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData"},
		{"beta-list.json", []string{"2fa3bc17-de50-4f48-91f0-dd4aede5c424", "3717bbf7-6d72-4a6d-b83e-11e6038de8a1"},
			"6ddffb12-922b-4825-93c3-9457dc2c1f81", "a89003b1-d457-4b8a-b060-42a3b6ad6c44", 1,
			"#microsoft.graph.accessReviewResourceDataUploadSessionContextData"},
	}
	for _, tc := range tests {
		p, err := parseListPage(readFixture(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if len(p.Sessions) != len(tc.ids) || p.NextLink != "" {
			t.Fatalf("%s: %d sessions, nextLink %q", tc.file, len(p.Sessions), p.NextLink)
		}
		for i, id := range tc.ids {
			if p.Sessions[i].ID != id || p.Sessions[i].Status != StatusComplete || !p.Sessions[i].IsUploadDone {
				t.Errorf("%s: session %d = %+v", tc.file, i, p.Sessions[i])
			}
		}
		s := p.Sessions[0]
		if s.Data.ReviewInstanceID != tc.instance || s.Data.ReviewDefinitionID != tc.definition ||
			s.Data.ODataType != tc.contextODType || s.InstanceID() != tc.instance || len(s.Files) != tc.files {
			t.Errorf("%s: first session %+v", tc.file, s)
		}
	}
}

func TestParseSessionIsTolerant(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(*Session) bool
	}{
		{"status in any case is lower-cased", `{"id":"a","status":" EXPIRED "}`,
			func(s *Session) bool { return s.Status == StatusExpired }},
		{"unknown status kept", `{"id":"a","status":"unknownFutureValue"}`,
			func(s *Session) bool { return s.Status == "unknownfuturevalue" }},
		{"unknown fields ignored", `{"id":"a","newThing":{"x":[1,2]},"status":"active","files@odata.count":3}`,
			func(s *Session) bool { return s.IsActive() }},
		{"absent fields are zero", `{"id":"a"}`,
			func(s *Session) bool {
				return s.Status == "" && s.CreatedDateTime.IsZero() && s.Files == nil && s.Stats == (Stats{}) && s.Data == (ContextData{})
			}},
		{"nulls are zero", `{"id":"a","status":null,"isUploadDone":null,"createdDateTime":null,"stats":null,"files":null,"data":null}`,
			func(s *Session) bool { return s.Status == "" && !s.IsUploadDone && s.Files == nil }},
		{"timestamp without zone is UTC", `{"id":"a","createdDateTime":"2026-04-01T18:24:07"}`,
			func(s *Session) bool { return s.CreatedDateTime.Equal(time.Date(2026, 4, 1, 18, 24, 7, 0, time.UTC)) }},
		{"timestamp with 7 fraction digits and no zone", `{"id":"a","createdDateTime":"2026-04-01T18:24:07.1484627"}`,
			func(s *Session) bool {
				return s.CreatedDateTime.Equal(time.Date(2026, 4, 1, 18, 24, 7, 148462700, time.UTC))
			}},
		{"timestamp with offset", `{"id":"a","createdDateTime":"2026-04-01T20:24:07+02:00"}`,
			func(s *Session) bool { return s.CreatedDateTime.Equal(time.Date(2026, 4, 1, 18, 24, 7, 0, time.UTC)) }},
		{"Int64 as string", `{"id":"a","stats":{"filesUploaded":"2","totalBytesUploaded":"9007199254740993"},"files":[{"name":"x.csv","size":"12"}]}`,
			func(s *Session) bool {
				return s.Stats.FilesUploaded == 2 && s.Stats.TotalBytesUploaded == 9007199254740993 && s.Files[0].Size == 12
			}},
		{"boolean as string", `{"id":"a","isUploadDone":"True"}`,
			func(s *Session) bool { return s.IsUploadDone }},
		{"2025 context data", `{"id":"a","data":{"accessReviewId":"d","accessReviewInstanceId":"i"}}`,
			func(s *Session) bool {
				return s.Data.ReviewDefinitionID == "d" && s.Data.ReviewInstanceID == "i" && s.InstanceID() == "i"
			}},
		{"referenceId preferred as instance", `{"id":"a","referenceId":"r","data":{"reviewInstanceId":"i"}}`,
			func(s *Session) bool { return s.InstanceID() == "r" }},
		{"trailing commas", "{\"id\":\"a\",\"files\":[{\"name\":\"x,]\",},],\n}",
			func(s *Session) bool { return len(s.Files) == 1 && s.Files[0].Name == "x,]" }},
		{"leading white space and BOM-free", "  \n{\"id\":\"a\"}\n",
			func(s *Session) bool { return s.ID == "a" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSession([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s) {
				t.Errorf("parsed %+v", *s)
			}
		})
	}
}

func TestParseSessionRejectsWhatCannotBeASession(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"empty", ``, "not a JSON object"},
		{"array", `[{"id":"a"}]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"no id", `{"status":"active"}`, "no id"},
		{"blank id", `{"id":"  "}`, "no id"},
		{"truncated", `{"id":"a","status":"act`, "unexpected end"},
		{"status not a string", `{"id":"a","status":3}`, "want a string"},
		{"bad boolean", `{"id":"a","isUploadDone":"yes"}`, "want a boolean"},
		{"bad timestamp", `{"id":"a","createdDateTime":"yesterday"}`, "RFC 3339"},
		{"fractional size", `{"id":"a","files":[{"size":1.5}]}`, "want an integer"},
		{"filesUploaded out of int32", `{"id":"a","stats":{"filesUploaded":4294967296}}`, "out of range"},
		{"error envelope", `{"error":{"code":"x","message":"y"}}`, "no id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSession([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseSession(%q) = %+v, %v; want an error containing %q", tc.body, s, err, tc.want)
			}
		})
	}
}

func TestParseListPageReadsNextLinkAndRejectsBadItems(t *testing.T) {
	p, err := parseListPage([]byte(`{"value":[{"id":"a","status":"Active"}],"@odata.nextLink":"https://h/next?$skiptoken=x"}`))
	if err != nil || len(p.Sessions) != 1 || p.Sessions[0].Status != StatusActive || p.NextLink != "https://h/next?$skiptoken=x" {
		t.Fatalf("page = %+v, %v", p, err)
	}
	p, err = parseListPage([]byte(`{}`))
	if err != nil || len(p.Sessions) != 0 {
		t.Fatalf("empty page = %+v, %v", p, err)
	}
	_, err = parseListPage([]byte(`{"value":[{"id":"a"},{"status":"active"}]}`))
	if err == nil || !strings.Contains(err.Error(), "value[1]") {
		t.Fatalf("bad item: %v, want an error naming value[1]", err)
	}
}

func FuzzParseSession(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"a","status":"ÀCTIVE","createdDateTime":"2026-04-01T18:24:07.1Z",}`))
	f.Add([]byte(`{"id":"\u0130","status":"\u0130\u212a","files":[{"size":"1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSession(data)
		if err != nil {
			return
		}
		if s.ID == "" {
			t.Fatalf("parsed a session without id from %q", data)
		}
		if s.Status != strings.ToLower(s.Status) {
			t.Fatalf("status %q is not lower case", s.Status)
		}
		if s.Stats.FilesUploaded < 0 {
			t.Fatalf("negative filesUploaded %d", s.Stats.FilesUploaded)
		}
		// The list parser must agree on a page holding the same object.
		page := append(append([]byte(`{"value":[`), data...), ']', '}')
		if p, err := parseListPage(page); err == nil && len(p.Sessions) == 1 && p.Sessions[0].Status != s.Status {
			t.Fatalf("list status %q, session status %q", p.Sessions[0].Status, s.Status)
		}
	})
}
