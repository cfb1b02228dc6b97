package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/testenv"
)

// fakeGo is a go command for `make fuzz`: `go test -list` names one fuzz
// target, and the fuzz run prints FAKE_FUZZ_OUT and exits FAKE_FUZZ_RC.
const fakeGo = `#!/bin/sh
case "$*" in
*-list*) printf 'FuzzThing\nok  \texample.com/thing\t0.01s\n' ;;
*) printf '%s\n' "$FAKE_FUZZ_OUT"; exit "$FAKE_FUZZ_RC" ;;
esac
`

// The failure Go's fuzz coordinator reports on its own -fuzztime deadline
// (go.dev/issue/75804), as printed by go1.26.8.
const coordinatorDeadline = `fuzz: elapsed: 10s, execs: 230832 (23773/sec), new interesting: 11 (total: 246)
--- FAIL: FuzzThing (10.09s)
    context deadline exceeded
FAIL
exit status 1
FAIL	example.com/thing	10.092s`

func TestMakeFuzzTellsTheCoordinatorsDeadlineFromAFailure(t *testing.T) {
	mk := testenv.RequireTool(t, "make")
	goBin := filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(goBin, []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, out string
		rc        string
		pass      bool
	}{
		{"a clean run", "fuzz: elapsed: 10s, execs: 1000\nPASS\nok  \texample.com/thing\t10.0s", "0", true},
		{"only the coordinator's deadline", coordinatorDeadline, "1", true},
		{"a failing input", `--- FAIL: FuzzThing (2.01s)
    --- FAIL: FuzzThing (0.00s)
        thing_test.go:12: got 3, want 4

    Failing input written to testdata/fuzz/FuzzThing/582528ddfad69eb5
    To re-run:
    go test -run=FuzzThing/582528ddfad69eb5
FAIL`, "1", false},
		{"the deadline with a failing input", coordinatorDeadline + "\n    Failing input written to testdata/fuzz/FuzzThing/582528ddfad69eb5", "1", false},
		{"the deadline and another failure", coordinatorDeadline + "\n--- FAIL: FuzzOther (1.00s)\n    context deadline exceeded", "1", false},
		{"the deadline with more to say", strings.Replace(coordinatorDeadline, "    context deadline exceeded", "    context deadline exceeded while dialing", 1), "1", false},
		{"a build failure", "# example.com/thing\n./thing.go:3:1: syntax error\nFAIL\texample.com/thing [build failed]", "1", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(mk, "--no-print-directory", "fuzz", "GO="+goBin, "FUZZPKGS=example.com/thing")
			cmd.Dir = repoPath(t, ".")
			cmd.Env = append(os.Environ(), "FAKE_FUZZ_OUT="+c.out, "FAKE_FUZZ_RC="+c.rc)
			out, err := cmd.CombinedOutput()
			if pass := err == nil; pass != c.pass {
				t.Fatalf("make fuzz passed = %v, want %v\n%s", pass, c.pass, out)
			}
			counted := strings.Contains(string(out), "counted as a pass")
			if want := c.pass && c.rc != "0"; counted != want {
				t.Errorf("says it counted a failure as a pass = %v, want %v\n%s", counted, want, out)
			}
		})
	}
}
