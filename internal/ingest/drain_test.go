package ingest

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// askingReader records how much each read asked for.
type askingReader struct {
	r     io.Reader
	asked []int
}

func (a *askingReader) Read(p []byte) (int, error) {
	a.asked = append(a.asked, len(p))
	return a.r.Read(p)
}

func TestDrainReadsThroughTheWholeBuffer(t *testing.T) {
	src := &askingReader{r: strings.NewReader(strings.Repeat("x", 100_000))}
	n, err := drain(src, make([]byte, 64<<10))
	if err != nil || n != 100_000 {
		t.Fatalf("drain = %d, %v; want 100000, nil", n, err)
	}
	for i, k := range src.asked {
		if k != 64<<10 {
			t.Fatalf("read %d asked for %d bytes, want the whole 64 KiB buffer", i, k)
		}
	}
	if len(src.asked) > 3 {
		t.Fatalf("%d reads for 100000 bytes through 64 KiB, want at most 3", len(src.asked))
	}
}

func TestDrainReportsTheReadError(t *testing.T) {
	bad := errors.New("line 3, column 2: not a GUID")
	r := io.MultiReader(strings.NewReader("abc"), &failing{err: bad})
	n, err := drain(r, make([]byte, 16))
	if !errors.Is(err, bad) || n != 3 {
		t.Fatalf("drain = %d, %v; want 3, %v", n, err, bad)
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }

func TestReadBytesFitsTheObject(t *testing.T) {
	for _, c := range []struct {
		size int64
		want int
	}{
		{0, 16},
		{256 << 10, 256<<10 + 1},
		{uploadReadBytes - 1, uploadReadBytes},
		{5 << 30, uploadReadBytes},
	} {
		if got := readBytes(c.size); got != c.want {
			t.Errorf("readBytes(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}
