package csvcheck

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/byodrop/byodrop/internal/review"
)

// sourceShapes are the ways a source may hand out bytes: all at once, one
// byte per Read, half of what is asked, or the last bytes together with
// io.EOF.
var sourceShapes = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"plain", func(r io.Reader) io.Reader { return r }},
	{"OneByteReader", iotest.OneByteReader},
	{"HalfReader", iotest.HalfReader},
	{"DataErrReader", iotest.DataErrReader},
	{"DataErrOneByte", func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) }},
}

// readSizes are the buffer sizes callers read with.
var readSizes = []int{1, 2, 3, 7, 64, 4096, 1 << 16}

func TestReaderPassesValidBytesThroughUnchanged(t *testing.T) {
	inputs := map[string][]byte{"generated-1MiB.csv": entraData(1 << 20)}
	for _, f := range loadCorpus(t) {
		if f.want.OK {
			inputs[f.name] = f.data
		}
	}
	for name, data := range inputs {
		want, err := Validate(bytes.NewReader(data), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, shape := range sourceShapes {
			for _, size := range readSizes {
				if len(data) > 64<<10 && size < 64 && shape.name != "plain" {
					continue // a byte at a time over a megabyte proves nothing more
				}
				r := NewReader(shape.wrap(bytes.NewReader(data)), name)
				out, err := readAllWith(r, size)
				if err != nil {
					t.Fatalf("%s via %s, reads of %d: %v", name, shape.name, size, err)
				}
				if !bytes.Equal(out, data) {
					t.Fatalf("%s via %s, reads of %d: %d bytes out differ from the %d in", name, shape.name, size, len(out), len(data))
				}
				if got := r.Result(); got.Format != want.Format || got.Rows != want.Rows || got.Bytes != int64(len(data)) {
					t.Fatalf("%s via %s, reads of %d: result %s, want %s", name, shape.name, size, describeResult(got), describeResult(want))
				}
			}
		}
	}
}

func TestOutcomeDoesNotDependOnReadSizes(t *testing.T) {
	for _, f := range loadCorpus(t) {
		_, want := Validate(bytes.NewReader(f.data), f.name)
		for _, shape := range sourceShapes {
			for _, size := range readSizes {
				r := NewReader(shape.wrap(bytes.NewReader(f.data)), f.name)
				out, err := readAllWith(r, size)
				if !sameError(err, want) {
					t.Fatalf("%s via %s, reads of %d: got %v, want %v", f.name, shape.name, size, err, want)
				}
				if !bytes.HasPrefix(f.data, out) {
					t.Fatalf("%s via %s, reads of %d: the bytes passed are not a prefix of the input", f.name, shape.name, size)
				}
			}
		}
	}
}

func sameError(a, b error) bool {
	var ea, eb *Error
	if errors.As(a, &ea) && errors.As(b, &eb) {
		return *ea == *eb
	}
	return a == nil && b == nil
}

func TestReaderNeverReportsEOFBeforeTheEndIsChecked(t *testing.T) {
	// Each of these is only known to be bad once the source has said EOF.
	for _, name := range []string{"unterminated-quote-no-newline.csv", "header-only.csv", "header-only-no-newline.csv", "utf8-truncated-at-eof.csv", "cr-at-eof.csv", "empty.csv", "bom-only.csv"} {
		for _, shape := range sourceShapes {
			data := corpusData(t, name)
			r := NewReader(shape.wrap(bytes.NewReader(data)), name)
			buf := make([]byte, 5)
			for {
				_, err := r.Read(buf)
				if err == io.EOF {
					t.Fatalf("%s via %s: io.EOF for a bad file", name, shape.name)
				}
				if err != nil {
					if _, ok := err.(*Error); !ok {
						t.Fatalf("%s via %s: %v is not an *Error", name, shape.name, err)
					}
					if _, again := r.Read(buf); again != err {
						t.Fatalf("%s via %s: the error is not sticky: then %v", name, shape.name, again)
					}
					break
				}
			}
		}
	}
}

func corpusData(t *testing.T, name string) []byte {
	t.Helper()
	for _, f := range loadCorpus(t) {
		if f.name == name {
			return f.data
		}
	}
	t.Fatalf("no corpus file %s", name)
	return nil
}

func TestReaderWithholdsTheChunkHoldingTheBadRecord(t *testing.T) {
	data := []byte(entraHeader + string(appendEntraRow(nil, 1)) + "bob,EntraIdUser\n")
	r := NewReader(bytes.NewReader(data), "f.csv")
	n, err := r.Read(make([]byte, len(data)))
	if n != 0 || err == nil {
		t.Fatalf("Read = %d, %v; want 0 and the error", n, err)
	}
}

func TestReaderReturnsSourceErrorsAsTheyAre(t *testing.T) {
	boom := errors.New("connection reset")
	src := io.MultiReader(strings.NewReader(entraHeader), iotest.ErrReader(boom))
	r := NewReader(src, "f.csv")
	out, err := readAllWith(r, 4096)
	if err != boom {
		t.Fatalf("got %v, want the source's error", err)
	}
	if string(out) != entraHeader {
		t.Fatalf("the bytes before the failure were not passed: %q", out)
	}
	if review.KindOf(err) == review.Invalid {
		t.Fatal("a source failure must not read as an invalid file")
	}
}

func TestErrorIsInvalidAndFormatsLikeACompiler(t *testing.T) {
	for _, tc := range []struct {
		err  Error
		want string
	}{
		{Error{File: "a.csv", Line: 7, Column: "PrincipalId", Message: `not a GUID: "bob"`}, `a.csv:7: PrincipalId: not a GUID: "bob"`},
		{Error{File: "a.csv", Line: 3, Message: "blank line"}, "a.csv:3: blank line"},
		{Error{File: "a.csv", Message: "empty file"}, "a.csv: empty file"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		var err error = &tc.err
		if review.KindOf(err) != review.Invalid || review.IsRetryable(err) {
			t.Errorf("%v: kind %v, want invalid and not retryable", err, review.KindOf(err))
		}
		fe := tc.err.FieldError()
		if fe.Line != tc.err.Line || fe.Column != tc.err.Column || fe.Message != tc.err.Message {
			t.Errorf("FieldError() = %+v", fe)
		}
	}
}

func TestResultBeforeTheHeaderHasNoFormat(t *testing.T) {
	r := NewReader(strings.NewReader(entraHeader[:20]), "f.csv")
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if res := r.Result(); res.Format != nil || res.Rows != 0 || res.Bytes != 10 {
		t.Fatalf("Result() = %s", describeResult(res))
	}
}

func TestFormatsDescribeEveryColumn(t *testing.T) {
	for _, f := range Formats {
		if len(f.kinds) != len(f.Columns) {
			t.Errorf("%s: %d rules for %d columns", f.Name, len(f.kinds), len(f.Columns))
		}
	}
}
