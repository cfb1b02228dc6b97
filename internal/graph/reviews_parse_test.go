package graph

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDefinitionPageOfTheDocs(t *testing.T) {
	p, err := parseDefinitionPage(readFixture(t, "beta-list-review-definitions.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 || p.NextLink != "" {
		t.Fatalf("page %+v", p)
	}
	d := p.Items[0]
	if d.ID != "29f2d16e-9ca6-4052-bbfe-802c48944448" || d.DisplayName != "Catalog access review" || d.Status != InstanceInProgress {
		t.Errorf("definition %+v", d)
	}
	if got := d.CatalogIDs(); !slices.Equal(got, []string{"c6010d0c-ff41-4929-9776-fa03a03dd5ac"}) {
		t.Errorf("catalogs %v", got)
	}
}

func TestScopeCatalogMatching(t *testing.T) {
	tests := []struct {
		name, scope string
		want        []string
	}{
		{"principalResourceMembershipsScope", `{"@odata.type":"#microsoft.graph.principalResourceMembershipsScope","resourceScopes":[{"resourceId":"C6010D0C-FF41-4929-9776-FA03A03DD5AC","scopeType":"catalog"}]}`,
			[]string{"c6010d0c-ff41-4929-9776-fa03a03dd5ac"}},
		{"accessReviewCatalogScope at the top", `{"@odata.type":"#microsoft.graph.accessReviewCatalogScope","resourceId":"c6010d0c-ff41-4929-9776-fa03a03dd5ac","scopeType":"Catalog"}`,
			[]string{"c6010d0c-ff41-4929-9776-fa03a03dd5ac"}},
		{"any @odata.type, two catalogs and a repeat", `{"@odata.type":"#microsoft.graph.somethingNew","resourceScopes":[{"@odata.type":"#x","resourceId":"a","scopeType":"CATALOG"},{"resourceId":"b","scopeType":"catalog"},{"resourceId":"A","scopeType":"catalog"}]}`,
			[]string{"a", "b"}},
		{"other scope types are not catalogs", `{"resourceScopes":[{"resourceId":"a","scopeType":"accessPackage"},{"resourceId":"","scopeType":"catalog"}]}`, nil},
		{"a query scope", `{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/groups","queryType":"MicrosoftGraph"}`, nil},
		{"no scope", `null`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDefinition([]byte(`{"id":"d","scope":` + tt.scope + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := d.CatalogIDs(); !slices.Equal(got, tt.want) {
				t.Errorf("catalogs %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseInstanceTolerates(t *testing.T) {
	i, err := ParseInstance([]byte(`{"id":"i","status":"initializing","startDateTime":"2026-11-28T10:00:00.1234567Z","endDateTime":null,"definition":{"id":"d"},"extra":[1,2],}`))
	if err != nil {
		t.Fatal(err)
	}
	if i.Status != InstanceInitializing || !i.IsInitializing() || !i.StartDateTime.Equal(time.Date(2026, 11, 28, 10, 0, 0, 123456700, time.UTC)) ||
		!i.EndDateTime.IsZero() || i.DefinitionID != "d" {
		t.Errorf("instance %+v", i)
	}
	i, err = ParseInstance([]byte(`{"id":"i","status":"SomethingNew"}`))
	if err != nil || i.Status != "SomethingNew" || i.IsInitializing() {
		t.Errorf("unknown status: %+v %v", i, err)
	}
}

func TestReviewParsersRefuse(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"status":"Initializing"}`, `{"id":1}`, `{"id":"i","startDateTime":"yesterday"}`, `{"id":"i","scope":{"resourceScopes":{}}}`} {
		if _, err := ParseInstance([]byte(body)); err == nil {
			t.Errorf("ParseInstance(%s) accepted", body)
		}
	}
	if _, err := ParseDefinition([]byte(`{"displayName":"x"}`)); err == nil {
		t.Error("definition without id accepted")
	}
	if _, err := parseResourcePage([]byte(`{"value":[{"id":"a"},{"displayName":"b"}]}`)); err == nil || !strings.Contains(err.Error(), "value[1]") {
		t.Errorf("resource page: %v, want an error naming value[1]", err)
	}
	if _, err := parseInstancePage([]byte(`{"value":[null]}`)); err == nil {
		t.Error("null item accepted")
	}
}

func TestEqualStatus(t *testing.T) {
	if !EqualStatus(" INITIALIZING", "Initializing") || EqualStatus("InProgress", "Initializing") {
		t.Error("EqualStatus")
	}
}

func FuzzParseInstance(f *testing.F) {
	f.Add([]byte(`{"id":"i","status":"Initializing","startDateTime":"2026-11-28T10:00:00Z","scope":{"resourceScopes":[{"resourceId":"c","scopeType":"catalog"}]}}`))
	f.Add([]byte(`{"id":"i","status":"iNiTiAlIzInG",}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		i, err := ParseInstance(data)
		if err != nil {
			return
		}
		if strings.TrimSpace(i.ID) == "" {
			t.Fatalf("instance without id from %q", data)
		}
		if i.IsInitializing() != EqualStatus(i.Status, InstanceInitializing) || (i.IsInitializing() && i.Status != InstanceInitializing) {
			t.Fatalf("status %q not normalised", i.Status)
		}
		for _, c := range i.Scope.CatalogIDs() {
			if c == "" || c != strings.ToLower(c) {
				t.Fatalf("catalog id %q", c)
			}
		}
		page := append(append([]byte(`{"value":[`), data...), ']', '}')
		if p, err := parseInstancePage(page); err == nil && (len(p.Items) != 1 || p.Items[0].Status != i.Status) {
			t.Fatalf("list and item parsers disagree: %+v vs %+v", p.Items, i)
		}
	})
}

func FuzzParseDefinition(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "beta-list-review-definitions.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"id":"d","scope":{"@odata.type":"#microsoft.graph.accessReviewCatalogScope","resourceId":"c","scopeType":"catalog"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := parseDefinitionPage(data); err == nil {
			for _, d := range p.Items {
				if strings.TrimSpace(d.ID) == "" {
					t.Fatalf("definition without id from %q", data)
				}
			}
		}
		d, err := ParseDefinition(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range d.CatalogIDs() {
			if c == "" || seen[c] || c != strings.ToLower(c) {
				t.Fatalf("catalog ids %v", d.CatalogIDs())
			}
			seen[c] = true
		}
	})
}

func FuzzParseResourcePage(f *testing.F) {
	f.Add([]byte(`{"value":[{"id":"r","displayName":"Door badges","originId":"o","originSystem":"CustomDataProvidedResource"}],"@odata.nextLink":"https://graph.microsoft.com/beta/x?$skiptoken=1"}`))
	f.Add([]byte(`{"value":[{"id":"r","originSystem":null},]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseResourcePage(data)
		if err != nil {
			return
		}
		for _, r := range p.Items {
			if strings.TrimSpace(r.ID) == "" {
				t.Fatalf("resource without id from %q", data)
			}
			if r.IsCustomData() != strings.EqualFold(r.OriginSystem, OriginCustomData) {
				t.Fatalf("IsCustomData(%q)", r.OriginSystem)
			}
		}
	})
}
