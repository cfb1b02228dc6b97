package csvcheck

import (
	"io"
	"runtime"
	"testing"
)

func TestValidatingAStreamKeepsTheHeapSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("validates 256 MiB")
	}
	const size = 256 << 20
	const budget = 8 << 20
	src := newEntraStream(size)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := before.HeapAlloc
	sampler := &sampling{r: NewReader(src, "big.csv"), every: 16 << 20, peak: &peak}
	if _, err := readAllDiscard(sampler); err != nil {
		t.Fatal(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(peak) - int64(before.HeapAlloc); grew > budget {
		t.Errorf("heap grew by %d bytes while validating %d", grew, size)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > budget {
		t.Errorf("%d bytes allocated while validating %d", allocated, size)
	}
	if got := sampler.r.Result(); got.Bytes < size || got.Rows < size/400 {
		t.Errorf("validated only %s", describeResult(got))
	}
}

// sampling notes the peak heap every so many bytes read.
type sampling struct {
	r           *Reader
	every, seen int
	peak        *uint64
}

func (s *sampling) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if s.seen += n; s.seen >= s.every {
		s.seen = 0
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		*s.peak = max(*s.peak, m.HeapAlloc)
	}
	return n, err
}

// readAllDiscard drains r through one 64 KiB buffer.
func readAllDiscard(r *sampling) (int64, error) {
	buf := make([]byte, 64<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}
