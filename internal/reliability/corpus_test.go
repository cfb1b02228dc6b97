package reliability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/review"
)

// csvCase is one file and the outcome the real ingest must give it.
type csvCase struct {
	name string
	body []byte
	ok   bool
	rows int64
	// for a rejection: where, and part of the message
	line     int
	column   string
	contains string
}

// corpusDir holds the CSV validator's corpus, shared with its own tests.
const corpusDir = "../csvcheck/testdata/corpus"

// loadCorpus reads every corpus file with its expectation.
func loadCorpus(t *testing.T) []csvCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, "expected.json"))
	if err != nil {
		t.Fatalf("the CSV corpus: %v", err)
	}
	var expected map[string]struct {
		OK       bool   `json:"ok"`
		Rows     int64  `json:"rows"`
		Line     int    `json:"line"`
		Column   string `json:"column"`
		Contains string `json:"contains"`
	}
	if err := json.Unmarshal(data, &expected); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.csv"))
	if len(files) != len(expected) {
		t.Errorf("%d corpus files, %d expectations: every file needs one", len(files), len(expected))
	}
	var out []csvCase
	for name, e := range expected {
		body, err := os.ReadFile(filepath.Join(corpusDir, name))
		if err != nil {
			t.Fatalf("corpus file %s: %v", name, err)
		}
		out = append(out, csvCase{name: name, body: body, ok: e.OK, rows: e.Rows, line: e.Line, column: e.Column, contains: e.Contains})
	}
	slices.SortFunc(out, func(a, b csvCase) int { return strings.Compare(a.name, b.name) })
	return out
}

const betaHeader = "PrincipalAADId,ResourceId,ResourceName,ResourceDescription,ResourceType,PermissionId,PermissionName,PermissionDescription,PermissionType,ResourceOwners\n"

// generatedCases are the inputs too large, or too regular, to keep as
// files: very long lines, huge field counts, and policy edges.
func generatedCases() []csvCase {
	row := func(principal, owners string) string {
		return principal + ",EntraIdUser,door-1,Door 1,Badge access,Access,site-1,HQ," + owners + ",,\r\n"
	}
	guid := "6e7b768e-07e2-4810-8459-485f84f8f204"
	longText := strings.Repeat("x", 60<<10)
	tooLong := strings.Repeat("x", 64<<10+1)
	// 8 quoted fields of 65536 doubled quotes: each value is at the field
	// limit, and the record as written passes 1 MiB.
	quotes := `"` + strings.Repeat(`""`, 64<<10) + `"`
	hugeRecord := guid + "," + strings.Repeat(quotes+",", 8) + "\n"
	var manyRows strings.Builder
	manyRows.WriteString(header)
	for i := range 20000 {
		manyRows.WriteString(row(fmt.Sprintf("%08x-07e2-4810-8459-485f84f8f204", i), ""))
	}
	return []csvCase{
		{name: "gen: 60 KiB field (long line)", ok: true, rows: 1,
			body: []byte(header + guid + ",EntraIdUser,door-1,Door 1," + longText + ",Access,site-1,HQ,,,\r\n")},
		{name: "gen: field over 64 KiB", line: 2, column: "PermissionDescription", contains: "field longer than 65536 bytes",
			body: []byte(header + guid + ",EntraIdUser,door-1,Door 1," + tooLong + ",Access,site-1,HQ,,,\r\n")},
		{name: "gen: record over 1 MiB of quoted fields", line: 2, contains: "record longer than 1048576 bytes",
			body: []byte(betaHeader + hugeRecord)},
		{name: "gen: 100000 fields in a row", line: 2, contains: "more than 11 fields",
			body: []byte(header + strings.TrimSuffix(row(guid, ""), "\r\n") + strings.Repeat(",a", 100000) + "\r\n")},
		{name: "gen: header of 100 columns", line: 1, contains: "the header has more than 64 columns",
			body: []byte(strings.TrimSuffix(strings.Repeat("c,", 100), ",") + "\n")},
		{name: "gen: 20000 rows", ok: true, rows: 20000, body: []byte(manyRows.String())},
		// Owner lists may be empty: only resource-owner reviews need them,
		// and the file cannot tell which review it is for.
		{name: "gen: empty owner lists", ok: true, rows: 1, body: []byte(header + row(guid, ""))},
		{name: "gen: owner list of one empty quoted item", line: 2, column: "EntitlementOwners_Users", contains: "empty item",
			body: []byte(header + row(guid, `" "`))},
		{name: "gen: uppercase GUID principal", ok: true, rows: 1, body: []byte(header + row(strings.ToUpper(guid), ""))},
		{name: "gen: principal with a trailing NUL", line: 2, column: "PrincipalId", contains: "NUL byte",
			body: []byte(header + row(guid+"\x00", ""))},
		{name: "gen: UTF-8 BOM and CRLF/LF mixed", ok: true, rows: 2,
			body: []byte("\ufeff" + strings.TrimSuffix(header, "\r\n") + "\n" + row(guid, "") + strings.TrimSuffix(row(guid, ""), "\r\n") + "\n")},
		{name: "gen: two BOMs", line: 1, contains: "header",
			body: []byte("\ufeff\ufeff" + header + row(guid, ""))},
		{name: "gen: formula in a quoted cell", line: 2, column: "PermissionName", contains: "spreadsheet formula",
			body: []byte(header + guid + `,EntraIdUser,door-1,"=1+1",Badge access,Access,site-1,HQ,,,` + "\r\n")},
	}
}

// TestCSVCorpusThroughIngest sends every corpus file, and the generated
// cases, through the real ingest: a valid file is uploaded with its row
// count; a bad one is rejected with the expected line and column, and not
// one uploadFile request is made for it.
func TestCSVCorpusThroughIngest(t *testing.T) {
	t.Parallel()
	cases := append(loadCorpus(t), generatedCases()...)
	if len(cases) < 40 {
		t.Fatalf("only %d CSV cases", len(cases))
	}
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	accepted, rejected := 0, 0
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("case-%03d.csv", i)
			key := harness.Key(name)
			before := r.Emu.Count("upload", 0)
			if err := r.ingest(ctx, r.Put(key, c.body)); err != nil {
				t.Fatalf("ingest: %v", err)
			}
			rep := r.report(key)
			uploads := r.Emu.Count("upload", 0) - before
			if c.ok {
				accepted++
				if rep.Status != review.Uploaded || rep.Rows != c.rows || rep.Bytes != int64(len(c.body)) {
					t.Errorf("report = %+v, want uploaded with %d rows and %d bytes", rep, c.rows, len(c.body))
				}
				if uploads != 1 {
					t.Errorf("%d uploadFile requests, want 1", uploads)
				}
				return
			}
			rejected++
			if rep.Status != review.Rejected || len(rep.Errors) != 1 {
				t.Fatalf("report = %+v, want rejected with one error", rep)
			}
			e := rep.Errors[0]
			if e.Line != c.line || e.Column != c.column || !strings.Contains(e.Message, c.contains) {
				t.Errorf("error = %+v, want line %d, column %q, message containing %q", e, c.line, c.column, c.contains)
			}
			if uploads != 0 {
				t.Errorf("%d uploadFile requests for a rejected file, want 0", uploads)
			}
		})
	}
	t.Logf("CSV corpus through ingest: %d cases, %d uploaded, %d rejected", len(cases), accepted, rejected)
}

// TestBadRowAfterThePrecheckWindow: a file larger than what is validated
// before the upload, bad near its end, is rejected while it streams: the
// upload is aborted and Graph records nothing.
func TestBadRowAfterThePrecheckWindow(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{PrecheckBytes: 4 << 10})
	good := csvRows(200, 1) // about 50 KiB, far past the 4 KiB window
	body := append(good, "bob,EntraIdUser,p,P,d,t,s,S,,,\r\n"...)
	key := harness.Key("late-error.csv")
	if err := r.ingest(context.Background(), r.Put(key, body)); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	rep := r.report(key)
	if rep.Status != review.Rejected || len(rep.Errors) != 1 || rep.Errors[0].Line != 202 || rep.Errors[0].Column != "PrincipalId" {
		t.Fatalf("report = %+v, want rejected at line 202, PrincipalId", rep)
	}
	settle(t, r)
	if n := r.Emu.Count("upload", 200); n != 0 || len(r.files()) != 0 {
		t.Fatalf("%d uploads answered 200, files %+v: Graph must record nothing", n, r.files())
	}
	t.Logf("upload requests: %s (aborted mid-body)", r.statuses("upload"))
}
