package dropkey

import (
	"errors"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/review"
)

func TestParseStandingAccepts(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		prefix string
		want   Standing
	}{
		{"canonical", "standing/" + cat + "/" + res + "/access.csv", "standing/",
			Standing{CatalogID: cat, ResourceID: res, Folder: "standing/" + cat + "/" + res + "/", File: "access.csv"}},
		{"route takes catalog, resource and source from ROUTES", "standing/badge/access.csv", "standing/",
			Standing{CatalogID: cat, ResourceID: res, Source: "Badge system", Route: "badge", Folder: "standing/badge/", File: "access.csv"}},
		{"route ids are lower-cased", "standing/Door Lock/a b (1).CSV", "standing/",
			Standing{CatalogID: cat, ResourceID: res, Source: "Doors", Route: "Door Lock", Folder: "standing/Door Lock/", File: "a b (1).CSV"}},
		{"prefix without a slash", "data/standing/badge/x.csv", "data/standing",
			Standing{CatalogID: cat, ResourceID: res, Source: "Badge system", Route: "badge", Folder: "data/standing/badge/", File: "x.csv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStanding(tt.key, tt.prefix, testRoutes)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if got.Folder+got.File != tt.key {
				t.Errorf("folder %q + file %q is not the key", got.Folder, got.File)
			}
		})
	}
}

func TestParseStandingRejects(t *testing.T) {
	tests := []struct{ name, key, want string }{
		{"outside the prefix", "incoming/badge/a.csv", `outside the standing prefix "standing/"`},
		{"file directly under the prefix", "standing/a.csv", "1 segment(s) after"},
		{"route subfolder", "standing/badge/old/a.csv", `route "badge" takes only the file after it`},
		{"canonical subfolder", "standing/" + cat + "/" + res + "/old/a.csv", "4 segment(s) after"},
		{"catalog only", "standing/" + cat + "/a.csv", "the canonical form needs 3"},
		{"resource not a GUID", "standing/" + cat + "/badges/a.csv", `resourceId is not a GUID: "badges"`},
		{"unknown route", "standing/nope/a.csv", `route "nope" is not configured (configured routes: "Door Lock", "badge")`},
		{"first segment neither route nor GUID with 3 segments", "standing/nope/x/a.csv", `catalogId is not a GUID: "nope"`},
		{"upper-case GUIDs", "standing/" + upperDef + "/" + res + "/a.csv", "is not in lower case"},
		{"manifest", "standing/badge/manifest.json", "a manifest has no meaning in standing data"},
		{"not a CSV", "standing/badge/a.xlsx", "is neither a .csv file"},
		{"quote in the name", `standing/badge/a"b.csv`, "cannot be sent as a multipart filename"},
		{"dot-dot", "standing/../badge/a.csv", `segment ".." is not allowed`},
		{"empty segment", "standing//badge/a.csv", "empty segment"},
		{"folder only", "standing/badge/", "empty file name"},
		{"control character", "standing/badge/a\tb.csv", "control character"},
		{"too long", "standing/badge/" + strings.Repeat("a", MaxKeyBytes) + ".csv", "longer than S3's limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStanding(tt.key, "standing/", testRoutes)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			var ke *KeyError
			if !errors.As(err, &ke) || review.KindOf(err) != review.Invalid {
				t.Fatalf("error %T %v is not an invalid *KeyError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to say %q", err, tt.want)
			}
		})
	}
}

func TestParseStandingWithoutRoutes(t *testing.T) {
	_, err := ParseStanding("standing/badge/a.csv", "standing/", nil)
	if err == nil || !strings.Contains(err.Error(), "no ROUTES are configured") {
		t.Errorf("error = %v, want one saying no ROUTES are configured", err)
	}
}

func TestStandingFolderMatchesParsedFolder(t *testing.T) {
	s, err := ParseStanding(StandingFolder("standing", upperDef, res)+"a.csv", "standing/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Folder != "standing/"+lowerDef+"/"+res+"/" {
		t.Errorf("folder %q", s.Folder)
	}
}

func FuzzParseStanding(f *testing.F) {
	for _, s := range []string{
		"standing/" + cat + "/" + res + "/a.csv",
		"standing/badge/a.csv",
		"standing/Door Lock/x.CSV",
		"standing/badge/manifest.json",
		"standing/badge/x/a.csv",
		"standing/" + upperDef + "/" + res + "/a.csv",
		"standing//a.csv",
		"standing/\xff/a.csv",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		s, err := ParseStanding(key, "standing/", testRoutes)
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) || review.KindOf(err) != review.Invalid {
				t.Fatalf("ParseStanding(%q) error %v is not an invalid *KeyError", key, err)
			}
			if s != (Standing{}) {
				t.Fatalf("ParseStanding(%q) returned %+v alongside an error", key, s)
			}
			return
		}
		for _, id := range []string{s.CatalogID, s.ResourceID} {
			if !review.IsGUID(id) || id != strings.ToLower(id) {
				t.Fatalf("ParseStanding(%q): id %q is not a lower-case GUID", key, id)
			}
		}
		if s.File == "" || strings.ContainsAny(s.File, "/\"\\") || s.Folder+s.File != key || !strings.HasSuffix(s.Folder, "/") {
			t.Fatalf("ParseStanding(%q): unusable folder %q file %q", key, s.Folder, s.File)
		}
		if s.Route == "" && s.Folder != StandingFolder("standing/", s.CatalogID, s.ResourceID) {
			t.Fatalf("ParseStanding(%q): canonical folder %q is not StandingFolder's", key, s.Folder)
		}
		if s.Route != "" && s.Folder != "standing/"+s.Route+"/" {
			t.Fatalf("ParseStanding(%q): route folder %q", key, s.Folder)
		}
	})
}
