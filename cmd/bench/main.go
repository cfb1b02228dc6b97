// Command bench measures byodrop on this machine against versitygw and the
// Graph emulator: ingest throughput through the real bootstrap beside a
// plain copy, the bootstrap's peak memory, requests per file, cold start,
// binary sizes and the CSV validator. It prints the tables and writes them
// into docs/benchmarks.md. `make bench` runs it; SIZES=10,100 shortens it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/byodrop/byodrop/internal/bench"
)

func main() {
	if os.Getenv(bench.SpinEnv) != "" {
		bench.Spin() // a background-load process of -load
	}
	if cfg := os.Getenv(bench.PlainEnv); cfg != "" {
		servePlain(cfg) // the plain copy client process
		return
	}
	sizes := flag.String("sizes", "10,100,1024", "file sizes in MiB, comma-separated (make bench SIZES=...)")
	runs := flag.Int("runs", 3, "timed runs per size (the median is reported)")
	steady := flag.Int("steady", 10, "files counted in steady state")
	cold := flag.Int("cold", 5, "fresh starts averaged for the cold start")
	doc := flag.String("doc", "docs/benchmarks.md", "page to write the results into (between its bench markers); empty: do not write")
	profile := flag.String("profile", "", "directory for CPU profiles of an in-process ingest and a plain copy of the largest size")
	load := flag.Int("load", 0, "CPU-bound background processes, each busy on one core, for the whole run (make bench LOAD=1); its figures go into their own part of the page")
	checksums := flag.String("checksums", "relaxed,aws", "S3 client settings to measure each size with: relaxed (what byodrop sets for a local server), aws (the SDK's defaults, as in AWS)")
	flag.Parse()

	list, err := parseSizes(*sizes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	modes, err := parseChecksums(*checksums)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if *load < 0 {
		fmt.Fprintln(os.Stderr, "bench: LOAD: want a number of processes, 0 or more")
		os.Exit(2)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, bench.Options{
		SizesMiB: list, Runs: *runs, SteadyFiles: *steady, ColdStarts: *cold,
		ProfileDir: *profile, Progress: os.Stderr, Checksums: modes, Load: *load, Self: self,
		Spin: func(ctx context.Context) *exec.Cmd {
			cmd := exec.CommandContext(ctx, self)
			cmd.Env = append(os.Environ(), bench.SpinEnv+"=1")
			return cmd
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	section := res.Markdown()
	fmt.Println()
	fmt.Print(section)
	if *doc != "" {
		write := bench.WriteDoc
		if *load > 0 {
			write = bench.WriteLoadedDoc
		}
		if err := write(*doc, section); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "\nwritten to %s\n", *doc)
	}
}

// parseSizes reads "10,100,1024": positive sizes in MiB.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("SIZES: %q is not a size in MiB (want e.g. 10,100,1024)", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("SIZES: no size given (want e.g. 10,100,1024)")
	}
	return out, nil
}

// parseChecksums reads "relaxed,aws".
func parseChecksums(s string) ([]bench.Checksums, error) {
	var out []bench.Checksums
	for _, f := range strings.Split(s, ",") {
		switch c := bench.Checksums(strings.TrimSpace(f)); c {
		case bench.Relaxed, bench.AWSDefault:
			out = append(out, c)
		case "":
		default:
			return nil, fmt.Errorf("-checksums: %q is not relaxed or aws", f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-checksums: none given (want relaxed, aws or both)")
	}
	return out, nil
}

// servePlain runs the plain copy client process of a bench run.
func servePlain(config string) {
	var cfg bench.PlainConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench: plain copy client:", err)
		os.Exit(2)
	}
	if err := bench.ServePlainCopies(os.Stdin, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench: plain copy client:", err)
		os.Exit(1)
	}
}
