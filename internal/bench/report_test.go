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
	base := func() *Results {
		return &Results{
			Sizes: []SizeResult{
				{MiB: 10, Bytes: 10 << 20, Plain: []time.Duration{time.Second}, Ingest: []time.Duration{time.Second},
					Peak: Memory{Peak: 20 << 20}, Graph: map[string]int{"upload": 1}},
				{MiB: 1024, Bytes: 1 << 30, Plain: []time.Duration{10 * time.Second}, Ingest: []time.Duration{10500 * time.Millisecond},
					Peak: Memory{Peak: 22 << 20}, Graph: map[string]int{"upload": 1}},
			},
			Steady:   Steady{Files: 10, Graph: map[string]int{"upload": 10}, S3: map[string]int{"GetObject": 50, "PutObject": 50}},
			Cold:     Cold{Inits: []time.Duration{40 * time.Millisecond, 60 * time.Millisecond}},
			Binaries: []Binary{{"ingest", 12 << 20}, {"finalize", 11 << 20}},
			CSV:      []GoBenchmark{{Name: "BenchmarkValidate", Metrics: map[string]float64{"MB/s": 1000, "allocs/MB": 0.1}}},
		}
	}
	verdicts := func(r *Results) map[string]string {
		out := map[string]string{}
		for _, g := range r.Goals() {
			out[g.Name] = g.Met
		}
		return out
	}
	tests := []struct {
		name   string
		change func(*Results)
		goal   string
		want   string
	}{
		{"all met", func(*Results) {}, "Ingest throughput vs plain copy, 1 GiB", "yes"},
		{"slow ingest", func(r *Results) { r.Sizes[1].Ingest[0] = 12 * time.Second }, "Ingest throughput vs plain copy, 1 GiB", "no"},
		{"memory over the limit", func(r *Results) { r.Sizes[1].Peak.Peak = 70 << 20 }, "Bootstrap peak RSS, 1 GiB", "no"},
		{"memory grows with the file", func(r *Results) { r.Sizes[1].Peak.Peak = 40 << 20 }, "Bootstrap peak RSS, 1 GiB", "no"},
		{"a Graph read per file", func(r *Results) { r.Steady.Graph["get"] = 10 }, "Graph requests per file, steady state", "no"},
		{"a token per file", func(r *Results) { r.Steady.Graph["token"] = 10; r.Steady.Graph["upload"] = 0 }, "Graph requests per file, steady state", "no"},
		{"slow start", func(r *Results) { r.Cold.Inits = []time.Duration{200 * time.Millisecond} }, "Cold start (init phase, host build)", "no"},
		{"big binary", func(r *Results) { r.Binaries[1].Bytes = 21 << 20 }, "Binary size (linux/arm64, Makefile flags)", "no"},
		{"slow validator", func(r *Results) { r.CSV[0].Metrics["MB/s"] = 150 }, "CSV validator not the bottleneck", "no"},
		{"no 1 GiB run", func(r *Results) { r.Sizes = r.Sizes[:1] }, "Ingest throughput vs plain copy, 1 GiB", "not measured (SIZES without 1024)"},
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
		Sizes: []SizeResult{{MiB: 100, Bytes: 100 << 20, Rows: 434479, Plain: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second},
			Ingest: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}, Graph: map[string]int{"upload": 3}}},
		Steady: Steady{Files: 4, Graph: map[string]int{"upload": 4}, S3: map[string]int{"GetObject": 6, "PutObject": 4}},
	}
	md := r.Markdown()
	for _, want := range []string{
		"| 100 MiB | 434,479 | 3 | 52 MB/s | 52 MB/s | 1.00 | 0.50–1.50 |", // medians: 2s and 2s
		"1.00 (upload 1)",
		"2.50 (GetObject 1.5, PutObject 1)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
