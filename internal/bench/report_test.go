package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseGoBenchmarksReadsEveryMetric(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/byodrop/byodrop/internal/csvcheck
cpu: AMD EPYC
BenchmarkValidate-2      	       2	 620000000 ns/op	 108.25 MB/s	         0.3720 allocs/MB	   66824 B/op	      25 allocs/op
BenchmarkEncodingCSV     	       1	1200000000 ns/op	  55.00 MB/s	      4144 allocs/MB	65854132 B/op	  278091 allocs/op
PASS
ok  	github.com/byodrop/byodrop/internal/csvcheck	5.1s
`
	got := ParseGoBenchmarks(out)
	if len(got) != 2 {
		t.Fatalf("parsed %d results, want 2: %+v", len(got), got)
	}
	v := got[0]
	if v.Name != "BenchmarkValidate" || v.N != 2 || v.Metrics["MB/s"] != 108.25 || v.Metrics["allocs/MB"] != 0.372 ||
		v.Metrics["B/op"] != 66824 || v.Metrics["allocs/op"] != 25 {
		t.Errorf("first result = %+v", v)
	}
	if got[1].Name != "BenchmarkEncodingCSV" || got[1].Metrics["allocs/MB"] != 4144 {
		t.Errorf("second result (no GOMAXPROCS suffix) = %+v", got[1])
	}
}

func TestInitDurationReadsTheInitPhaseNotTheInvokePhase(t *testing.T) {
	logs := `28 Nov 2026 11:05:47,406 [INFO] (rapid) INIT START(type: on-demand, phase: init)
28 Nov 2026 11:05:47,420 [INFO] (rapid) INIT RTDONE(status: success)
28 Nov 2026 11:05:47,420 [INFO] (rapid) INIT REPORT(durationMs: 14.642000)
28 Nov 2026 11:05:47,420 [INFO] (rapid) INIT START(type: on-demand, phase: invoke)
28 Nov 2026 11:05:47,420 [INFO] (rapid) INIT REPORT(durationMs: 0.039000)
REPORT RequestId: 81efe9cf	Init Duration: 0.03 ms	Duration: 19.60 ms	Billed Duration: 20 ms
`
	d, ok := InitDuration(logs)
	if !ok || d != 14642*time.Microsecond {
		t.Fatalf("InitDuration = %v, %v; want 14.642ms", d, ok)
	}
	if _, ok := InitDuration("REPORT RequestId: x\tInit Duration: 0.03 ms\tDuration: 1 ms"); ok {
		t.Fatal("InitDuration found an init phase in output without one")
	}
}

func TestWriteDocKeepsTheTextOutsideTheMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := WriteDoc(path, "first figures"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# Benchmarks") || !strings.Contains(string(data), markerBegin+"\n\nfirst figures\n\n"+markerEnd) {
		t.Fatalf("new page:\n%s", data)
	}
	edited := "# Benchmarks\n\nHow to read this: by hand.\n\n" + markerBegin + "\nold\n" + markerEnd + "\n\n## Findings\n\nAlso by hand.\n"
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDoc(path, "new figures\n"); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	want := "# Benchmarks\n\nHow to read this: by hand.\n\n" + markerBegin + "\n\nnew figures\n\n" + markerEnd + "\n\n## Findings\n\nAlso by hand.\n"
	if string(data) != want {
		t.Fatalf("rewritten page:\n%s\nwant:\n%s", data, want)
	}
}

func TestGoalsJudgeTheFigures(t *testing.T) {
	size := func(mib int, cs Checksums, plain, ingest time.Duration) SizeResult {
		bytes := int64(mib) << 20
		gib := float64(bytes) / (1 << 30)
		return SizeResult{MiB: mib, Checksums: cs, Bytes: bytes, Plain: []time.Duration{plain}, Ingest: []time.Duration{ingest},
			Peak: Memory{Peak: 20 << 20}, Graph: map[string]int{"upload": 1},
			// 2.2 s of bootstrap CPU per GiB against 2 s for the plain
			// copy client.
			BootstrapCPU: time.Duration(2.2 * gib * float64(time.Second)), PlainCPU: time.Duration(2 * gib * float64(time.Second)),
			EmulatorCPU: time.Duration(gib * float64(time.Second)),
			Small:       []time.Duration{8 * time.Millisecond, 9 * time.Millisecond, 30 * time.Millisecond}}
	}
	base := func() *Results {
		return &Results{
			Sizes: []SizeResult{
				size(100, Relaxed, time.Second, 1050*time.Millisecond),
				size(1024, Relaxed, 10*time.Second, 10400*time.Millisecond),
				size(100, AWSDefault, time.Second, 1050*time.Millisecond),
				size(1024, AWSDefault, 10*time.Second, 10400*time.Millisecond),
			},
			Steady:   Steady{Files: 10, Graph: map[string]int{"upload": 10}, S3: map[string]int{"GetObject (claim)": 30, "PutObject (claim)": 30}},
			Cold:     Cold{Inits: []time.Duration{40 * time.Millisecond, 60 * time.Millisecond}},
			Binaries: []Binary{{"ingest", 12 << 20}, {"finalize", 11 << 20}},
			CSV:      []GoBenchmark{{Name: "BenchmarkValidate", Metrics: map[string]float64{"MB/s": 2500, "allocs/MB": 0.1}}},
		}
	}
	verdicts := func(r *Results) map[string]string {
		out := map[string]string{}
		for _, g := range r.Goals() {
			out[g.Name] = g.Met
		}
		return out
	}
	const (
		ratio1G    = "Ingest throughput vs plain copy, 1 GiB (S3 checksums relaxed (local))"
		ratio100   = "Ingest throughput vs plain copy, 100 MiB (S3 checksums relaxed (local))"
		ratioAWS   = "Ingest throughput vs plain copy, 1 GiB (S3 checksums as in AWS)"
		cpu1G      = "Bootstrap CPU per GiB vs plain copy client, 1 GiB (S3 checksums relaxed (local))"
		cpuAWS100  = "Bootstrap CPU per GiB vs plain copy client, 100 MiB (S3 checksums as in AWS)"
		smallFile  = "Warm small file (256 KiB) invocation (S3 checksums relaxed (local))"
		peakRSS    = "Bootstrap peak RSS, every size"
		s3PerFile  = "S3 requests per file, steady state"
		validation = "CSV validation alone"
	)
	tests := []struct {
		name   string
		change func(*Results)
		goal   string
		want   string
	}{
		{"all met", func(*Results) {}, ratio1G, "yes"},
		{"all met: 100 MiB", func(*Results) {}, ratio100, "yes"},
		{"all met: CPU", func(*Results) {}, cpu1G, "yes"},
		{"all met: small file", func(*Results) {}, smallFile, "yes"},
		{"all met: S3 requests", func(*Results) {}, s3PerFile, "yes"},
		{"slow ingest", func(r *Results) { r.Sizes[1].Ingest[0] = 11 * time.Second }, ratio1G, "no"},
		{"slow ingest at 100 MiB", func(r *Results) { r.Sizes[0].Ingest[0] = 1200 * time.Millisecond }, ratio100, "no"},
		{"slow ingest with AWS checksums only", func(r *Results) { r.Sizes[3].Ingest[0] = 11 * time.Second }, ratioAWS, "no"},
		{"the other setting is judged apart", func(r *Results) { r.Sizes[3].Ingest[0] = 11 * time.Second }, ratio1G, "yes"},
		{"CPU-hungry bootstrap", func(r *Results) { r.Sizes[1].BootstrapCPU *= 2 }, cpu1G, "no"},
		{"CPU-hungry bootstrap at 100 MiB with AWS checksums", func(r *Results) { r.Sizes[2].BootstrapCPU *= 2 }, cpuAWS100, "no"},
		{"slow small files", func(r *Results) { r.Sizes[0].Small = []time.Duration{20 * time.Millisecond} }, smallFile, "no"},
		{"memory over the limit", func(r *Results) { r.Sizes[1].Peak.Peak = 33 << 20 }, peakRSS, "no"},
		{"memory grows with the file", func(r *Results) { r.Sizes[0].Peak.Peak = 10 << 20; r.Sizes[1].Peak.Peak = 30 << 20 }, peakRSS, "no"},
		{"a Graph read per file", func(r *Results) { r.Steady.Graph["get"] = 10 }, "Graph requests per file, steady state", "no"},
		{"a token per file", func(r *Results) { r.Steady.Graph["token"] = 10; r.Steady.Graph["upload"] = 0 }, "Graph requests per file, steady state", "no"},
		{"seven S3 requests per file", func(r *Results) { r.Steady.S3["PutObject (report)"] = 10 }, s3PerFile, "no"},
		{"slow start", func(r *Results) { r.Cold.Inits = []time.Duration{200 * time.Millisecond} }, "Cold start (init phase, host build)", "no"},
		{"big binary", func(r *Results) { r.Binaries[1].Bytes = 21 << 20 }, "Binary size (linux/arm64, Makefile flags)", "no"},
		{"slow validator", func(r *Results) { r.CSV[0].Metrics["MB/s"] = 1500 }, validation, "no"},
		{"no 1 GiB run", func(r *Results) { r.Sizes = r.Sizes[:1] }, ratio1G, "not measured (SIZES without 1024)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.change(r)
			got, ok := verdicts(r)[tt.goal]
			if !ok || got != tt.want {
				t.Fatalf("%s: %q, want %q (all: %v)", tt.goal, got, tt.want, verdicts(r))
			}
		})
	}
}

func TestMarkdownShowsPerFileCounts(t *testing.T) {
	r := &Results{
		Sizes: []SizeResult{{MiB: 100, Checksums: Relaxed, Bytes: 100 << 20, Rows: 434479, Plain: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second},
			Ingest: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}, Graph: map[string]int{"upload": 3}}},
		Steady: Steady{Files: 4, Graph: map[string]int{"upload": 4}, S3: map[string]int{"GetObject (claim)": 4, "GetObject (the object)": 2, "PutObject (report)": 4}},
	}
	md := r.Markdown()
	for _, want := range []string{
		"| 100 MiB | relaxed (local) | 434,479 | 3 | 52 MB/s | 52 MB/s | 1.00 | 0.50–1.50 |", // medians: 2s and 2s
		"1.00 (upload 1)",
		"| S3 | GetObject (the object) | 0.5 |",
		"| S3 | PutObject (report) | 1 |",
		"2.50 (GetObject 1.5, PutObject 1)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestWriteLoadedDocKeepsTheOtherFigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := WriteDoc(path, "quiet figures"); err != nil {
		t.Fatal(err)
	}
	if err := WriteLoadedDoc(path, "loaded figures"); err != nil {
		t.Fatal(err)
	}
	if err := WriteDoc(path, "new quiet figures"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{markerBegin + "\n\nnew quiet figures\n\n" + markerEnd, loadMarkerBegin + "\n\nloaded figures\n\n" + loadMarkerEnd} {
		if !strings.Contains(string(data), want) {
			t.Errorf("page lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "quiet figures\n\n"+markerEnd+"\n\n"+markerBegin) || strings.Count(string(data), markerBegin) != 1 {
		t.Errorf("page has the quiet figures twice:\n%s", data)
	}
}
