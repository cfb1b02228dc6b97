package csvcheck

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The validator's tokenizer and encoding/csv (LazyQuotes off,
// FieldsPerRecord -1) must accept the same inputs and read the same
// records from them, except where the two define CSV differently on
// purpose. checkAgreement encodes each difference exactly:
//
//  1. Invalid UTF-8 and NUL bytes: encoding/csv passes any bytes, the
//     validator refuses them. Such inputs must be refused; no comparison.
//  2. A bare CR (a CR not followed by LF, anywhere): encoding/csv reads it as
//     data, or drops it just before the end of the input; the validator
//     refuses it outside quoted fields and keeps it inside. No comparison.
//  3. CRLF inside a quoted field: encoding/csv reads it as LF; the
//     validator passes the bytes as they are. Fields are compared with CRLF
//     read as LF.
//  4. Blank lines: encoding/csv skips them, the validator refuses them. When
//     the validator reports a blank line, that line must be empty (a CR
//     before its LF, or a byte order mark before it on line 1, allowed); it
//     is removed from the input, which changes nothing for encoding/csv,
//     and the comparison starts again.
//  5. A UTF-8 byte order mark at the start: the validator skips it;
//     encoding/csv is given the input without it.
//  6. Inputs over 8 KiB are not compared: removing blank lines one at a
//     time is quadratic, and the size limits are tested on their own.
//
// When both refuse an input, the validator's line must be the line where
// encoding/csv's bad record starts (ParseError.StartLine).
func checkAgreement(t *testing.T, data []byte) {
	t.Helper()
	if len(data) > 8<<10 {
		return
	}
	in := data
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		if _, err := structure(data); err == nil {
			t.Fatalf("%q: invalid UTF-8 or a NUL byte was accepted", in)
		}
		return
	}
	if hasBareCR(data) {
		return
	}
	const bom = "\uFEFF"
	var got [][]string
	var err error
	for {
		got, err = structure(data)
		var e *Error
		if !errors.As(err, &e) || !strings.HasPrefix(e.Message, "blank line") {
			break
		}
		start, end := lineBounds(data, e.Line)
		line := data[start:end]
		if start == 0 {
			line = bytes.TrimPrefix(line, []byte(bom))
		}
		if l := string(line); l != "\n" && l != "\r\n" {
			t.Fatalf("%q: blank line reported at line %d, which is %q", in, e.Line, l)
		}
		data = slices.Concat(data[:start], data[end:])
	}
	body := bytes.TrimPrefix(data, []byte(bom))
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	want, werr := r.ReadAll()

	switch {
	case err == nil && werr == nil:
		for _, rec := range got {
			for i := range rec {
				rec[i] = strings.ReplaceAll(rec[i], "\r\n", "\n")
			}
		}
		if !equalRecords(got, want) {
			t.Fatalf("%q: records differ\nvalidator:  %q\nencoding/csv: %q", in, got, want)
		}
	case err != nil && werr != nil:
		var e *Error
		var pe *csv.ParseError
		if !errors.As(err, &e) || !errors.As(werr, &pe) {
			t.Fatalf("%q: unexpected errors %v and %v", in, err, werr)
		}
		if e.Line != pe.StartLine {
			t.Fatalf("%q: validator: %v; encoding/csv: %v (record starting at line %d)", in, err, werr, pe.StartLine)
		}
	default:
		t.Fatalf("%q: validator says %v, encoding/csv says %v", in, err, werr)
	}
}

// structure runs the tokenizer alone: no header, no column rules.
func structure(data []byte) ([][]string, error) {
	var records [][]string
	var record []string
	var v validator
	v.init("fuzz.csv")
	v.hooks = &hooks{
		field:  func(b []byte) { record = append(record, string(b)) },
		record: func() { records, record = append(records, record), nil },
	}
	if err := v.write(data); err != nil {
		return nil, err
	}
	return records, v.close()
}

func hasBareCR(data []byte) bool {
	for i, c := range data {
		if c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			return true
		}
	}
	return false
}

// lineBounds returns the offsets of 1-based line n in data, its LF included.
func lineBounds(data []byte, n int) (start, end int) {
	for range n - 1 {
		start += bytes.IndexByte(data[start:], '\n') + 1
	}
	end = len(data)
	if i := bytes.IndexByte(data[start:], '\n'); i >= 0 {
		end = start + i + 1
	}
	return start, end
}

func equalRecords(a, b [][]string) bool {
	return len(a) == len(b) && slices.EqualFunc(a, b, slices.Equal)
}

// agreementSeeds are structural corner cases; every corpus file is a seed too.
var agreementSeeds = []string{
	"", "a", "a\n", "a,b\nc,d", "a,b,\n", ",\n,", `""`, `"",""` + "\n",
	`"a""b",c` + "\n", `"a` + "\n" + `b",c`, `"a` + "\r\n" + `b"` + "\r\n",
	"a\r\nb\r\n", "a\nb\r\nc", "\n", "\r\n", "a\n\nb\n", "a\n\n", "\n\na",
	`a"b`, `"a"b`, `"a" `, ` "a"`, `"a`, `"a""`, `"`, `""""`, "\"a\"\n\"b",
	"\uFEFFa,b\n", "\uFEFF\"a\",b\n", "\uFEFF", "\uFEFF\n",
	"a\rb", "a\r", "\"a\rb\"", "\"\r\n\"", "\"\n\n\"\n",
	"x\x00y", "\xff\xfe", "caf\xe9", "\xe2\x82", "é,ü\n",
}

func TestAgreesWithEncodingCSV(t *testing.T) {
	for _, s := range agreementSeeds {
		checkAgreement(t, []byte(s))
	}
	for _, f := range loadCorpus(t) {
		checkAgreement(t, f.data)
	}
}

func TestAgreementSeesBlankLinesAsEncodingCSVSkipsThem(t *testing.T) {
	// A guard on the comparison itself: the blank-line exclusion must
	// remove lines, not hide a disagreement.
	got, err := structure([]byte("a\n\nb\n"))
	if err == nil || !strings.Contains(err.Error(), "fuzz.csv:2: blank line") {
		t.Fatalf("got %q, %v", got, err)
	}
	start, end := lineBounds([]byte("a\n\nb\n"), 2)
	if start != 2 || end != 3 {
		t.Fatalf("lineBounds = %d, %d", start, end)
	}
}

func FuzzAgreesWithEncodingCSV(f *testing.F) {
	for _, s := range agreementSeeds {
		f.Add([]byte(s))
	}
	for _, c := range loadCorpus(f) {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgreement(t, data)
	})
}

// FuzzValidate checks that the validator never panics, passes bytes
// through unchanged, reaches the same outcome whatever the read sizes, and
// reports lines that exist.
func FuzzValidate(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add(c.data, uint16(1))
		f.Add(c.data, uint16(7))
	}
	for _, s := range agreementSeeds {
		f.Add([]byte(v1Header+s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, size uint16) {
		res, err := Validate(bytes.NewReader(data), "fuzz.csv")
		lines := bytes.Count(data, []byte{'\n'}) + 1
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%v is not an *Error", err)
			}
			if e.Line < 0 || e.Line > lines {
				t.Fatalf("line %d of a %d-line input", e.Line, lines)
			}
		} else if res.Format == nil || res.Rows < 1 || res.Rows >= int64(lines) || res.Bytes != int64(len(data)) {
			t.Fatalf("valid input with result %s", describeResult(res))
		}

		r := NewReader(&chunkReader{data: data, size: 1 + int(size)%1024}, "fuzz.csv")
		out, err2 := readAllWith(r, 1+int(size)%333)
		if !sameError(err, err2) {
			t.Fatalf("one read: %v; small reads: %v", err, err2)
		}
		if err == nil && !bytes.Equal(out, data) || !bytes.HasPrefix(data, out) {
			t.Fatalf("passed %q for input %q", out, data)
		}
	})
}

// chunkReader returns at most size bytes per Read.
type chunkReader struct {
	data []byte
	size int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	return n, nil
}
