package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/byodrop/byodrop/internal/testenv"
)

// Options configure Run. Zero fields take the defaults.
type Options struct {
	// SizesMiB are the file sizes of the throughput runs (default 10, 100,
	// 1024).
	SizesMiB []int
	// Runs is the number of timed runs per size, of which the median is
	// reported (default 3).
	Runs int
	// SteadyFiles is the number of files counted in steady state (default 10).
	SteadyFiles int
	// ColdStarts is the number of fresh starts averaged (default 5).
	ColdStarts int
	// ProfileDir, when set, receives CPU profiles of an in-process ingest
	// and of a plain copy of the largest size, and of small files
	// (ingest.pprof, plain.pprof, small.pprof).
	ProfileDir string
	// Checksums are the S3 client settings each size is measured with
	// (default: Relaxed, then AWSDefault).
	Checksums []Checksums
	// Load is the number of CPU-bound processes kept running in the
	// background for the whole measurement, each busy on one core: the
	// cores contended, as a Lambda function's fraction of a vCPU is.
	Load int
	// Spin is the command that starts one background process; Run starts
	// Load of them and stops them at its end (cmd/bench runs itself).
	Spin func(ctx context.Context) *exec.Cmd
	// Self is this program, started again as the plain copy client
	// process (see ServePlainCopies).
	Self string
	// Progress receives a line per step (default: discarded).
	Progress io.Writer
}

// DefaultSizesMiB are the file sizes of a full run.
var DefaultSizesMiB = []int{10, 100, 1024}

// Small files: warm-ups and the steady-state files.
const smallFile = 256 << 10

// smallFiles is the number of small files timed per size and setting.
const smallFiles = 5

// Run measures everything on this machine and returns the figures. It
// starts versitygw and the Graph emulator, builds the bootstraps, and
// leaves nothing behind.
func Run(ctx context.Context, opts Options) (*Results, error) {
	if len(opts.SizesMiB) == 0 {
		opts.SizesMiB = DefaultSizesMiB
	}
	if opts.Runs <= 0 {
		opts.Runs = 3
	}
	if opts.SteadyFiles <= 0 {
		opts.SteadyFiles = 10
	}
	if opts.ColdStarts <= 0 {
		opts.ColdStarts = 5
	}
	if len(opts.Checksums) == 0 {
		opts.Checksums = []Checksums{Relaxed, AWSDefault}
	}
	say := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, format+"\n", args...)
		}
	}
	started := time.Now()
	res := &Results{Machine: ThisMachine(), Date: started.UTC(), Load: opts.Load}
	if opts.Load > 0 {
		if opts.Spin == nil {
			return nil, fmt.Errorf("a background load of %d needs Options.Spin", opts.Load)
		}
		stop, err := startLoad(ctx, opts.Load, opts.Spin)
		if err != nil {
			return nil, err
		}
		defer stop()
		say("background load: %d CPU-bound process(es) for the whole run", opts.Load)
	}
	res.LoadBefore = LoadAverage()
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	for _, tool := range []string{"versitygw", "aws-lambda-rie"} {
		if _, err := testenv.Tool(tool); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "byodrop-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	say("building the bootstraps (for this host to run them, for linux/arm64 to weigh them)…")
	bootstrap, err := testenv.BuildBootstrap(ctx, "./functions/ingest", "", "", filepath.Join(dir, "host"))
	if err != nil {
		return nil, err
	}
	for _, fn := range []string{"ingest", "finalize"} {
		path, err := testenv.BuildBootstrap(ctx, "./functions/"+fn, "linux", "arm64", filepath.Join(dir, "arm64", fn))
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		res.Binaries = append(res.Binaries, Binary{Function: fn, Bytes: fi.Size()})
		say("  %s (linux/arm64): %.1f MiB", fn, float64(fi.Size())/(1<<20))
	}

	say("starting versitygw and the Graph emulator…")
	w, err := startWorld(ctx)
	if err != nil {
		return nil, err
	}
	defer w.close()
	ip, err := w.inProcess()
	if err != nil {
		return nil, err
	}
	plain, err := ip.graph.Create(ctx, target(plainReview))
	if err != nil {
		return nil, fmt.Errorf("creating the plain copies' session: %w", err)
	}
	if opts.Self == "" {
		return nil, fmt.Errorf("the plain copy client process needs Options.Self")
	}
	b := &bencher{w: w, ip: ip, bootstrap: bootstrap, say: say, self: opts.Self,
		plainURL: w.uploadURL(target(plainReview), plain.ID), token: w.emu.IssueToken(), hc: w.httpClient()}

	for _, cs := range opts.Checksums {
		if cs != AWSDefault {
			continue
		}
		o, _, err := w.put(ctx, dropKey(plainReview, "checksum.csv"), smallFile)
		if err != nil {
			return nil, err
		}
		if err := w.checkChecksums(ctx, o); err != nil {
			return nil, err
		}
	}
	for _, mib := range opts.SizesMiB {
		for _, cs := range opts.Checksums {
			sr, err := b.size(ctx, mib, opts.Runs, cs)
			if err != nil {
				return nil, fmt.Errorf("%d MiB, S3 checksums %s: %w", mib, cs.Label(), err)
			}
			res.Sizes = append(res.Sizes, sr)
		}
	}
	if res.Steady, err = b.steady(ctx, opts.SteadyFiles); err != nil {
		return nil, fmt.Errorf("steady state: %w", err)
	}
	if res.Cold, err = b.cold(ctx, opts.ColdStarts); err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	if opts.ProfileDir != "" {
		if err := b.profile(ctx, opts.ProfileDir, opts.SizesMiB[len(opts.SizesMiB)-1]); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	say("running the CSV validator's benchmarks (go test -bench)…")
	if res.CSV, err = RunGoBenchmarks(ctx, root, "./internal/csvcheck", "^Benchmark(Validate|EncodingCSV)$"); err != nil {
		return nil, err
	}
	res.Elapsed, res.LoadAfter = time.Since(started), LoadAverage()
	return res, nil
}

// bencher runs the measurements against one world.
type bencher struct {
	w         *world
	ip        *inProcess
	bootstrap string
	say       func(string, ...any)
	plainURL  string
	token     string
	self      string
	// hc carries the plain copies: set up as app.Load sets up the
	// bootstrap's Graph client, and kept, as a warm bootstrap keeps its own.
	hc *http.Client
}

// startRIE starts the bootstrap under a fresh runtime emulator with the S3
// checksum setting cs; its own log level is info, the level of its INIT
// REPORT line.
func (b *bencher) startRIE(ctx context.Context, cs Checksums) (*testenv.RIE, error) {
	return testenv.StartRIE(ctx, testenv.RIEOptions{
		Bootstrap: b.bootstrap, Env: b.w.functionEnv(cs), FunctionName: "IngestFunction",
		Timeout: 15 * time.Minute, LogLevel: "info",
	})
}

// invoke sends o's event to the bootstrap and checks that o was uploaded.
func (b *bencher) invoke(ctx context.Context, rie *testenv.RIE, o Object) (testenv.InvokeResult, time.Duration, error) {
	t0 := time.Now()
	res, err := rie.Invoke(ctx, event(o))
	d := time.Since(t0)
	if err != nil {
		return res, d, err
	}
	if res.FunctionError {
		return res, d, fmt.Errorf("ingest of %s failed: %s: %s\n%s", o.Key, res.ErrorType, res.ErrorMessage, tailLines(rie.Logs(), 20))
	}
	return res, d, b.w.checkUploaded(ctx, o)
}

// size measures one file size with one S3 checksum setting: a fresh
// runtime emulator, a warm-up file (token, session, connections), the
// small files, then the timed runs, each on a new object version, plain
// copy and ingest taking turns at going first.
func (b *bencher) size(ctx context.Context, mib, runs int, cs Checksums) (SizeResult, error) {
	sr := SizeResult{MiB: mib, Checksums: cs, Bytes: int64(mib) << 20, Graph: map[string]int{}}
	s3 := b.w.s3
	plain, err := startPlain(ctx, b.self, PlainConfig{S3Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		Checksums: cs, UploadURL: b.plainURL, Token: b.token, CAFile: b.w.emu.CAFile()})
	if err != nil {
		return sr, err
	}
	defer plain.close()
	rie, err := b.startRIE(ctx, cs)
	if err != nil {
		return sr, err
	}
	defer rie.Close()
	warm, _, err := b.w.put(ctx, dropKey(ingestReview, fmt.Sprintf("warm-%dmib.csv", mib)), smallFile)
	if err != nil {
		return sr, err
	}
	if _, _, err := b.invoke(ctx, rie, warm); err != nil {
		return sr, fmt.Errorf("warm-up: %w", err)
	}
	if _, _, err := plain.copy(warm, "warm.csv"); err != nil {
		return sr, fmt.Errorf("warm-up: %w", err)
	}
	pid, err := FindProcess(b.bootstrap)
	if err != nil {
		return sr, err
	}
	for i := range smallFiles {
		small, _, err := b.w.put(ctx, dropKey(ingestReview, fmt.Sprintf("small-%dmib-%s-%d.csv", mib, cs, i)), smallFile)
		if err != nil {
			return sr, err
		}
		cpu0, err := ProcessCPU(pid)
		if err != nil {
			return sr, err
		}
		_, d, err := b.invoke(ctx, rie, small)
		if err != nil {
			return sr, err
		}
		cpu1, err := ProcessCPU(pid)
		if err != nil {
			return sr, err
		}
		sr.Small, sr.SmallCPU = append(sr.Small, d), sr.SmallCPU+cpu1-cpu0
	}
	name := fmt.Sprintf("access-%dmib.csv", mib)
	for run := range runs {
		t0 := time.Now()
		obj, rows, err := b.w.put(ctx, dropKey(ingestReview, name), sr.Bytes)
		if err != nil {
			return sr, err
		}
		sr.Rows = rows
		put := time.Since(t0)
		plainCopy := func() error {
			d, cpu, err := plain.copy(obj, name)
			if err != nil {
				return err
			}
			sr.Plain = append(sr.Plain, d)
			sr.PlainCPU += cpu
			return nil
		}
		ingest := func() error {
			b.w.emu.ResetJournal()
			bcpu0, err := ProcessCPU(pid)
			if err != nil {
				return err
			}
			cpu0 := SelfCPU()
			_, d, err := b.invoke(ctx, rie, obj)
			if err != nil {
				return err
			}
			sr.EmulatorCPU += SelfCPU() - cpu0
			bcpu1, err := ProcessCPU(pid)
			if err != nil {
				return err
			}
			sr.BootstrapCPU += bcpu1 - bcpu0
			sr.Ingest = append(sr.Ingest, d)
			for _, r := range b.w.emu.Journal() {
				sr.Graph[r.Op]++
			}
			return nil
		}
		first, second := plainCopy, ingest
		if run%2 == 1 {
			first, second = ingest, plainCopy
		}
		if err := first(); err != nil {
			return sr, err
		}
		if err := second(); err != nil {
			return sr, err
		}
		b.say("%5d MiB (%s) run %d: put %v, plain copy %v (%.0f MB/s), ingest %v (%.0f MB/s)", mib, cs, run+1,
			put.Round(time.Millisecond),
			sr.Plain[run].Round(time.Millisecond), mbps(sr.Bytes, sr.Plain[run]),
			sr.Ingest[run].Round(time.Millisecond), mbps(sr.Bytes, sr.Ingest[run]))
		if err := b.w.remove(ctx, obj); err != nil {
			return sr, err
		}
	}
	if sr.Peak, err = ReadMemory(pid); err != nil {
		return sr, err
	}
	ingestCPU, plainCPU, _ := sr.CPUPerGiB()
	b.say("%5d MiB (%s): bootstrap peak RSS %.1f MiB; CPU per GiB %.2f s, plain copy client %.2f s (%.2f×); small file %v, %v CPU",
		mib, cs, float64(sr.Peak.Peak)/(1<<20), ingestCPU, plainCPU, sr.CPURatio(),
		sr.SmallMedian().Round(100*time.Microsecond), sr.SmallCPUPerFile().Round(100*time.Microsecond))
	return sr, nil
}

// steady counts the requests of files uploaded by the in-process handler
// into a session that exists, after a warm-up file.
func (b *bencher) steady(ctx context.Context, files int) (Steady, error) {
	st := Steady{Files: files, FileBytes: smallFile}
	objs := make([]Object, files+1)
	for i := range objs {
		o, _, err := b.w.put(ctx, dropKey(steadyReview, fmt.Sprintf("steady-%02d.csv", i)), smallFile)
		if err != nil {
			return st, err
		}
		objs[i] = o
	}
	for i, o := range objs {
		if i == 1 {
			b.w.emu.ResetJournal()
			b.ip.s3.Reset()
		}
		if err := b.ip.handler.Handle(ctx, event(o)); err != nil {
			return st, err
		}
		if err := b.w.checkUploaded(ctx, o); err != nil {
			return st, err
		}
	}
	st.S3 = b.ip.s3.Counts()
	st.Graph = map[string]int{}
	for _, r := range b.w.emu.Journal() {
		st.Graph[r.Op]++
	}
	b.say("steady state: %.2f Graph and %.2f S3 requests per file", st.GraphPerFile(), st.S3PerFile())
	return st, nil
}

// testEvent is S3's test notification, which ingest ignores: an invocation
// that measures the start alone.
const testEvent = `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"` + dropBucket + `","RequestId":"BENCH","HostId":"bench"}`

// cold starts the bootstrap n times afresh and records its init durations.
func (b *bencher) cold(ctx context.Context, n int) (Cold, error) {
	var c Cold
	for range n {
		rie, err := b.startRIE(ctx, Relaxed)
		if err != nil {
			return c, err
		}
		res, err := rie.Invoke(ctx, []byte(testEvent))
		logs := rie.Logs()
		rie.Close()
		switch {
		case err != nil:
			return c, err
		case res.FunctionError:
			return c, fmt.Errorf("test event: %s: %s", res.ErrorType, res.ErrorMessage)
		}
		init, ok := InitDuration(logs)
		if !ok {
			return c, fmt.Errorf("no INIT REPORT of the init phase in the runtime emulator's output:\n%s", tailLines(logs, 20))
		}
		c.Inits = append(c.Inits, init)
	}
	b.say("cold start: init %v on average over %d starts", c.Mean().Round(100*time.Microsecond), n)
	return c, nil
}

// profile writes CPU profiles of an in-process ingest and of a plain copy
// of a file of mib MiB, for `go tool pprof`.
func (b *bencher) profile(ctx context.Context, dir string, mib int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	size := int64(mib) << 20
	obj, _, err := b.w.put(ctx, dropKey(profileReview, fmt.Sprintf("profile-%dmib.csv", mib)), size)
	if err != nil {
		return err
	}
	defer b.w.remove(ctx, obj)
	// A warm-up, so that the profile holds the upload and not the session.
	warm, _, err := b.w.put(ctx, dropKey(profileReview, "warm.csv"), smallFile)
	if err != nil {
		return err
	}
	if err := b.ip.handler.Handle(ctx, event(warm)); err != nil {
		return err
	}
	run := func(name string, f func() error) error {
		out, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			return err
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return err
		}
		t0 := time.Now()
		err = f()
		pprof.StopCPUProfile()
		if err == nil {
			b.say("profile %s: %d MiB in %v (%.0f MB/s) in this process: %s", name, mib,
				time.Since(t0).Round(time.Millisecond), mbps(size, time.Since(t0)), out.Name())
		}
		return err
	}
	if err := run("ingest", func() error {
		if err := b.ip.handler.Handle(ctx, event(obj)); err != nil {
			return err
		}
		return b.w.checkUploaded(ctx, obj)
	}); err != nil {
		return err
	}
	if err := run("plain", func() error {
		_, err := PlainCopy(ctx, b.w.s3c, obj, b.hc, b.plainURL, b.token, "profile.csv")
		return err
	}); err != nil {
		return err
	}
	// Small files: what a file costs besides its bytes.
	var small []Object
	for i := range profileSmallFiles {
		o, _, err := b.w.put(ctx, dropKey(profileReview, fmt.Sprintf("small-%02d.csv", i)), smallFile)
		if err != nil {
			return err
		}
		small = append(small, o)
	}
	return run("small", func() error {
		for _, o := range small {
			if err := b.ip.handler.Handle(ctx, event(o)); err != nil {
				return err
			}
		}
		return nil
	})
}

// profileSmallFiles is the number of small files in small.pprof.
const profileSmallFiles = 50

// initReport is the emulator's line for the end of the init phase: from
// starting the bootstrap to its first request for an event. (The "Init
// Duration" of its REPORT line measures the invoke phase's own init step,
// which is empty for a started runtime, and reads about 0.03 ms.)
var initReport = regexp.MustCompile(`(?s)INIT START\(type: [^,]*, phase: init\).*?INIT REPORT\(durationMs: ([0-9.]+)\)`)

// InitDuration reads the init phase's duration from the runtime emulator's
// output (at log level info or lower).
func InitDuration(logs string) (time.Duration, bool) {
	m := initReport.FindStringSubmatch(logs)
	if m == nil {
		return 0, false
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	end := len(s)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' && i < end-1 {
			n--
			if n == 0 {
				return s[i+1:]
			}
		}
	}
	return s
}

// startLoad starts n background processes with spin and returns what stops
// them (each killed by its own process, then waited for).
func startLoad(ctx context.Context, n int, spin func(context.Context) *exec.Cmd) (stop func(), err error) {
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	for range n {
		c := spin(ctx)
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("starting the background load: %w", err)
		}
		cmds = append(cmds, c)
	}
	return stop, nil
}

// SpinEnv is set in the environment of a background-load process.
const SpinEnv = "BYODROP_BENCH_SPIN"

// Spin keeps one core busy until the process is killed: the background
// load of make bench LOAD=n.
func Spin() {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			fmt.Println(x) // never; keeps the loop from being removed
		}
	}
}
