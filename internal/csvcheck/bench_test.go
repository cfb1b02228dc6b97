package csvcheck

import (
	"bytes"
	"encoding/csv"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchData is a valid entra-template file of about 64 MiB, made once.
var benchData = sync.OnceValue(func() []byte { return entraData(64 << 20) })

// measure holds what a benchmark reads before its loop.
type measure struct {
	mem runtime.MemStats
	cpu time.Duration
}

func startMeasure() *measure {
	m := &measure{cpu: cpuTime()}
	runtime.ReadMemStats(&m.mem)
	return m
}

// report adds the allocations per megabyte of input, the figure that shows
// whether anything is allocated per row, and the megabytes per CPU second,
// the throughput that does not depend on what else the machine runs.
func (m *measure) report(b *testing.B, size int) {
	cpu := cpuTime() - m.cpu
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(float64(after.Mallocs-m.mem.Mallocs)/mb, "allocs/MB")
	if cpu > 0 {
		b.ReportMetric(mb/cpu.Seconds(), "MB/cpu-s")
	}
}

func BenchmarkValidate(b *testing.B) {
	benchmarkReading(b, func(data []byte) error {
		_, err := Validate(bytes.NewReader(data), "bench.csv")
		return err
	})
}

// BenchmarkEncodingCSV reads the same data with encoding/csv, reusing its
// record, for comparison.
func BenchmarkEncodingCSV(b *testing.B) {
	benchmarkReading(b, func(data []byte) error {
		r := csv.NewReader(bytes.NewReader(data))
		r.FieldsPerRecord = -1
		r.ReuseRecord = true
		for {
			if _, err := r.Read(); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
		}
	})
}

// benchmarkReading runs read over benchData b.N times and reports the
// figures of measure.report.
func benchmarkReading(b *testing.B, read func([]byte) error) {
	data := benchData()
	runtime.GC()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	m := startMeasure()
	b.ResetTimer()
	for range b.N {
		if err := read(data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	m.report(b, len(data))
}
