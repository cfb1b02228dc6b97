package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildFlags are the go build flags of a Lambda bootstrap, the same as the
// Makefile's: no RPC mode (provided.al2023 speaks only the Runtime API),
// reproducible paths, stripped, no build id, no VCS stamp.
var BuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// BuildBootstrap builds the main package pkg (a path relative to the
// repository root such as ./functions/ingest, or an import path) for goos and
// goarch ("" means the host's) with CGO disabled, and writes
// outDir/bootstrap. It returns that path.
func BuildBootstrap(ctx context.Context, pkg, goos, goarch, outDir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	out, err := filepath.Abs(filepath.Join(outDir, "bootstrap"))
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	args := append([]string{"build"}, BuildFlags...)
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos)
	}
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s for %s/%s: %w\n%s", pkg, orHost(goos, "GOOS"), orHost(goarch, "GOARCH"), err, msg)
	}
	return out, nil
}

func orHost(v, name string) string {
	if v != "" {
		return v
	}
	return "host " + name
}
