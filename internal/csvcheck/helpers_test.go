package csvcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// expectation is one entry of testdata/corpus/expected.json: either ok
// (with the format and row count), or the first error's line, column and a
// substring of its message.
type expectation struct {
	OK       bool   `json:"ok"`
	Format   string `json:"format,omitempty"`
	Rows     int64  `json:"rows,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   string `json:"column,omitempty"`
	Contains string `json:"contains,omitempty"`
}

// corpusFile is one file of testdata/corpus with what it must give.
type corpusFile struct {
	name string
	data []byte
	want expectation
}

// loadCorpus reads testdata/corpus and checks that expected.json and the
// files name each other exactly.
func loadCorpus(t testing.TB) []corpusFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "corpus", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]expectation
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var files []corpusFile
	for _, p := range paths {
		name := filepath.Base(p)
		exp, ok := want[name]
		if !ok {
			t.Fatalf("%s has no entry in expected.json", name)
		}
		delete(want, name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, corpusFile{name, data, exp})
	}
	for name := range want {
		t.Fatalf("expected.json names %s, which does not exist", name)
	}
	return files
}

// checkOutcome compares a validation outcome with an expectation.
func checkOutcome(t testing.TB, want expectation, res Result, err error) {
	t.Helper()
	if want.OK {
		if err != nil {
			t.Fatalf("want ok, got %v", err)
		}
		if res.Format == nil || res.Format.Name != want.Format || res.Rows != want.Rows {
			t.Fatalf("want format %s with %d rows, got %+v", want.Format, want.Rows, describeResult(res))
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *Error at line %d, got %v", want.Line, err)
	}
	if e.Line != want.Line || e.Column != want.Column || !strings.Contains(e.Message, want.Contains) {
		t.Fatalf("want line %d column %q message containing %q,\ngot  line %d column %q message %q",
			want.Line, want.Column, want.Contains, e.Line, e.Column, e.Message)
	}
}

func describeResult(r Result) string {
	name := "<nil>"
	if r.Format != nil {
		name = r.Format.Name
	}
	return fmt.Sprintf("format %s, %d rows, %d bytes", name, r.Rows, r.Bytes)
}

const entraHeader = "PrincipalId,PrincipalType,PermissionId,PermissionName,PermissionDescription,PermissionType,ScopeId,ScopeDisplayName,EntitlementOwners_Users,EntitlementOwners_Groups,CustomData\n"

// appendEntraRow appends a valid, realistic entra-template row whose ids
// vary with i.
func appendEntraRow(b []byte, i int) []byte {
	guid := func(b []byte, n, salt int) []byte {
		return fmt.Appendf(b, "%08x-%04x-4%03x-8%03x-%012x", n, salt, n&0xfff, salt&0xfff, uint64(n)*2654435761&0xffffffffffff)
	}
	b = guid(b, i, 1)
	b = append(b, ",EntraIdUser,"...)
	b = fmt.Appendf(b, "door-%d,Door %d,\"Entrance %d, ground floor\",Badge,bldg-%d,Building %d,\"", i%500, i%500, i%500, i%7, i%7)
	b = guid(b, i%97, 2)
	b = append(b, ", "...)
	b = guid(b, i%89, 3)
	b = append(b, "\","...)
	b = guid(b, i%13, 4)
	b = append(b, ",site=HQ\n"...)
	return b
}

// entraData returns a valid entra-template file of at least size bytes.
func entraData(size int) []byte {
	b := make([]byte, 0, size+512)
	b = append(b, entraHeader...)
	for i := 0; len(b) < size; i++ {
		b = appendEntraRow(b, i)
	}
	return b
}

// entraStream is an entra-template file of at least size bytes whose rows
// repeat a block of about 1 MiB, so that no test holds the file whole and
// producing it allocates nothing.
type entraStream struct {
	size, done int64
	block      []byte
	rest       []byte
}

func newEntraStream(size int64) *entraStream {
	data := entraData(1 << 20)
	return &entraStream{size: size, block: data[len(entraHeader):], rest: data[:len(entraHeader)]}
}

func (s *entraStream) Read(p []byte) (int, error) {
	if len(s.rest) == 0 {
		if s.done >= s.size {
			return 0, io.EOF
		}
		s.rest = s.block
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	s.done += int64(n)
	return n, nil
}

// readAllWith drains r through reads of at most size bytes and returns the
// bytes it passed and the final error (nil after io.EOF).
func readAllWith(r io.Reader, size int) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}
