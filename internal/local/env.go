// Package local runs byodrop on one machine with no AWS account: an
// S3-compatible server (versitygw), the Graph emulator, and both functions
// as real Lambda bootstraps under the Lambda runtime interface emulator. It
// is what `make local`, `make invoke-ingest` and `make invoke-finalize` run
// (through cmd/byodrop-local), and what the end-to-end tests start.
package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/testenv"
)

// The local buckets. The drop bucket's name is the one the sample events in
// events/ carry.
//
// The ledger lives in a separate, unversioned state bucket: versitygw keeps
// refusing PutObject with If-None-Match: * on a key that was deleted in a
// versioned bucket (its delete marker still counts as the object), where
// AWS S3 accepts it, and the ledger's create-only writes depend on that.
// In AWS, STATE_BUCKET may well be the drop bucket itself.
const (
	DropBucket  = "byodrop-local"
	StateBucket = "byodrop-local-state"
)

// The functions, by their SAM logical ids (the keys of events/env.json).
const (
	IngestFunction   = "IngestFunction"
	FinalizeFunction = "FinalizeFunction"
	DiscoverFunction = "DiscoverFunction"
)

// Bootstraps are built function executables.
type Bootstraps struct {
	// Ingest and Finalize are the bootstraps' paths; an empty path means
	// that function is not started.
	Ingest, Finalize, Discover string
	// Arch is their GOARCH ("" means the host's); arm64 on another host
	// runs under qemu-aarch64-static.
	Arch string
}

// BuildBootstraps builds the functions for the host, with the Makefile's
// flags, into dir/ingest/bootstrap and dir/finalize/bootstrap: both, or
// only one when only is "ingest" or "finalize".
func BuildBootstraps(ctx context.Context, dir, only string) (Bootstraps, error) {
	var b Bootstraps
	var err error
	if only != "finalize" && only != "discover" {
		if b.Ingest, err = testenv.BuildBootstrap(ctx, "./functions/ingest", "", "", filepath.Join(dir, "ingest")); err != nil {
			return Bootstraps{}, err
		}
	}
	if only != "ingest" && only != "discover" {
		if b.Finalize, err = testenv.BuildBootstrap(ctx, "./functions/finalize", "", "", filepath.Join(dir, "finalize")); err != nil {
			return Bootstraps{}, err
		}
	}
	if only == "" || only == "discover" {
		if b.Discover, err = testenv.BuildBootstrap(ctx, "./functions/discover", "", "", filepath.Join(dir, "discover")); err != nil {
			return Bootstraps{}, err
		}
	}
	return b, nil
}

// Options configure Start. The zero value builds the bootstraps and reads
// events/env.json of the repository.
type Options struct {
	// Root is the repository root (default: found from the working
	// directory); events/ is read from it.
	Root string
	// EnvFile holds the functions' settings in the format of
	// `sam local invoke --env-vars` (default <Root>/events/env.json).
	EnvFile string
	// Bootstraps, when set, are used instead of building them.
	Bootstraps *Bootstraps
	// Only, when "ingest" or "finalize", builds and starts that function
	// alone.
	Only string
	// IngestEnv and FinalizeEnv (KEY=VALUE) are applied last, over the
	// settings file and the endpoints of the local servers.
	IngestEnv, FinalizeEnv, DiscoverEnv []string
	// Progress receives one short line per step (default: discarded).
	Progress io.Writer
	// FunctionOutput, when set, also receives what the runtime emulators
	// and the functions print; it is always kept (see FunctionLogs).
	FunctionOutput io.Writer
	// KeepEnvFile, for Run (make local KEEP=1): after the summary, the
	// functions and the Graph emulator stop, but the S3 server keeps what
	// the run left until the context ends, and this file holds the AWS
	// SDK settings that reach it (for make status LOCAL=1). It is removed
	// when the server stops.
	KeepEnvFile string
}

// Env is a running local byodrop: the S3 server with the drop and state
// buckets, the Graph emulator, and one runtime emulator per function.
type Env struct {
	Root     string
	S3       *testenv.S3Server
	S3Client *s3.Client
	Emu      *graphemu.Server
	// Ingest and Finalize are nil when their bootstrap was not given.
	Ingest, Finalize, Discover *testenv.RIE
	// IngestEnv, FinalizeEnv and DiscoverEnv are the settings each
	// function runs with.
	IngestEnv, FinalizeEnv, DiscoverEnv map[string]string
	// Settings are the ingest function's settings as it reads them.
	Settings config.Settings

	progress io.Writer
	fnOut    *gate // FunctionOutput, closed first by Close
	tempDirs []string
	seeded   map[string]Seeded // by bucket/key, see SeedEvent
}

// Start starts everything. On error, what was started is stopped again.
// Close stops it all.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	e := &Env{Root: opts.Root, progress: opts.Progress, fnOut: &gate{w: opts.FunctionOutput}}
	if e.progress == nil {
		e.progress = io.Discard
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Root == "" {
		if e.Root, err = testenv.RepoRoot(); err != nil {
			return nil, err
		}
	}
	envFile := opts.EnvFile
	if envFile == "" {
		envFile = filepath.Join(e.Root, "events", "env.json")
	}
	file, err := ReadEnvFile(envFile)
	if err != nil {
		return nil, err
	}
	// Find the tools before starting anything, so that a missing one is
	// the whole message.
	for _, tool := range []string{"versitygw", "aws-lambda-rie"} {
		if _, err := testenv.Tool(tool); err != nil {
			return nil, err
		}
	}

	e.say("starting S3 server (versitygw)…")
	if e.S3, err = testenv.StartS3(ctx, testenv.S3Options{}); err != nil {
		return nil, err
	}
	e.S3Client = e.S3.Client()
	if err := e.S3.CreateBucket(ctx, DropBucket, true); err != nil {
		return nil, err
	}
	if err := e.S3.CreateBucket(ctx, StateBucket, false); err != nil {
		return nil, err
	}
	e.say("  S3 server on %s: drop bucket %s (versioned), state bucket %s (unversioned)", e.S3.Endpoint, DropBucket, StateBucket)

	e.say("starting Graph emulator…")
	if e.Emu, err = graphemu.Start(graphemu.Options{}); err != nil {
		return nil, err
	}
	e.say("  Graph emulator on %s (token authority %s)", e.Emu.URL(), e.Emu.AuthorityHost())

	live := e.liveSettings()
	e.IngestEnv = file.For(IngestFunction, live, opts.IngestEnv)
	e.FinalizeEnv = file.For(FinalizeFunction, live, opts.FinalizeEnv)
	e.DiscoverEnv = file.For(DiscoverFunction, live, opts.DiscoverEnv)
	if e.Settings, err = config.FromEnv(lookup(e.IngestEnv)); err != nil {
		return nil, fmt.Errorf("%s settings (from %s): %w", IngestFunction, envFile, err)
	}
	if _, err := config.FromEnv(lookup(e.FinalizeEnv)); err != nil {
		return nil, fmt.Errorf("%s settings (from %s): %w", FinalizeFunction, envFile, err)
	}
	if _, err := config.FromEnv(lookup(e.DiscoverEnv)); err != nil {
		return nil, fmt.Errorf("%s settings (from %s): %w", DiscoverFunction, envFile, err)
	}

	bs := opts.Bootstraps
	if bs == nil {
		dir, err := os.MkdirTemp("", "byodrop-local-")
		if err != nil {
			return nil, err
		}
		e.tempDirs = append(e.tempDirs, dir)
		e.say("building host bootstraps (%s/%s, flags as in the Makefile)…", runtime.GOOS, runtime.GOARCH)
		start := time.Now()
		b, err := BuildBootstraps(ctx, dir, opts.Only)
		if err != nil {
			return nil, err
		}
		bs = &b
		e.say("  built in %.1fs", time.Since(start).Seconds())
	}

	if bs.Discover != "" && (opts.Only == "" || opts.Only == "discover") {
		if e.Discover, err = e.startRIE(ctx, DiscoverFunction, bs.Discover, bs.Arch, e.DiscoverEnv); err != nil {
			return nil, err
		}
	}
	if bs.Ingest != "" && opts.Only != "finalize" && opts.Only != "discover" {
		if e.Ingest, err = e.startRIE(ctx, IngestFunction, bs.Ingest, bs.Arch, e.IngestEnv); err != nil {
			return nil, err
		}
	}
	if bs.Finalize != "" && opts.Only != "ingest" && opts.Only != "discover" {
		if e.Finalize, err = e.startRIE(ctx, FinalizeFunction, bs.Finalize, bs.Arch, e.FinalizeEnv); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// liveSettings are the settings that point the functions at the servers
// started here, whatever the settings file says.
func (e *Env) liveSettings() map[string]string {
	m := map[string]string{}
	for _, kv := range e.S3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	o := e.Emu.Options()
	m["GRAPH_ENDPOINT"] = e.Emu.URL()
	m["AZURE_AUTHORITY_HOST"] = e.Emu.AuthorityHost()
	m["AZURE_TENANT_ID"] = o.TenantID
	m["AZURE_CLIENT_ID"] = o.ClientID
	m["AZURE_CLIENT_SECRET"] = o.ClientSecret
	m["STATE_BUCKET"] = StateBucket
	m["DROP_BUCKET"] = DropBucket
	// The emulator's certificate comes from a CA generated for this run.
	m["SSL_CERT_FILE"] = e.Emu.CAFile()
	return m
}

func (e *Env) startRIE(ctx context.Context, name, bootstrap, arch string, env map[string]string) (*testenv.RIE, error) {
	how := "under the Lambda runtime interface emulator"
	if arch != "" && arch != runtime.GOARCH {
		how += " (" + arch + " via qemu-aarch64-static)"
	}
	r, err := testenv.StartRIE(ctx, testenv.RIEOptions{
		Bootstrap: bootstrap, Arch: arch, Env: environ(env), FunctionName: name,
		Timeout: 5 * time.Minute, Output: e.fnOut,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	e.say("started %s %s at %s", name, how, r.Endpoint)
	return r, nil
}

// RIE returns the runtime emulator of function ("ingest" or "finalize",
// or the SAM logical id).
func (e *Env) RIE(function string) (*testenv.RIE, error) {
	var r *testenv.RIE
	switch function {
	case "ingest", IngestFunction:
		r = e.Ingest
	case "finalize", FinalizeFunction:
		r = e.Finalize
	case "discover", DiscoverFunction:
		r = e.Discover
	default:
		return nil, fmt.Errorf("unknown function %q: want ingest, finalize or discover", function)
	}
	if r == nil {
		return nil, fmt.Errorf("function %s was not started", function)
	}
	return r, nil
}

// FunctionLogs returns what the runtime emulators and the functions printed.
func (e *Env) FunctionLogs() string {
	var b strings.Builder
	for _, r := range []*testenv.RIE{e.Ingest, e.Finalize, e.Discover} {
		if r != nil {
			b.WriteString(r.Logs())
		}
	}
	return b.String()
}

// Close stops everything Start started and removes its temporary files. It
// may be called more than once.
func (e *Env) Close() {
	// What the emulators say while they are stopped is noise.
	if e.fnOut != nil {
		e.fnOut.close()
	}
	if e.Ingest != nil {
		e.Ingest.Close()
	}
	if e.Finalize != nil {
		e.Finalize.Close()
	}
	if e.Discover != nil {
		e.Discover.Close()
	}
	if e.Emu != nil {
		e.Emu.Close()
	}
	if e.S3 != nil {
		e.S3.Close()
	}
	for _, d := range e.tempDirs {
		os.RemoveAll(d)
	}
	e.tempDirs = nil
}

func (e *Env) say(format string, args ...any) {
	fmt.Fprintf(e.progress, format+"\n", args...)
}

func lookup(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// environ turns settings into KEY=VALUE lines, sorted for stable logs.
func environ(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// gate passes writes to w (when set) until it is closed.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.w != nil && !g.closed {
		_, _ = g.w.Write(p) // a failing terminal must not break the emulator's pipe
	}
	return len(p), nil
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
