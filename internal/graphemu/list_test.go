package graphemu

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestListFiltersByReferenceIDAndStatus(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	a := create(t, s, tok, "v1.0", instID)
	b := create(t, s, tok, "v1.0", instID2)
	if r := sendJSON(t, s, http.MethodPatch, collection(s, "v1.0", catalogID, resourceID)+"/"+b, tok, `{"isUploadDone":true}`); r.status != 200 {
		t.Fatalf("patch: %d", r.status)
	}
	// A session of another resource never shows in this resource's list.
	sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, newGUID()), tok, createBody("v1.0", defID, instID))

	for _, tc := range []struct {
		name, filter string
		profile      string
		want         []string
	}{
		{"no filter lists the resource's sessions", "", "v1.0", []string{a, b}},
		{"by referenceId", "referenceId eq '" + instID + "'", "v1.0", []string{a}},
		{"by referenceId in upper case", "referenceId eq '" + strings.ToUpper(instID2) + "'", "beta", []string{b}},
		{"by status", "status eq 'active'", "v1.0", []string{a}},
		{"by complete status", "status eq 'complete'", "beta", []string{b}},
		{"by both", "referenceId eq '" + instID + "' and status eq 'active'", "v1.0", []string{a}},
		{"by both, nothing matches", "referenceId eq '" + instID2 + "' and status eq 'active'", "v1.0", nil},
		{"keywords are case-insensitive", "referenceId EQ '" + instID + "' AND status eq 'active'", "v1.0", []string{a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := collection(s, tc.profile, catalogID, resourceID)
			if tc.filter != "" {
				u += "?$filter=" + url.QueryEscape(tc.filter) + "&$expand=files"
			}
			r := send(t, s, http.MethodGet, u, tok, "", nil)
			if r.status != 200 {
				t.Fatalf("list: %d %s", r.status, r.body)
			}
			got := ids(t, r)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func ids(t *testing.T, r resp) []string {
	t.Helper()
	var out []string
	for _, v := range r.json(t)["value"].([]any) {
		out = append(out, v.(map[string]any)["id"].(string))
	}
	return out
}

func TestListRefusesUnsupportedQueries(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	base := collection(s, "v1.0", catalogID, resourceID)
	for _, tc := range []struct{ name, query, msg string }{
		{"other operators", "$filter=" + url.QueryEscape("referenceId ne 'x'"), "eq"},
		{"or", "$filter=" + url.QueryEscape("status eq 'active' or status eq 'complete'"), "and"},
		{"unknown property", "$filter=" + url.QueryEscape("source eq 'x'"), "source"},
		{"property name in the wrong case", "$filter=" + url.QueryEscape("referenceid eq 'x'"), "referenceid"},
		{"unknown status", "$filter=" + url.QueryEscape("status eq 'Active'"), "enum"},
		{"unquoted value", "$filter=" + url.QueryEscape("referenceId eq x"), "quoted"},
		{"unterminated value", "$filter=" + url.QueryEscape("referenceId eq 'x"), "unterminated"},
		{"zero $top", "$top=0", "$top"},
		{"non-numeric $top", "$top=ten", "$top"},
		{"unknown system option", "$search=x", "$search"},
		{"expanding something else", "$expand=owners", "owners"},
		{"bad skip token", "$skiptoken=zzz", "skiptoken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, s, http.MethodGet, base+"?"+tc.query, tok, "", nil)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if code, msg := r.graphErr(t); code != "BadRequest" || !strings.Contains(msg, tc.msg) {
				t.Errorf("%s %q does not mention %q", code, msg, tc.msg)
			}
		})
	}
}

func TestListPagesWithAbsoluteNextLinks(t *testing.T) {
	s := startT(t, Options{MaxPageSize: 4})
	tok := s.IssueToken()
	var want []string
	for range 7 {
		want = append(want, create(t, s, tok, "beta", newGUID()))
	}
	for _, tc := range []struct {
		name, query string
		pages       int
	}{
		{"$top sets the page size", "?$top=2&$filter=" + url.QueryEscape("status eq 'active'"), 4},
		{"the server caps pages without $top", "", 2},
		{"$top above the cap is capped", "?$top=50", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			next := collection(s, "beta", catalogID, resourceID) + tc.query
			pages := 0
			for next != "" {
				pages++
				if !strings.HasPrefix(next, s.URL()+"/beta/") {
					t.Fatalf("nextLink %q is not absolute", next)
				}
				r := send(t, s, http.MethodGet, next, tok, "", nil)
				if r.status != 200 {
					t.Fatalf("page %d: %d %s", pages, r.status, r.body)
				}
				got = append(got, ids(t, r)...)
				next, _ = r.json(t)["@odata.nextLink"].(string)
			}
			if pages != tc.pages || strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%d pages, sessions %v; want %d pages, %v", pages, got, tc.pages, want)
			}
		})
	}
	r := send(t, s, http.MethodGet, collection(s, "beta", catalogID, resourceID)+"?$count=true&$orderby=createdDateTime%20desc&$top=1", tok, "", nil)
	m := r.json(t)
	if m["@odata.count"] != 7.0 || ids(t, r)[0] != want[6] {
		t.Errorf("$count/$orderby desc: count %v first %v", m["@odata.count"], ids(t, r))
	}
}
