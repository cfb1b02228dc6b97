package bench

import (
	"slices"
	"time"
)

// Results are everything one bench run measured.
type Results struct {
	Machine Machine
	Date    time.Time
	Elapsed time.Duration
	// Load is the number of CPU-bound background processes that ran for
	// the whole measurement (make bench LOAD=n), each keeping a core busy.
	Load int
	// LoadBefore and LoadAfter are the one-minute load averages when the
	// run started and ended.
	LoadBefore, LoadAfter string
	Sizes                 []SizeResult
	Steady                Steady
	Cold                  Cold
	// Binaries are the arm64 bootstraps as the Makefile builds them.
	Binaries []Binary
	// CSV holds the csvcheck benchmarks (BenchmarkValidate, and
	// BenchmarkEncodingCSV for comparison).
	CSV []GoBenchmark
}

// Checksums names the S3 client settings of a measurement: how the SDK
// treats the checksums of requests and responses.
type Checksums string

const (
	// Relaxed is what byodrop sets for a local S3-compatible server:
	// checksums only where the API requires them, no response validated.
	Relaxed Checksums = "relaxed"
	// AWSDefault is the SDK's default, which byodrop keeps in AWS: every
	// GetObject asks for the object's checksum and the SDK checks the
	// body against it as it is read.
	AWSDefault Checksums = "aws"
)

// Label is the setting's name in tables.
func (c Checksums) Label() string {
	if c == AWSDefault {
		return "as in AWS"
	}
	return "relaxed (local)"
}

// SizeResult is the throughput and memory at one file size, with one S3
// checksum setting.
type SizeResult struct {
	MiB       int
	Checksums Checksums
	Bytes     int64
	Rows      int64
	// Plain and Ingest are the wall times of each run: the plain copy
	// in-process, and the ingest invocation of the bootstrap under the
	// runtime emulator, from the event's POST to the function's answer.
	Plain, Ingest []time.Duration
	// Peak is the bootstrap's resident memory after this size's
	// invocations, in a runtime emulator started for this size.
	Peak Memory
	// Graph counts the Graph requests of the timed invocations, by
	// operation, summed over the runs.
	Graph map[string]int
	// CPU time summed over the runs: the bootstrap's during its
	// invocations and the plain copy client process's during its copies,
	// both read from /proc; this process's (the Graph emulator's, with
	// the bench's own waiting) during the invocations.
	BootstrapCPU, PlainCPU, EmulatorCPU time.Duration
	// Small are the invocation times of 256 KiB files after the warm-up:
	// what a file costs besides its bytes; SmallCPU is the bootstrap's CPU
	// time over all of them.
	Small    []time.Duration
	SmallCPU time.Duration
}

// SmallMedian is the median invocation time of the small files.
func (s SizeResult) SmallMedian() time.Duration { return median(s.Small) }

// SmallCPUPerFile is the bootstrap's CPU time per small file.
func (s SizeResult) SmallCPUPerFile() time.Duration {
	if len(s.Small) == 0 {
		return 0
	}
	return s.SmallCPU / time.Duration(len(s.Small))
}

// CPURatio is the bootstrap's CPU per GiB over the plain copy client's:
// what validation and bookkeeping cost on top of moving the bytes.
func (s SizeResult) CPURatio() float64 {
	ingest, plain, _ := s.CPUPerGiB()
	if plain <= 0 {
		return 0
	}
	return ingest / plain
}

// CPUPerGiB returns the CPU seconds per GiB of the bootstrap (ingest), of
// the plain copy client process and of the Graph emulator while it
// received from the bootstrap.
func (s SizeResult) CPUPerGiB() (ingest, plainClient, emulator float64) {
	gib := float64(s.Bytes) * float64(len(s.Ingest)) / (1 << 30)
	if gib == 0 {
		return 0, 0, 0
	}
	return s.BootstrapCPU.Seconds() / gib, s.PlainCPU.Seconds() / gib, s.EmulatorCPU.Seconds() / gib
}

// PlainMBps is the plain copy's throughput (median run), in MB/s (10^6 bytes).
func (s SizeResult) PlainMBps() float64 { return mbps(s.Bytes, median(s.Plain)) }

// IngestMBps is the ingest throughput (median run), in MB/s.
func (s SizeResult) IngestMBps() float64 { return mbps(s.Bytes, median(s.Ingest)) }

// Ratio is ingest's throughput over the plain copy's.
func (s SizeResult) Ratio() float64 {
	if p := s.PlainMBps(); p > 0 {
		return s.IngestMBps() / p
	}
	return 0
}

// RatioRange is the lowest and highest ratio of single runs, each run's
// ingest against its own plain copy: how much the machine's other work moved
// the figures.
func (s SizeResult) RatioRange() (lo, hi float64) {
	for i := range min(len(s.Plain), len(s.Ingest)) {
		r := s.Plain[i].Seconds() / s.Ingest[i].Seconds()
		if i == 0 || r < lo {
			lo = r
		}
		if i == 0 || r > hi {
			hi = r
		}
	}
	return lo, hi
}

// GraphPerFile is the Graph requests per timed invocation.
func (s SizeResult) GraphPerFile() float64 { return perFile(total(s.Graph), len(s.Ingest)) }

// Steady is the request count of files uploaded into an existing session
// after a warm-up file, by the in-process handler.
type Steady struct {
	Files     int
	FileBytes int64
	// Graph and S3 count the requests of all Files, by operation.
	Graph, S3 map[string]int
}

// GraphPerFile is the Graph requests per file.
func (s Steady) GraphPerFile() float64 { return perFile(total(s.Graph), s.Files) }

// S3PerFile is the S3 requests per file.
func (s Steady) S3PerFile() float64 { return perFile(total(s.S3), s.Files) }

// Cold is the bootstrap's cold start under the runtime emulator.
type Cold struct {
	// Inits are the Init Durations of fresh starts (each invoked once with
	// S3's test event, which ingest ignores).
	Inits []time.Duration
}

// Mean is the average init duration.
func (c Cold) Mean() time.Duration {
	if len(c.Inits) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range c.Inits {
		sum += d
	}
	return sum / time.Duration(len(c.Inits))
}

// Binary is one built bootstrap.
type Binary struct {
	Function string
	Bytes    int64
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func perFile(n, files int) float64 {
	if files == 0 {
		return 0
	}
	return float64(n) / float64(files)
}
