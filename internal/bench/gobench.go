package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// GoBenchmark is one result line of `go test -bench`.
type GoBenchmark struct {
	Name    string             // without the -GOMAXPROCS suffix
	N       int64              // iterations
	Metrics map[string]float64 // by unit: ns/op, MB/s, B/op, allocs/op, allocs/MB, ...
}

// RunGoBenchmarks runs `go test -run ^$ -bench pattern -benchmem` on pkg in
// dir and returns its result lines.
func RunGoBenchmarks(ctx context.Context, dir, pkg, pattern string) ([]GoBenchmark, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", "1", pkg)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench %s %s: %w\n%s", pattern, pkg, err, out)
	}
	res := ParseGoBenchmarks(string(out))
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench %s %s: no benchmark results in its output:\n%s", pattern, pkg, out)
	}
	return res, nil
}

// ParseGoBenchmarks reads the result lines of `go test -bench` output:
// "BenchmarkX-2  10  123 ns/op  45.6 MB/s  ...", value and unit pairs.
func ParseGoBenchmarks(out string) []GoBenchmark {
	var res []GoBenchmark
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		b := GoBenchmark{Name: name, N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			b.Metrics[f[i+1]] = v
		}
		res = append(res, b)
	}
	return res
}
