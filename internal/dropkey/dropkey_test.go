package dropkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byodrop/byodrop/internal/review"
)

const (
	cat  = "11111111-1111-4111-8111-111111111111"
	res  = "22222222-2222-4222-8222-222222222222"
	def  = "33333333-3333-4333-8333-333333333333"
	inst = "44444444-4444-4444-8444-444444444444"
	// upperDef is lowerDef in upper case: the Target must carry it lower-cased.
	upperDef = "ABCDEFAB-CDEF-4ABC-8DEF-ABCDEFABCDEF"
	lowerDef = "abcdefab-cdef-4abc-8def-abcdefabcdef"
)

var testRoutes = Routes{
	"badge":     {CatalogID: cat, ResourceID: res, Source: "Badge system"},
	"Door Lock": {CatalogID: strings.ToUpper(cat), ResourceID: res, Source: "Doors"},
}

func canonical(file string) string {
	return "incoming/" + cat + "/" + res + "/" + def + "/" + inst + "/" + file
}

func TestParseAccepts(t *testing.T) {
	want := review.Target{CatalogID: cat, ResourceID: res, ReviewDefinitionID: def, ReviewInstanceID: inst}
	withSource := want
	withSource.Source = "Badge system"
	tests := []struct {
		name   string
		key    string
		prefix string
		want   Key
	}{
		{"canonical csv", canonical("badge-access.csv"), "incoming/",
			Key{Target: want, File: "badge-access.csv", Kind: CSV}},
		{"canonical manifest", canonical("manifest.json"), "incoming/",
			Key{Target: want, File: "manifest.json", Kind: Manifest}},
		{"route csv takes catalog, resource and source from the route", "incoming/badge/" + def + "/" + inst + "/a.csv", "incoming/",
			Key{Target: withSource, File: "a.csv", Kind: CSV, Route: "badge"}},
		{"route manifest", "incoming/badge/" + def + "/" + inst + "/manifest.json", "incoming/",
			Key{Target: withSource, File: "manifest.json", Kind: Manifest, Route: "badge"}},
		{"route name with a space, route ids lower-cased", "incoming/Door Lock/" + def + "/" + inst + "/a.csv", "incoming/",
			Key{Target: review.Target{CatalogID: cat, ResourceID: res, ReviewDefinitionID: def, ReviewInstanceID: inst, Source: "Doors"}, File: "a.csv", Kind: CSV, Route: "Door Lock"}},
		{"uppercase GUIDs are lower-cased",
			"incoming/" + strings.ToUpper(cat) + "/" + strings.ToUpper(res) + "/" + upperDef + "/" + strings.ToUpper(inst) + "/a.csv", "incoming/",
			Key{Target: review.Target{CatalogID: cat, ResourceID: res, ReviewDefinitionID: lowerDef, ReviewInstanceID: inst}, File: "a.csv", Kind: CSV}},
		{"uppercase .CSV extension", canonical("EXPORT.CSV"), "incoming/",
			Key{Target: want, File: "EXPORT.CSV", Kind: CSV}},
		{"spaces in the file name", canonical("badge access 2026.csv"), "incoming/",
			Key{Target: want, File: "badge access 2026.csv", Kind: CSV}},
		{"plus sign kept literally (already decoded)", canonical("a+b.csv"), "incoming/",
			Key{Target: want, File: "a+b.csv", Kind: CSV}},
		{"parentheses", canonical("export (1).csv"), "incoming/",
			Key{Target: want, File: "export (1).csv", Kind: CSV}},
		{"non-ASCII file name", canonical("Zugänge-Türen-日本.csv"), "incoming/",
			Key{Target: want, File: "Zugänge-Türen-日本.csv", Kind: CSV}},
		{"percent sign kept literally (already decoded)", canonical("100%.csv"), "incoming/",
			Key{Target: want, File: "100%.csv", Kind: CSV}},
		{"prefix without trailing slash", canonical("a.csv"), "incoming",
			Key{Target: want, File: "a.csv", Kind: CSV}},
		{"deeper prefix", "drop/in/" + cat + "/" + res + "/" + def + "/" + inst + "/a.csv", "drop/in/",
			Key{Target: want, File: "a.csv", Kind: CSV}},
		{"empty prefix: the whole bucket", cat + "/" + res + "/" + def + "/" + inst + "/a.csv", "",
			Key{Target: want, File: "a.csv", Kind: CSV}},
		{"csv named like the manifest", canonical("manifest.json.csv"), "incoming/",
			Key{Target: want, File: "manifest.json.csv", Kind: CSV}},
		{"file name with dots", canonical("..a.b.csv"), "incoming/",
			Key{Target: want, File: "..a.b.csv", Kind: CSV}},
		{"key of exactly 1024 bytes", canonical(strings.Repeat("x", MaxKeyBytes-len(canonical(".csv"))) + ".csv"), "incoming/",
			Key{Target: want, File: strings.Repeat("x", MaxKeyBytes-len(canonical(".csv"))) + ".csv", Kind: CSV}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.key, tt.prefix, testRoutes)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.key, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.key, got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	long := canonical(strings.Repeat("y", MaxKeyBytes) + ".csv")
	tests := []struct {
		name   string
		key    string
		prefix string
		routes Routes
		want   string // a substring of the error text
	}{
		{"outside the prefix", "other/" + cat + "/" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`outside the incoming prefix "incoming/"`},
		{"prefix matched case-sensitively", "Incoming/" + cat + "/" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			"outside the incoming prefix"},
		{"prefix is a whole segment", "incoming2/" + cat + "/" + res + "/" + def + "/" + inst + "/a.csv", "incoming", testRoutes,
			`outside the incoming prefix "incoming/"`},
		{"too shallow", "incoming/" + cat + "/" + res + "/a.csv", "incoming/", testRoutes,
			"3 segment(s) after \"incoming/\", expected 5 for the canonical form"},
		{"too deep", canonical("x/a.csv"), "incoming/", testRoutes,
			"6 segment(s) after \"incoming/\", expected 5 for the canonical form (<catalogId>/<resourceId>/<reviewDefinitionId>/<reviewInstanceId>/<file>.csv) or 4 for the route form"},
		{"file directly under the prefix", "incoming/a.csv", "incoming/", testRoutes,
			"1 segment(s) after"},
		{"canonical form missing a segment", "incoming/" + cat + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			"the canonical form needs 5"},
		{"route with an extra segment", "incoming/badge/" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`route "badge" takes 4 segments`},
		{"catalog id not a GUID", "incoming/not-a-guid/" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`catalogId is not a GUID: "not-a-guid"`},
		{"resource id not a GUID", "incoming/" + cat + "/res/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`resourceId is not a GUID: "res"`},
		{"review definition id not a GUID", "incoming/" + cat + "/" + res + "/" + def + "x/" + inst + "/a.csv", "incoming/", testRoutes,
			`reviewDefinitionId is not a GUID`},
		{"review instance id not a GUID in route form", "incoming/badge/" + def + "/{" + inst + "}/a.csv", "incoming/", testRoutes,
			`reviewInstanceId is not a GUID: "{` + inst + `}"`},
		{"GUID without dashes", "incoming/badge/" + strings.ReplaceAll(def, "-", "") + "/" + inst + "/a.csv", "incoming/", testRoutes,
			"reviewDefinitionId is not a GUID"},
		{"route not configured", "incoming/payroll/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`route "payroll" is not configured (configured routes: "Door Lock", "badge")`},
		{"route name is case-sensitive", "incoming/Badge/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`route "Badge" is not configured`},
		{"no routes configured", "incoming/badge/" + def + "/" + inst + "/a.csv", "incoming/", nil,
			`route "badge" is not configured (no ROUTES are configured)`},
		{"route with ids that are not GUIDs", "incoming/bad/" + def + "/" + inst + "/a.csv", "incoming/", Routes{"bad": {CatalogID: "x", ResourceID: res}},
			`route "bad" is misconfigured`},
		{"dot-dot segment", "incoming/" + cat + "/" + res + "/../" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`segment ".." is not allowed`},
		{"dot segment", "incoming/" + cat + "/./" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`segment "." is not allowed`},
		{"dot-dot as the file", "incoming/" + cat + "/" + res + "/" + def + "/" + inst + "/..", "incoming/", testRoutes,
			`segment ".." is not allowed`},
		{"double slash", "incoming/" + cat + "//" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`empty segment ("//") after "incoming/` + cat + `"`},
		{"double slash right after the prefix", "incoming//" + cat + "/" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			`empty segment ("//") after "incoming/"`},
		{"trailing slash", canonical(""), "incoming/", testRoutes,
			"empty file name"},
		{"only .csv", canonical(".csv"), "incoming/", testRoutes,
			`file name ".csv" has nothing before the extension`},
		{"only .CSV", canonical(".CSV"), "incoming/", testRoutes,
			"has nothing before the extension"},
		{"not a csv", canonical("a.xlsx"), "incoming/", testRoutes,
			`file "a.xlsx" is neither a .csv file nor manifest.json`},
		{"no extension", canonical("csv"), "incoming/", testRoutes,
			"is neither a .csv file"},
		{"manifest spelled in upper case", canonical("MANIFEST.JSON"), "incoming/", testRoutes,
			"is neither a .csv file nor manifest.json"},
		{"double quote in the file name", canonical(`a"b.csv`), "incoming/", testRoutes,
			`contains '"', which cannot be sent as a multipart filename`},
		{"backslash in the file name", canonical(`a\b.csv`), "incoming/", testRoutes,
			`contains '\\'`},
		{"newline", canonical("a\nb.csv"), "incoming/", testRoutes,
			"control character U+000A"},
		{"NUL in an id", "incoming/" + cat + "\x00/" + res + "/" + def + "/" + inst + "/a.csv", "incoming/", testRoutes,
			"control character U+0000 at byte 45"},
		{"C1 control character", canonical("a\u0085.csv"), "incoming/", testRoutes,
			"control character U+0085"},
		{"DEL", canonical("a\x7f.csv"), "incoming/", testRoutes,
			"control character U+007F"},
		{"invalid UTF-8", canonical("a\xff.csv"), "incoming/", testRoutes,
			"not valid UTF-8"},
		{"longer than 1024 bytes", long, "incoming/", testRoutes,
			"…(1185 bytes)\": longer than S3's limit of 1024 bytes"},
		{"1025 bytes", canonical(strings.Repeat("x", MaxKeyBytes+1-len(canonical(".csv"))) + ".csv"), "incoming/", testRoutes,
			"…(1025 bytes)\": longer than S3's limit of 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.key, tt.prefix, tt.routes)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error containing %q", tt.key, got, tt.want)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %v is %T, want *KeyError", err, err)
			}
			if k := review.KindOf(err); k != review.Invalid {
				t.Errorf("KindOf = %v, want invalid", k)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
			if len(tt.key) <= MaxKeyBytes && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.key)) {
				t.Errorf("error %q does not name the key", err)
			}
			if got != (Key{}) {
				t.Errorf("Parse returned %+v alongside the error, want the zero Key", got)
			}
		})
	}
}

func TestKeyErrorShortensHugeKeys(t *testing.T) {
	key := strings.Repeat("é", 100_000)
	_, err := Parse(key, "incoming/", nil)
	if err == nil {
		t.Fatal("no error for a 200 kB key")
	}
	msg := err.Error()
	if len(msg) > 300 {
		t.Errorf("error is %d bytes long, want a shortened key: %.100q…", len(msg), msg)
	}
	if !strings.Contains(msg, "(200000 bytes)") {
		t.Errorf("error %q does not say how long the key was", msg)
	}
	if !utf8Valid(msg) {
		t.Errorf("shortened error cut a rune in half: %q", msg)
	}
	if fe := err.(*KeyError).FieldError(); fe.Message != msg || fe.Line != 0 {
		t.Errorf("FieldError = %+v, want the message at line 0", fe)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestDecodeEventKey(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"plus is a space", "incoming/badge/a+b.csv", "incoming/badge/a b.csv"},
		{"encoded plus is a plus", "incoming/a%2Bb.csv", "incoming/a+b.csv"},
		{"percent escapes", "incoming/export+%281%29.csv", "incoming/export (1).csv"},
		{"UTF-8 escapes", "incoming/Zug%C3%A4nge.csv", "incoming/Zugänge.csv"},
		{"lower-case hex", "incoming/%c3%a4.csv", "incoming/ä.csv"},
		{"slash stays a slash", "incoming%2Fa.csv", "incoming/a.csv"},
		{"encoded percent", "incoming/100%25.csv", "incoming/100%.csv"},
		{"nothing to decode", "incoming/a.csv", "incoming/a.csv"},
		{"escaped control characters decode (Parse refuses them)", "a%0Ab", "a\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEventKey(tt.raw)
			if err != nil {
				t.Fatalf("DecodeEventKey(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("DecodeEventKey(%q) = %q, want %q", tt.raw, got, tt.want)
			}
			if lib := lambdaDecoded(t, tt.raw); lib != got {
				t.Errorf("aws-lambda-go decodes %q as %q, we as %q", tt.raw, lib, got)
			}
		})
	}
	for _, raw := range []string{"incoming/100%.csv", "a%zzb.csv", "a%2", "%"} {
		t.Run("invalid escape "+raw, func(t *testing.T) {
			_, err := DecodeEventKey(raw)
			var ke *KeyError
			if !errors.As(err, &ke) || review.KindOf(err) != review.Invalid {
				t.Fatalf("DecodeEventKey(%q) error = %v, want an invalid *KeyError", raw, err)
			}
			if !strings.Contains(err.Error(), "not a valid URL-encoded event key") || !strings.Contains(err.Error(), raw) {
				t.Errorf("error %q does not explain the problem with %q", err, raw)
			}
		})
	}
}

// lambdaDecoded decodes raw the way the Lambda handler receives it: as
// aws-lambda-go's S3Object decodes an event's key.
func lambdaDecoded(t testing.TB, raw string) string {
	t.Helper()
	data, err := json.Marshal(map[string]string{"key": raw})
	if err != nil {
		t.Fatal(err)
	}
	var o events.S3Object
	if err := json.Unmarshal(data, &o); err != nil {
		return "<error>"
	}
	return o.URLDecodedKey
}

func TestKindString(t *testing.T) {
	if CSV.String() != "csv" || Manifest.String() != "manifest" {
		t.Errorf("Kind strings = %q, %q", CSV, Manifest)
	}
}

func FuzzDecodeEventKey(f *testing.F) {
	for _, s := range []string{"a+b", "%41", "%zz", "%", "incoming/x%2Fy+(1).csv", "%C3%A4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := DecodeEventKey(raw)
		lib := lambdaDecoded(t, raw)
		if err != nil {
			if lib != "<error>" {
				t.Fatalf("we refuse %q (%v), aws-lambda-go decodes it as %q", raw, err, lib)
			}
			return
		}
		if !utf8Valid(raw) {
			// JSON cannot carry invalid UTF-8; the comparison would be moot.
			return
		}
		if got != lib {
			t.Fatalf("DecodeEventKey(%q) = %q, aws-lambda-go: %q", raw, got, lib)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		canonical("a.csv"),
		canonical("manifest.json"),
		canonical("export (1) +ä.CSV"),
		"incoming/badge/" + def + "/" + inst + "/a.csv",
		"incoming/Door Lock/" + def + "/" + inst + "/manifest.json",
		"incoming/" + strings.ToUpper(cat) + "/" + res + "/" + def + "/" + inst + "/a.csv",
		"incoming//x/y/z/a.csv",
		"incoming/../../etc/passwd.csv",
		"incoming/a\x00b.csv",
		"incoming/\xff/a.csv",
		canonical(`a"b.csv`),
		canonical(".csv"),
		"",
		"incoming/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, err := Parse(key, "incoming/", testRoutes)
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) || review.KindOf(err) != review.Invalid {
				t.Fatalf("Parse(%q) error %v is not an invalid *KeyError", key, err)
			}
			if k != (Key{}) {
				t.Fatalf("Parse(%q) returned %+v alongside an error", key, k)
			}
			return
		}
		tg := k.Target
		for _, id := range []string{tg.CatalogID, tg.ResourceID, tg.ReviewDefinitionID, tg.ReviewInstanceID} {
			if !review.IsGUID(id) || id != strings.ToLower(id) {
				t.Fatalf("Parse(%q): id %q is not a lower-case GUID", key, id)
			}
		}
		if err := tg.Validate(); err != nil {
			t.Fatalf("Parse(%q): Target.Validate: %v", key, err)
		}
		if k.File == "" || strings.ContainsAny(k.File, "/\"\\") {
			t.Fatalf("Parse(%q): unusable file name %q", key, k.File)
		}
		if !strings.HasPrefix(key, "incoming/") || !strings.HasSuffix(key, "/"+k.File) || len(key) > MaxKeyBytes {
			t.Fatalf("Parse(%q) accepted a key outside the layout: %+v", key, k)
		}
		if (k.Kind == Manifest) != (k.File == ManifestName) {
			t.Fatalf("Parse(%q): kind %v for file %q", key, k.Kind, k.File)
		}
		if r, ok := testRoutes[k.Route]; k.Route != "" && (!ok || tg.Source != r.Source) {
			t.Fatalf("Parse(%q): route %q with source %q", key, k.Route, tg.Source)
		}
	})
}
