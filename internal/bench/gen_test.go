package bench

import (
	"bytes"
	"io"
	"testing"

	"github.com/byodrop/byodrop/internal/csvcheck"
)

func TestCSVIsValidAndExactlyItsSize(t *testing.T) {
	for _, size := range []int64{MinCSVSize, MinCSVSize + 1, 4096, 1<<20 + 7, 3 << 20} {
		c, err := NewCSV(size)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != size {
			t.Fatalf("size %d: generated %d bytes", size, len(data))
		}
		res, err := csvcheck.Validate(bytes.NewReader(data), "gen.csv")
		if err != nil {
			t.Fatalf("size %d: generated file is invalid: %v", size, err)
		}
		if res.Format == nil || res.Format.Name != "entra-template" || res.Rows != c.Rows() || res.Rows < 1 {
			t.Fatalf("size %d: validator saw format %v, %d rows; generator says %d rows", size, res.Format, res.Rows, c.Rows())
		}
	}
}

func TestCSVRefusesASizeWithoutRoomForARow(t *testing.T) {
	if _, err := NewCSV(MinCSVSize - 1); err == nil {
		t.Fatal("NewCSV accepted a size below MinCSVSize")
	}
}

func TestCSVSeekGivesTheSameBytes(t *testing.T) {
	const size = 200_000
	c, err := NewCSV(size)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		offset int64
		whence int
		want   int64
	}{
		{"end, as an SDK sizes a body", 0, io.SeekEnd, size},
		{"back to the start, as a retry rewinds", 0, io.SeekStart, 0},
		{"into the middle", 123_457, io.SeekStart, 123_457},
		{"relative", -1000, io.SeekCurrent, 122_457},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos, err := c.Seek(tt.offset, tt.whence)
			if err != nil || pos != tt.want {
				t.Fatalf("Seek(%d, %d) = %d, %v; want %d", tt.offset, tt.whence, pos, err, tt.want)
			}
			rest, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rest, whole[pos:]) {
				t.Fatalf("after seeking to %d: %d bytes that differ from the first pass", pos, len(rest))
			}
			// Leave the position where the case said, for the relative seek.
			if _, err := c.Seek(tt.want, io.SeekStart); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCSVReadsInAnyChunkSize(t *testing.T) {
	c, _ := NewCSV(50_000)
	want, _ := io.ReadAll(c)
	for _, chunk := range []int{1, 7, 300, 65536} {
		c.Seek(0, io.SeekStart)
		var got bytes.Buffer
		buf := make([]byte, chunk)
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("reads of %d bytes gave a different file", chunk)
		}
	}
}

func BenchmarkCSVGenerate(b *testing.B) {
	c, _ := NewCSV(64 << 20)
	b.SetBytes(c.Size())
	for range b.N {
		c.Seek(0, io.SeekStart)
		io.Copy(io.Discard, c)
	}
}
