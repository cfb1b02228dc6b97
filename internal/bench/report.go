package bench

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// The goals of the measurements.
const (
	GoalRatio       = 0.95     // ingest throughput over the plain copy's, at 1 GiB
	GoalRatioMid    = 0.90     // the same at 100 MiB
	GoalCPURatio    = 1.25     // bootstrap CPU per GiB over the plain copy client's, at 100 MiB and 1 GiB
	GoalPeakRSS     = 32 << 20 // bootstrap peak RSS, at every size
	GoalFlatSlack   = 8 << 20  // "flat": the largest peak at most this above the smallest
	GoalSmallFile   = 10 * time.Millisecond
	GoalS3PerFile   = 6
	GoalInit        = 150 * time.Millisecond
	GoalBinary      = 20 << 20 // each arm64 bootstrap
	GoalValidator   = 2000     // CSV validation alone, MB/s
	goalSizeMiB     = 1024     // the sizes the throughput and CPU goals are about
	goalMidMiB      = 100
	markerBegin     = "<!-- bench:begin (written by make bench; edit outside the markers) -->"
	markerEnd       = "<!-- bench:end -->"
	defaultDocIntro = "# Benchmarks\n\n`make bench` measures byodrop on the machine it runs on and rewrites the part of this page between the markers.\n\n"
)

// Goal is one goal's verdict.
type Goal struct {
	Name, Target, Measured string
	// Met is "yes", "no", or "not measured".
	Met string
}

// Goals judges the results against the goals.
func (r *Results) Goals() []Goal {
	var goals []Goal
	for _, cs := range r.checksums() {
		suffix := " (S3 checksums " + cs.Label() + ")"
		for _, g := range []struct {
			mib  int
			goal float64
		}{{goalSizeMiB, GoalRatio}, {goalMidMiB, GoalRatioMid}} {
			name := "Ingest throughput vs plain copy, " + sizeName(g.mib) + suffix
			target := fmt.Sprintf("ratio ≥ %.2f", g.goal)
			at, ok := r.size(g.mib, cs)
			if !ok {
				goals = append(goals, Goal{name, target, "—", notMeasured(g.mib)})
				continue
			}
			goals = append(goals, Goal{name, target,
				fmt.Sprintf("%.2f (%.0f vs %.0f MB/s)", at.Ratio(), at.IngestMBps(), at.PlainMBps()), yes(at.Ratio() >= g.goal)})
		}
		for _, mib := range []int{goalSizeMiB, goalMidMiB} {
			name := "Bootstrap CPU per GiB vs plain copy client, " + sizeName(mib) + suffix
			target := fmt.Sprintf("≤ %.2f×", GoalCPURatio)
			at, ok := r.size(mib, cs)
			if !ok {
				goals = append(goals, Goal{name, target, "—", notMeasured(mib)})
				continue
			}
			ingest, plain, _ := at.CPUPerGiB()
			goals = append(goals, Goal{name, target, fmt.Sprintf("%.2f× (%.2f vs %.2f s)", at.CPURatio(), ingest, plain),
				yes(at.CPURatio() > 0 && at.CPURatio() <= GoalCPURatio)})
		}
		var small []time.Duration
		for _, sr := range r.Sizes {
			if sr.Checksums == cs {
				small = append(small, sr.Small...)
			}
		}
		if len(small) > 0 {
			goals = append(goals, Goal{"Warm small file (256 KiB) invocation" + suffix, fmt.Sprintf("≤ %d ms", GoalSmallFile.Milliseconds()),
				fmt.Sprintf("%s median of %d", ms(median(small)), len(small)), yes(median(small) <= GoalSmallFile)})
		}
	}
	if len(r.Sizes) > 0 {
		lo, hi := r.Sizes[0], r.Sizes[0]
		for _, s := range r.Sizes {
			if s.Peak.Peak < lo.Peak.Peak {
				lo = s
			}
			if s.Peak.Peak > hi.Peak.Peak {
				hi = s
			}
		}
		goals = append(goals, Goal{"Bootstrap peak RSS, every size", fmt.Sprintf("≤ %d MiB, flat (within %d MiB)", GoalPeakRSS>>20, GoalFlatSlack>>20),
			fmt.Sprintf("%s to %s (%s to %s)", mib(lo.Peak.Peak), mib(hi.Peak.Peak), sizeName(lo.MiB), sizeName(hi.MiB)),
			yes(hi.Peak.Peak <= GoalPeakRSS && hi.Peak.Peak-lo.Peak.Peak <= GoalFlatSlack)})
	}
	st := r.Steady
	goals = append(goals, Goal{"Graph requests per file, steady state", "exactly 1 (the upload)",
		fmt.Sprintf("%.2f (%s)", st.GraphPerFile(), perFileList(st.Graph, st.Files)),
		yes(st.Files > 0 && total(st.Graph) == st.Files && st.Graph["upload"] == st.Files)})
	goals = append(goals, Goal{"S3 requests per file, steady state", fmt.Sprintf("≤ %d", GoalS3PerFile),
		fmt.Sprintf("%.2f (%s)", st.S3PerFile(), opTotals(st.S3, st.Files)), yes(st.Files > 0 && st.S3PerFile() <= GoalS3PerFile)})
	goals = append(goals, Goal{"Cold start (init phase, host build)", fmt.Sprintf("< %d ms", GoalInit.Milliseconds()),
		fmt.Sprintf("%s mean of %d (%s)", ms(r.Cold.Mean()), len(r.Cold.Inits), msList(r.Cold.Inits)), yes(len(r.Cold.Inits) > 0 && r.Cold.Mean() < GoalInit)})
	var bins []string
	binOK := len(r.Binaries) > 0
	for _, b := range r.Binaries {
		bins = append(bins, b.Function+" "+mib(b.Bytes))
		binOK = binOK && b.Bytes < GoalBinary
	}
	goals = append(goals, Goal{"Binary size (linux/arm64, Makefile flags)", fmt.Sprintf("< %d MiB each", GoalBinary>>20), strings.Join(bins, ", "), yes(binOK)})
	if v, ok := r.csv("BenchmarkValidate"); ok {
		goals = append(goals, Goal{"CSV validation alone", fmt.Sprintf("≥ %d MB/s", GoalValidator),
			fmt.Sprintf("%.0f MB/s (%.0f MB per CPU-second), %.2f allocs/MB", v.Metrics["MB/s"], v.Metrics["MB/cpu-s"], v.Metrics["allocs/MB"]),
			yes(v.Metrics["MB/s"] >= GoalValidator)})
	}
	return goals
}

func notMeasured(mib int) string { return fmt.Sprintf("not measured (SIZES without %d)", mib) }

// checksums lists the S3 checksum settings measured, in order.
func (r *Results) checksums() []Checksums {
	var out []Checksums
	for _, s := range r.Sizes {
		if !slices.Contains(out, s.Checksums) {
			out = append(out, s.Checksums)
		}
	}
	return out
}

func (r *Results) size(mib int, cs Checksums) (SizeResult, bool) {
	for _, s := range r.Sizes {
		if s.MiB == mib && s.Checksums == cs {
			return s, true
		}
	}
	return SizeResult{}, false
}

func (r *Results) csv(name string) (GoBenchmark, bool) {
	for _, b := range r.CSV {
		if b.Name == name {
			return b, true
		}
	}
	return GoBenchmark{}, false
}

// Markdown renders the results: machine, tables, goals.
func (r *Results) Markdown() string {
	var b strings.Builder
	m := r.Machine
	how := "`make bench`"
	if r.Load > 0 {
		how = fmt.Sprintf("`make bench LOAD=%d` (%d CPU-bound background process(es) for the whole run)", r.Load, r.Load)
	}
	fmt.Fprintf(&b, "Measured %s by %s (%s).\n\n", r.Date.Format("2006-01-02 15:04 MST"), how, r.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| Machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPU | %s |\n| Cores | %d |\n| Memory | %.1f GiB |\n| Go | %s |\n| OS | %s |\n| Load average (1 min) at start, end | %s, %s |\n\n",
		orUnknown(m.CPU), m.Cores, float64(m.MemoryMiB)/1024, m.Go, orUnknown(m.OS), orUnknown(r.LoadBefore), orUnknown(r.LoadAfter))

	b.WriteString("### Ingest throughput and memory\n\n")
	b.WriteString("| File | S3 checksums | Rows | Runs | Plain copy | Ingest (bootstrap) | Ratio | Ratio of single runs | Bootstrap peak RSS | Graph requests per invocation |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Sizes {
		lo, hi := s.RatioRange()
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %.0f MB/s | %.0f MB/s | %.2f | %.2f–%.2f | %s | %.2f (%s) |\n",
			sizeName(s.MiB), s.Checksums.Label(), thousands(s.Rows), len(s.Ingest), s.PlainMBps(), s.IngestMBps(), s.Ratio(), lo, hi,
			mib(s.Peak.Peak), s.GraphPerFile(), perFileList(s.Graph, len(s.Ingest)))
	}
	b.WriteString("\nMB/s is 10^6 bytes per second; each throughput is the median run, the ratio is of the medians.\n\n")

	b.WriteString("### CPU per GiB uploaded\n\n")
	b.WriteString("| File | S3 checksums | Ingest (bootstrap) | Plain copy client | Ratio | Graph emulator |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|\n")
	for _, s := range r.Sizes {
		ingest, plain, emu := s.CPUPerGiB()
		fmt.Fprintf(&b, "| %s | %s | %.2f s | %.2f s | %.2f× | %.2f s |\n", sizeName(s.MiB), s.Checksums.Label(), ingest, plain, s.CPURatio(), emu)
	}
	b.WriteString("\n")

	b.WriteString("### Small files (256 KiB, warm)\n\n")
	b.WriteString("| In the emulator of | S3 checksums | Invocation (median) | Single invocations | Bootstrap CPU per file |\n")
	b.WriteString("|---:|---|---:|---|---:|\n")
	for _, s := range r.Sizes {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", sizeName(s.MiB), s.Checksums.Label(), ms(s.SmallMedian()), msList(s.Small), ms(s.SmallCPUPerFile()))
	}
	b.WriteString("\n")

	st := r.Steady
	fmt.Fprintf(&b, "### Requests per small file, steady state (%d files, S3 checksums relaxed)\n\n", st.Files)
	b.WriteString("| Service | Request (what it is about) | Per file |\n|---|---|---:|\n")
	for _, c := range Sorted(st.S3) {
		fmt.Fprintf(&b, "| S3 | %s | %s |\n", c.Op, trimFloat(perFile(c.Count, st.Files)))
	}
	for _, c := range Sorted(st.Graph) {
		op := c.Op
		if op == "" {
			op = "unrouted"
		}
		fmt.Fprintf(&b, "| Graph | %s | %s |\n", op, trimFloat(perFile(c.Count, st.Files)))
	}
	fmt.Fprintf(&b, "| | **total S3, Graph** | **%s, %s** |\n\n", trimFloat(st.S3PerFile()), trimFloat(st.GraphPerFile()))

	b.WriteString("### Goals\n\n| Goal | Target | Measured | Met |\n|---|---|---|---|\n")
	for _, g := range r.Goals() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.Name, g.Target, g.Measured, g.Met)
	}

	b.WriteString("\n### CSV validation alone (`go test -bench`, internal/csvcheck, 64 MiB in memory)\n\n")
	b.WriteString("| Benchmark | MB/s | MB per CPU-second | allocs/MB | B/op | allocs/op |\n|---|---:|---:|---:|---:|---:|\n")
	for _, c := range r.CSV {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.3f | %.0f | %.0f |\n", c.Name, c.Metrics["MB/s"], c.Metrics["MB/cpu-s"], c.Metrics["allocs/MB"], c.Metrics["B/op"], c.Metrics["allocs/op"])
	}
	return b.String()
}

// opTotals sums counts by operation, whatever they are about: "GetObject 5".
func opTotals(counts map[string]int, files int) string {
	byOp := map[string]int{}
	for op, n := range counts {
		name, _, _ := strings.Cut(op, " ")
		byOp[name] += n
	}
	return perFileList(byOp, files)
}

// WriteDoc writes section between the bench markers of the page at path,
// keeping what is written outside them; a page without markers gets them
// appended (a missing page is created).
func WriteDoc(path, section string) error {
	return writeDoc(path, markerBegin, markerEnd, section)
}

// The markers of the figures measured under a background load.
const (
	loadMarkerBegin = "<!-- bench-load:begin (written by make bench LOAD=1; edit outside the markers) -->"
	loadMarkerEnd   = "<!-- bench-load:end -->"
)

// WriteLoadedDoc is WriteDoc for the figures of a run under a background
// load, which have markers of their own, so that the page holds both.
func WriteLoadedDoc(path, section string) error {
	return writeDoc(path, loadMarkerBegin, loadMarkerEnd, section)
}

func writeDoc(path, begin, end, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(old) == 0 {
		old = []byte(defaultDocIntro)
	}
	block := begin + "\n\n" + strings.TrimSpace(section) + "\n\n" + end
	var out []byte
	b, e := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	if b >= 0 && e > b {
		out = append(append(append(out, old[:b]...), block...), old[e+len(end):]...)
	} else {
		out = append(append(bytes.TrimRight(old, "\n"), "\n\n"...), block...)
		out = append(out, '\n')
	}
	return os.WriteFile(path, out, 0o644)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func sizeName(mib int) string {
	if mib >= 1024 && mib%1024 == 0 {
		return fmt.Sprintf("%d GiB", mib/1024)
	}
	return fmt.Sprintf("%d MiB", mib)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func msList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
	}
	return strings.Join(parts, ", ") + " ms"
}

// perFileList spells counts out per file: "upload 1, token 0.1".
func perFileList(counts map[string]int, files int) string {
	if len(counts) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range Sorted(counts) {
		op := c.Op
		if op == "" {
			op = "unrouted"
		}
		parts = append(parts, fmt.Sprintf("%s %s", op, trimFloat(perFile(c.Count, files))))
	}
	return strings.Join(parts, ", ")
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
