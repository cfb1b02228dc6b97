// Package testenv starts the local stand-ins that tests, `make local` and the
// benchmarks run against: an S3-compatible server (versitygw with its posix
// backend) and the Lambda runtime interface emulator (aws-lambda-rie), and it
// builds Lambda bootstraps the way the Makefile does.
//
// The tool binaries are pinned in the tools/ module and built by `make tools`
// into <repo>/bin. BYODROP_BIN_DIR points elsewhere; otherwise PATH is tried.
// With BYODROP_REQUIRE_TOOLS=1 (as `make test` sets it) a missing tool fails a
// test instead of skipping it, so CI cannot go green by testing nothing.
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ModulePath is the main module's path; RepoRoot looks for its go.mod.
const ModulePath = "github.com/byodrop/byodrop"

// Environment variables read by this package.
const (
	// EnvBinDir overrides the directory holding the pinned tool binaries.
	EnvBinDir = "BYODROP_BIN_DIR"
	// EnvRequireTools, set to 1, turns a missing tool into a test failure.
	EnvRequireTools = "BYODROP_REQUIRE_TOOLS"
)

// RepoRoot returns the directory of the byodrop go.mod, found by walking up
// from the working directory. Tests run in their package directory and the
// commands from the repository root, so both find it.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repository root: %w", err)
	}
	for {
		if isByodropModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root: no go.mod for module %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

// isByodropModule reports whether the go.mod at path declares ModulePath; the
// tools/ module has its own go.mod, which must not be mistaken for the root.
func isByodropModule(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == ModulePath
		}
	}
	return false
}

// BinDir returns where the pinned tools live: $BYODROP_BIN_DIR, else
// <repo root>/bin, else "" when neither is known (then only PATH is searched).
func BinDir() string {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return dir
	}
	root, err := RepoRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, "bin")
}

// Tool returns the path of an executable: the one in BinDir if present, else
// the one found on PATH. The error says how to get it.
func Tool(name string) (string, error) {
	if dir := BinDir(); dir != "" {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	where := "PATH"
	if dir := BinDir(); dir != "" {
		where = dir + " or PATH"
	}
	return "", fmt.Errorf("tool %q not found in %s (%s)", name, where, installHint(name))
}

func installHint(name string) string {
	switch name {
	case "qemu-aarch64-static":
		return "install the Debian package qemu-user-static, as .ci/run does"
	case "versitygw", "aws-lambda-rie", "staticcheck":
		return "run `make tools`"
	}
	return "install it or put it on PATH"
}

// RequireTool returns the path of the named tool. When it is missing the test
// is skipped with the reason, or fails when BYODROP_REQUIRE_TOOLS=1.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := Tool(name)
	if err == nil {
		return p
	}
	if ToolsRequired() {
		t.Fatalf("%v; %s=1 makes missing tools an error", err, EnvRequireTools)
	}
	t.Skipf("skipping: %v", err)
	return ""
}

// ToolsRequired reports whether BYODROP_REQUIRE_TOOLS=1 is set.
func ToolsRequired() bool { return os.Getenv(EnvRequireTools) == "1" }

// FreePort returns a loopback TCP port that was free a moment ago. The caller
// hands it to a child process, so a rare race with another listener remains;
// the Start functions retry on it.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("free port: listener has no TCP address")
	}
	return addr.Port, nil
}
