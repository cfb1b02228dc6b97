package bench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// The goals of the measurements.
const (
	GoalRatio       = 0.9      // ingest throughput over the plain copy's, at 1 GiB
	GoalPeakRSS     = 64 << 20 // bootstrap peak RSS at 1 GiB
	GoalFlatSlack   = 8 << 20  // "flat": the largest file's peak at most this above the smallest's
	GoalInit        = 150 * time.Millisecond
	GoalBinary      = 20 << 20 // each arm64 bootstrap
	GoalValidatorX  = 2.0      // validator alone, times the plain copy's throughput
	goalSizeMiB     = 1024     // the size the throughput and memory goals are about
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
	at, ok := r.size(goalSizeMiB)
	if ok {
		goals = append(goals, Goal{"Ingest throughput vs plain copy, 1 GiB", fmt.Sprintf("ratio ≥ %.2f", GoalRatio),
			fmt.Sprintf("%.2f (%.0f vs %.0f MB/s)", at.Ratio(), at.IngestMBps(), at.PlainMBps()), yes(at.Ratio() >= GoalRatio)})
		small := r.Sizes[0]
		for _, s := range r.Sizes {
			if s.Peak.Peak < small.Peak.Peak {
				small = s
			}
		}
		flat := at.Peak.Peak-small.Peak.Peak <= GoalFlatSlack
		goals = append(goals, Goal{"Bootstrap peak RSS, 1 GiB", fmt.Sprintf("< %d MiB, flat (within %d MiB of the smallest file's)", GoalPeakRSS>>20, GoalFlatSlack>>20),
			fmt.Sprintf("%s (smallest: %s at %s)", mib(at.Peak.Peak), mib(small.Peak.Peak), sizeName(small.MiB)),
			yes(at.Peak.Peak < GoalPeakRSS && flat)})
	} else {
		goals = append(goals,
			Goal{"Ingest throughput vs plain copy, 1 GiB", fmt.Sprintf("ratio ≥ %.2f", GoalRatio), "—", "not measured (SIZES without 1024)"},
			Goal{"Bootstrap peak RSS, 1 GiB", fmt.Sprintf("< %d MiB, flat", GoalPeakRSS>>20), "—", "not measured (SIZES without 1024)"})
	}
	st := r.Steady
	goals = append(goals, Goal{"Graph requests per file, steady state", "exactly 1 (the upload)",
		fmt.Sprintf("%.2f (%s)", st.GraphPerFile(), perFileList(st.Graph, st.Files)),
		yes(st.Files > 0 && total(st.Graph) == st.Files && st.Graph["upload"] == st.Files)})
	goals = append(goals, Goal{"S3 requests per file, steady state", "(reported)",
		fmt.Sprintf("%.2f (%s)", st.S3PerFile(), perFileList(st.S3, st.Files)), "—"})
	goals = append(goals, Goal{"Cold start (init phase, host build)", fmt.Sprintf("< %d ms", GoalInit.Milliseconds()),
		fmt.Sprintf("%s mean of %d (%s)", ms(r.Cold.Mean()), len(r.Cold.Inits), msList(r.Cold.Inits)), yes(len(r.Cold.Inits) > 0 && r.Cold.Mean() < GoalInit)})
	var bins []string
	binOK := len(r.Binaries) > 0
	for _, b := range r.Binaries {
		bins = append(bins, b.Function+" "+mib(b.Bytes))
		binOK = binOK && b.Bytes < GoalBinary
	}
	goals = append(goals, Goal{"Binary size (linux/arm64, Makefile flags)", fmt.Sprintf("< %d MiB each", GoalBinary>>20), strings.Join(bins, ", "), yes(binOK)})
	if v, ok := r.csv("BenchmarkValidate"); ok && len(r.Sizes) > 0 {
		largest := r.Sizes[len(r.Sizes)-1]
		x := v.Metrics["MB/s"] / largest.PlainMBps()
		goals = append(goals, Goal{"CSV validator not the bottleneck", fmt.Sprintf("alone ≥ %.0f× the plain copy", GoalValidatorX),
			fmt.Sprintf("%.0f MB/s, %.2f allocs/MB: %.1f× the plain copy at %s", v.Metrics["MB/s"], v.Metrics["allocs/MB"], x, sizeName(largest.MiB)),
			yes(x >= GoalValidatorX)})
	}
	return goals
}

func (r *Results) size(mib int) (SizeResult, bool) {
	for _, s := range r.Sizes {
		if s.MiB == mib {
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
	fmt.Fprintf(&b, "Measured %s by `make bench` (%s).\n\n", r.Date.Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| Machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPU | %s |\n| Cores | %d |\n| Memory | %.1f GiB |\n| Go | %s |\n| OS | %s |\n| Load average (1 min) at start, end | %s, %s |\n\n",
		orUnknown(m.CPU), m.Cores, float64(m.MemoryMiB)/1024, m.Go, orUnknown(m.OS), orUnknown(r.LoadBefore), orUnknown(r.LoadAfter))

	b.WriteString("### Ingest throughput and memory\n\n")
	b.WriteString("| File | Rows | Runs | Plain copy | Ingest (bootstrap) | Ratio | Ratio of single runs | Bootstrap peak RSS | Graph requests per invocation |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Sizes {
		lo, hi := s.RatioRange()
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f MB/s | %.0f MB/s | %.2f | %.2f–%.2f | %s | %.2f (%s) |\n",
			sizeName(s.MiB), thousands(s.Rows), len(s.Ingest), s.PlainMBps(), s.IngestMBps(), s.Ratio(), lo, hi,
			mib(s.Peak.Peak), s.GraphPerFile(), perFileList(s.Graph, len(s.Ingest)))
	}
	b.WriteString("\nMB/s is 10^6 bytes per second; each throughput is the median run, the ratio is of the medians.\n\n")

	b.WriteString("### CPU per GiB uploaded\n\n")
	b.WriteString("| File | Ingest (bootstrap) | Plain copy client (est.) | Graph emulator | Small file (256 KiB) invocation |\n")
	b.WriteString("|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Sizes {
		ingest, plain, emu := s.CPUPerGiB()
		fmt.Fprintf(&b, "| %s | %.2f s | %.2f s | %.2f s | %s |\n", sizeName(s.MiB), ingest, plain, emu, ms(s.Small))
	}
	b.WriteString("\n")

	b.WriteString("### Goals\n\n| Goal | Target | Measured | Met |\n|---|---|---|---|\n")
	for _, g := range r.Goals() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.Name, g.Target, g.Measured, g.Met)
	}

	b.WriteString("\n### CSV validation alone (`go test -bench`, internal/csvcheck, 64 MiB in memory)\n\n")
	b.WriteString("| Benchmark | MB/s | allocs/MB | B/op | allocs/op |\n|---|---:|---:|---:|---:|\n")
	for _, c := range r.CSV {
		fmt.Fprintf(&b, "| %s | %.0f | %.3f | %.0f | %.0f |\n", c.Name, c.Metrics["MB/s"], c.Metrics["allocs/MB"], c.Metrics["B/op"], c.Metrics["allocs/op"])
	}
	return b.String()
}

// WriteDoc writes section between the bench markers of the page at path,
// keeping what is written outside them; a page without markers gets them
// appended (a missing page is created).
func WriteDoc(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(old) == 0 {
		old = []byte(defaultDocIntro)
	}
	block := markerBegin + "\n\n" + strings.TrimSpace(section) + "\n\n" + markerEnd
	var out []byte
	begin, end := bytes.Index(old, []byte(markerBegin)), bytes.Index(old, []byte(markerEnd))
	if begin >= 0 && end > begin {
		out = append(append(append(out, old[:begin]...), block...), old[end+len(markerEnd):]...)
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
