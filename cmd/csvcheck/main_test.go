package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/csvcheck"
	"github.com/byodrop/byodrop/internal/review"
)

var corpus = filepath.Join("..", "..", "internal", "csvcheck", "testdata", "corpus")

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestPrintsWhatTheIngestWouldReport holds the command to the validator:
// for every corpus file it prints exactly the validator's outcome.
func TestPrintsWhatTheIngestWouldReport(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(corpus, "*.csv"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res, verr := csvcheck.Validate(bytes.NewReader(data), path)
		want, wantCode := "", 0
		if verr != nil {
			want, wantCode = verr.Error()+"\n", 1
		} else {
			want = path + ": ok: " + strconv.FormatInt(res.Rows, 10) + " rows (format " + res.Format.Name + ")\n"
		}
		code, out, _ := runCLI(path)
		if code != wantCode || out != want {
			t.Errorf("csvcheck %s: exit %d, printed %q; want exit %d, %q", path, code, out, wantCode, want)
		}
	}
}

func TestSeveralFilesExitOneIfAnyIsBad(t *testing.T) {
	ok, bad := filepath.Join(corpus, "entra-ok.csv"), filepath.Join(corpus, "bad-guid.csv")
	code, out, _ := runCLI(ok, bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{ok + ": ok: 3 rows (format entra-template)", bad + `:3: PrincipalId: not a GUID: "bob"`}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("printed %q, want %q", lines, want)
	}
	if code, _, _ := runCLI(ok, ok); code != 0 {
		t.Fatalf("two good files: exit %d", code)
	}
}

func TestJSONHasTheShapeOfReportErrors(t *testing.T) {
	ok, bad := filepath.Join(corpus, "v1-ok.csv"), filepath.Join(corpus, "owners-bad-item.csv")
	missing := filepath.Join(t.TempDir(), "missing.csv")
	code, out, _ := runCLI("-json", ok, bad, missing)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var got []struct {
		File   string              `json:"file"`
		OK     bool                `json:"ok"`
		Format string              `json:"format"`
		Rows   int64               `json:"rows"`
		Bytes  int64               `json:"bytes"`
		Errors []review.FieldError `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(got) != 3 {
		t.Fatalf("%d results, want 3: %s", len(got), out)
	}
	if g := got[0]; !g.OK || g.Format != "v1.0" || g.Rows != 2 || g.Bytes == 0 || len(g.Errors) != 0 {
		t.Errorf("good file: %+v", g)
	}
	wantErr := review.FieldError{Line: 2, Column: "EntitlementOwners_Users", Message: `not a GUID: "bob" (item 2 of the list)`}
	if g := got[1]; g.OK || len(g.Errors) != 1 || g.Errors[0] != wantErr {
		t.Errorf("bad file: %+v, want the error %+v", g, wantErr)
	}
	if g := got[2]; g.OK || len(g.Errors) != 1 || !strings.Contains(g.Errors[0].Message, "no such file") {
		t.Errorf("missing file: %+v", g)
	}
}

func TestUnreadableFileIsNamed(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.csv")
	code, out, _ := runCLI(missing)
	if code != 1 || !strings.HasPrefix(out, missing+": open: ") {
		t.Fatalf("exit %d, printed %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"-json"}, {"-nope", "a.csv"}} {
		code, out, errOut := runCLI(args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "usage: csvcheck [-json] FILE...") {
			t.Errorf("csvcheck %q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
