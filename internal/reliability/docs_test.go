package reliability_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

// TestLifecyclesDocMatchesTheCode keeps docs/lifecycles.md honest: every
// test its tables name exists, every lifecycle test here is named there,
// and its outcome table is review.OutcomeTable.
func TestLifecyclesDocMatchesTheCode(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "lifecycles.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`(?:([a-z]+)\\.)?(Test[A-Za-z0-9]+)`").FindAllStringSubmatch(text, -1) {
		pkg := m[1]
		if pkg == "" {
			pkg = "reliability"
		}
		named[pkg+"."+m[2]] = true
	}
	defined := map[string]bool{}
	for _, pkg := range []string{"reliability", "finalize", "ingest", "claim", "discover"} {
		files, _ := filepath.Glob(filepath.Join(root, "internal", pkg, "*_test.go"))
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9]+)\(`).FindAllStringSubmatch(string(src), -1) {
				defined[pkg+"."+m[1]] = true
			}
		}
	}
	for n := range named {
		if !defined[n] {
			t.Errorf("docs/lifecycles.md names %s, which does not exist", n)
		}
	}
	for n := range defined {
		if (strings.HasPrefix(n, "reliability.TestSession") || strings.HasPrefix(n, "reliability.TestObject")) && !named[n] {
			t.Errorf("%s is a lifecycle row's test, but docs/lifecycles.md does not name it", n)
		}
	}

	start, end := strings.Index(text, "<!-- outcomes"), strings.Index(text, "<!-- /outcomes -->")
	if start < 0 || end < start {
		t.Fatal("docs/lifecycles.md has no outcomes table")
	}
	var rows [][3]string
	for _, line := range strings.Split(text[start:end], "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 || strings.HasPrefix(line, "|---") || strings.TrimSpace(cells[0]) == "error" {
			continue
		}
		rows = append(rows, [3]string{strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])})
	}
	want := review.OutcomeTable()
	if len(rows) != len(want) {
		t.Fatalf("docs outcome table has %d rows, the code %d", len(rows), len(want))
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("outcome row %d: docs %q, code %q", i+1, rows[i], want[i])
		}
	}
}
