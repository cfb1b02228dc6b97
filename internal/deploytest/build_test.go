package deploytest

import (
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/testenv"
)

// TestBuildIngestFunctionRunsOnArm64 builds the ingest bootstrap exactly as
// `sam build` does (the Makefile target), checks it is a static, stripped
// arm64 ELF, and has it answer an invocation under the runtime emulator
// through qemu, with the local S3 server and the Graph emulator behind it.
func TestBuildIngestFunctionRunsOnArm64(t *testing.T) {
	mk := testenv.RequireTool(t, "make")
	rie := testenv.RequireTool(t, "aws-lambda-rie")
	testenv.RequireTool(t, "qemu-aarch64-static")
	s3 := testenv.S3(t)

	artifacts := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mk, "--no-print-directory", "build-IngestFunction", "ARTIFACTS_DIR="+artifacts)
	cmd.Dir = repoPath(t, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build-IngestFunction: %v\n%s", err, out)
	}
	bootstrap := filepath.Join(artifacts, "bootstrap")
	checkLambdaELF(t, bootstrap)

	emu, err := graphemu.Start(graphemu.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)

	var envFile map[string]map[string]string
	if err := json.Unmarshal(readEvent(t, "env.json"), &envFile); err != nil {
		t.Fatal(err)
	}
	settings := envFile["IngestFunction"]
	for _, b := range []struct {
		name      string
		versioned bool
	}{{"byodrop-local", true}, {settings["STATE_BUCKET"], false}} {
		if err := s3.CreateBucket(ctx, b.name, b.versioned); err != nil {
			t.Fatal(err)
		}
	}
	// What make invoke-* does too: env.json, with the real endpoints.
	settings["GRAPH_ENDPOINT"] = emu.URL()
	settings["AZURE_AUTHORITY_HOST"] = emu.AuthorityHost()
	var env []string
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	env = append(env, s3.Env()...)
	env = append(env, "SSL_CERT_FILE="+emu.CAFile())

	r, err := testenv.StartRIE(ctx, testenv.RIEOptions{
		Bootstrap: bootstrap, Arch: "arm64", Binary: rie, Env: env,
		FunctionName: "IngestFunction", Timeout: 60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if t.Failed() {
			t.Logf("emulator output:\n%s", r.Logs())
		}
	})
	// S3's test event must be acknowledged and ignored.
	res, err := r.Invoke(ctx, readEvent(t, "s3-test-event.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.FunctionError {
		t.Fatalf("arm64 ingest answered the S3 test event with %s: %s", res.ErrorType, res.ErrorMessage)
	}
	if !res.ColdStart {
		t.Errorf("no cold start reported: the REPORT line is missing from the emulator's output")
	}
	t.Logf("arm64 ingest under qemu: first invocation %v (emulator: %v)", res.Elapsed, res.Duration)
}

// TestBuildDiscoverFunctionIsAnArm64Bootstrap builds the discover
// bootstrap as `sam build` does and checks the binary; it runs under the
// runtime emulator in internal/local's tests.
func TestBuildDiscoverFunctionIsAnArm64Bootstrap(t *testing.T) {
	mk := testenv.RequireTool(t, "make")
	artifacts := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mk, "--no-print-directory", "build-DiscoverFunction", "ARTIFACTS_DIR="+artifacts)
	cmd.Dir = repoPath(t, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build-DiscoverFunction: %v\n%s", err, out)
	}
	checkLambdaELF(t, filepath.Join(artifacts, "bootstrap"))
}

func checkLambdaELF(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("%s: %v %v, want a 64-bit arm64 ELF", path, f.Class, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked; want CGO_ENABLED=0", path)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: not stripped; want -ldflags=-s -w", path)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode()&0o111 == 0 {
		t.Errorf("%s: not executable", path)
	}
}
