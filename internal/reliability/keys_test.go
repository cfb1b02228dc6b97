package reliability_test

import (
	"context"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/review"
)

const (
	cat  = harness.Catalog
	res  = harness.Resource
	def  = harness.Definition
	inst = harness.Instance
	// routes is the ROUTES setting of the key cases.
	routes = `{"badges":{"catalogId":"` + cat + `","resourceId":"` + res + `","source":"Badge system"}}`
)

// keyCase is one S3 key and what ingest must make of it.
type keyCase struct {
	name string
	key  string
	// rawEvent, when set, is the event's (URL-encoded) key as S3 would
	// send it for an object that cannot be stored here; no object is put.
	rawEvent string
	// upload is the file name Graph must receive; "" means rejected.
	upload string
	// contains is part of the rejection's message.
	contains string
	// eventErr: the event itself cannot be decoded; the invocation
	// returns this error (the failure queue keeps the event), no report.
	eventErr string
}

var keyCases = []keyCase{
	{name: "canonical", key: harness.Key("a.csv"), upload: "a.csv"},
	{name: "configured route", key: "incoming/badges/" + def + "/" + inst + "/a.csv", upload: "a.csv"},
	{name: "upper-case GUIDs", key: "incoming/" + strings.ToUpper(cat) + "/" + res + "/" + def + "/" + strings.ToUpper(inst) + "/a.csv", upload: "a.csv"},
	{name: "upper-case extension", key: harness.Key("A.CSV"), upload: "A.CSV"},
	{name: "unicode, spaces and plus", key: harness.Key("accès badges + 日本 (1).csv"), upload: "accès badges + 日本 (1).csv"},
	// A literal %2F in a name stays literal: the key is decoded once.
	{name: "percent-encoding in the name", key: harness.Key("a%2Fb%2e%2e.csv"), upload: "a%2Fb%2e%2e.csv"},
	{name: "long file name", key: harness.Key(strings.Repeat("n", 200) + ".csv"), upload: strings.Repeat("n", 200) + ".csv"},

	{name: "too few segments", key: "incoming/" + cat + "/" + res + "/" + inst + "/a.csv", contains: "canonical form needs 5"},
	{name: "too many segments", key: "incoming/" + cat + "/" + res + "/" + def + "/" + inst + "/x/a.csv", contains: "6 segment(s)"},
	{name: "file directly under incoming", key: "incoming/a.csv", contains: "1 segment(s)"},
	{name: "dot-dot segment", key: "incoming/" + cat + "/" + res + "/../" + inst + "/a.csv", contains: `segment ".." is not allowed`},
	{name: "dot segment", key: "incoming/" + cat + "/./" + def + "/" + inst + "/a.csv", contains: `segment "." is not allowed`},
	{name: "double slash", key: "incoming/" + cat + "//" + res + "/" + def + "/" + inst + "/a.csv", contains: `empty segment ("//")`},
	{name: "catalog id not a GUID", key: "incoming/" + cat[:35] + "g/" + res + "/" + def + "/" + inst + "/a.csv", contains: "catalogId is not a GUID"},
	{name: "GUID in braces", key: "incoming/{" + cat + "}/" + res + "/" + def + "/" + inst + "/a.csv", contains: "catalogId is not a GUID"},
	{name: "instance id not a GUID", key: harness.KeyFor(review.Target{CatalogID: cat, ResourceID: res, ReviewDefinitionID: def, ReviewInstanceID: "../../x"}, "a.csv"), contains: `segment ".." is not allowed`},
	{name: "percent-encoded dot-dot as route", key: "incoming/%2e%2e/" + def + "/" + inst + "/a.csv", contains: `route "%2e%2e" is not configured`},
	{name: "unconfigured route", key: "incoming/nowhere/" + def + "/" + inst + "/a.csv", contains: `route "nowhere" is not configured (configured routes: "badges")`},
	{name: "route name in the wrong case", key: "incoming/Badges/" + def + "/" + inst + "/a.csv", contains: `route "Badges" is not configured`},
	{name: "not a csv", key: harness.Key("a.txt"), contains: "neither a .csv file nor manifest.json"},
	{name: "nothing before the extension", key: harness.Key(".csv"), contains: "nothing before the extension"},
	{name: "quote in the file name", key: harness.Key(`a"b.csv`), contains: "cannot be sent as a multipart filename"},
	{name: "backslash in the file name", key: harness.Key(`a\b.csv`), contains: "cannot be sent as a multipart filename"},
	{name: "outside the incoming prefix", key: "elsewhere/" + cat + "/" + res + "/" + def + "/" + inst + "/a.csv", contains: `outside the incoming prefix "incoming/"`},
	{name: "control character", rawEvent: "incoming/" + cat + "/" + res + "/" + def + "/" + inst + "/a%09b.csv", contains: "control character U+0009"},
	// S3 never sends this: aws-lambda-go refuses the whole event.
	{name: "invalid URL encoding in the event", rawEvent: "incoming/" + cat + "/" + res + "/" + def + "/" + inst + "/a%zzb.csv", eventErr: `invalid URL escape "%zz"`},
	{name: "invalid UTF-8", rawEvent: "incoming/" + cat + "/" + res + "/" + def + "/" + inst + "/a%FFb.csv", contains: "not valid UTF-8"},
	// S3 keys go up to 1024 bytes; the report key adds the state prefix,
	// "reports/" and ".json".
	{name: "key of 1010 bytes", rawEvent: "incoming/" + strings.Repeat("x/", 498) + "a.csv", contains: "499 segment(s)"},
	{name: "key over S3's 1024 bytes", rawEvent: "incoming/" + strings.Repeat("x/", 520) + "a.csv", contains: "longer than S3's limit of 1024 bytes"},
}

// TestKeyCases sends each key through the real ingest: a key that does not
// fit the layout is rejected with a report naming the problem and nothing
// reaches Graph; a valid unusual one is uploaded under its own name.
func TestKeyCases(t *testing.T) {
	t.Parallel()
	if len(keyCases) < 15 {
		t.Fatalf("only %d key cases", len(keyCases))
	}
	for _, c := range keyCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{Options: harness.Options{Routes: routes}})
			body := csvRows(2, 1)
			rec := harness.Record(r.Drop, "", int64(len(body)), "0123456789abcdef0123456789abcdef", "")
			if c.rawEvent != "" {
				rec.S3.Object.Key = c.rawEvent
			} else {
				rec = r.Put(c.key, body)
			}
			err := r.ingest(context.Background(), rec)
			if c.eventErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.eventErr) {
					t.Errorf("ingest: %v, want an error saying %q", err, c.eventErr)
				}
				if n := len(r.Emu.Journal()); n != 0 {
					t.Errorf("%d requests reached Graph or Entra for an undecodable event", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("ingest: %v", err)
			}
			key := refOf(rec).Key
			if rk := r.Ledger.ReportKey(key); len(key) <= 1024 && len(rk) > 1024 {
				t.Errorf("the report key is %d bytes, past S3's limit of 1024: S3 refuses to store the report of a %d-byte key", len(rk), len(key))
			}
			rep := r.report(key)
			if c.upload != "" {
				fs := r.files()
				if rep.Status != review.Uploaded || len(fs) != 1 || fs[0].Name != c.upload {
					t.Fatalf("report %+v, files %+v; want %q uploaded", rep, fs, c.upload)
				}
				return
			}
			if rep.Status != review.Rejected || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Message, c.contains) {
				t.Errorf("report = %+v, want rejected saying %q", rep, c.contains)
			}
			if n := len(r.Emu.Journal()); n != 0 {
				t.Errorf("%d requests reached Graph or Entra for a refused key", n)
			}
		})
	}
}
