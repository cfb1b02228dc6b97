package csvcheck

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// kind is the rule for a column's values (see Formats).
type kind uint8

const (
	kindText      kind = iota // free text, not empty
	kindOptText               // free text, may be empty
	kindGUID                  // an Entra object id
	kindGUIDOrUPN             // an object id or a user principal name
	kindGUIDList              // comma-separated object ids, may be empty
	kindEntraType             // EntraIdUser
	kindUserType              // user or EntraIdUser
)

// needsValue reports whether checking k needs the whole value; free text
// needs only its length and first byte, which the tokenizer tracks.
func (k kind) needsValue() bool { return k >= kindGUID }

// checkField checks the data field that has just ended against its column.
func (v *validator) checkField() error {
	k := v.cols[v.field].kind
	if v.flen == 0 {
		if k == kindOptText || k == kindGUIDList {
			return nil
		}
		return v.fieldError("empty; this column is required")
	}
	if v.checked {
		return nil
	}
	val := v.val
	switch k {
	case kindText, kindOptText:
		if v.flen > 1 && isFormulaStart(v.first) {
			return v.fieldError("looks like a spreadsheet formula (starts with %q): %s", v.first, quote(val))
		}
	case kindGUID:
		if !isGUID(val) {
			return v.fieldError("not a GUID: %s", quote(val))
		}
	case kindGUIDOrUPN:
		if !isGUID(val) && !isUPN(val) {
			return v.fieldError("not a GUID or user principal name: %s", quote(val))
		}
	case kindGUIDList:
		return v.checkList(val)
	case kindEntraType:
		if !strings.EqualFold(str(val), "EntraIdUser") {
			return v.fieldError("not a supported principal type: %s (expected EntraIdUser)", quote(val))
		}
	case kindUserType:
		if !strings.EqualFold(str(val), "user") && !strings.EqualFold(str(val), "EntraIdUser") {
			return v.fieldError("not a supported principal type: %s (expected user or EntraIdUser)", quote(val))
		}
	}
	return nil
}

// checkList checks a non-empty list of object ids.
func (v *validator) checkList(val []byte) error {
	for n := 1; ; n++ {
		item, rest, more := bytes.Cut(val, []byte{','})
		item = trimBlanks(item)
		if len(item) == 0 {
			return v.fieldError("empty item %d in the list; separate GUIDs with single commas, or leave the cell empty for none", n)
		}
		if !isGUID(item) {
			return v.fieldError("not a GUID: %s (item %d of the list)", quote(item), n)
		}
		if !more {
			return nil
		}
		val = rest
	}
}

// trimBlanks trims the spaces and tabs around b.
func trimBlanks(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func (v *validator) fieldError(format string, args ...any) error {
	return v.errorf(v.recLine, v.column(), format, args...)
}

// matchHeader finds the format the header names and the rule for each
// position.
func (v *validator) matchHeader() error {
	names := v.names
	best, bestDiff, bestMatched := -1, 0, 0
	for fi := range Formats {
		f := &Formats[fi]
		matched := 0
		for _, n := range names {
			if f.index(n) >= 0 {
				matched++
			}
		}
		diff := len(f.Columns) - matched + len(names) - matched
		if matched > 0 && (best < 0 || diff < bestDiff || diff == bestDiff && matched > bestMatched) {
			best, bestDiff, bestMatched = fi, diff, matched
		}
	}
	if best < 0 {
		if len(names) > 0 && (isGUID([]byte(names[0])) || isUPN([]byte(names[0]))) {
			return v.errorf(v.recLine, "", "the first line looks like data, not a header; it must name the columns of one of these formats: %s", formatList())
		}
		return v.errorf(v.recLine, "", "unknown header; expected the columns of one of these formats: %s", formatList())
	}
	for i, n := range names {
		if n == "" {
			return v.errorf(v.recLine, "", "column %d of the header has no name", i+1)
		}
		for j := range i {
			if strings.EqualFold(n, names[j]) {
				return v.errorf(v.recLine, "", "column %s appears twice in the header (columns %d and %d)", quote([]byte(n)), j+1, i+1)
			}
		}
	}
	f := &Formats[best]
	if bestDiff > 0 {
		var missing, extra []string
		for _, c := range f.Columns {
			if !containsFold(names, c) {
				missing = append(missing, c)
			}
		}
		for _, n := range names {
			if f.index(n) < 0 {
				extra = append(extra, quote([]byte(n)))
			}
		}
		var problems []string
		if len(missing) > 0 {
			problems = append(problems, "missing "+strings.Join(missing, ", "))
		}
		if len(extra) > 0 {
			problems = append(problems, "unexpected "+strings.Join(extra, ", "))
		}
		return v.errorf(v.recLine, "", "the header does not match the %s format: %s (expected, in any order: %s)",
			f.Name, strings.Join(problems, "; "), strings.Join(f.Columns, ", "))
	}
	v.format = best
	v.cols = make([]column, len(names))
	for i, n := range names {
		v.cols[i] = newColumn(f.kinds[f.index(n)])
	}
	setTextRuns(v.cols)
	return nil
}

// index returns the position of the column named name (any case), or -1.
func (f *Format) index(name string) int {
	for i, c := range f.Columns {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

func containsFold(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// formatList names every format and its columns, for messages.
func formatList() string {
	parts := make([]string, len(Formats))
	for i, f := range Formats {
		parts[i] = fmt.Sprintf("%s (%s)", f.Name, strings.Join(f.Columns, ", "))
	}
	return strings.Join(parts, "; ")
}

// isFormulaStart reports whether a value starting with c is run as a
// formula by spreadsheet programs.
func isFormulaStart(c byte) bool {
	return c == '=' || c == '+' || c == '-' || c == '@'
}

// str views b as a string without copying, for comparisons that must not
// allocate on every row; the string must not outlive the call it is
// passed to.
func str(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// isGUID is review.IsGUID for bytes. Ids are two thirds of the bytes of a
// typical entra-template row and are checked on every row, so this one
// tests eight bytes at a time; TestIsGUIDMatchesReview holds it to
// review.IsGUID, the definition.
func isGUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	// Five overlapping words cover the 36 bytes; the second and third hold
	// the four dashes, which are compared whole and left out of the test
	// for hexadecimal digits.
	le := binary.LittleEndian
	w0, w1, w2, w3, w4 := le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]), le.Uint64(b[28:])
	if w1&dashMask8 != ones*'-'&dashMask8 || w2&dashMask16 != ones*'-'&dashMask16 {
		return false
	}
	return hexWord(w0)&hexWord(w3)&hexWord(w4)&(hexWord(w1)|dashMask8)&(hexWord(w2)|dashMask16)&highs == highs
}

// The dashes of a GUID in the second and third of the words isGUID tests:
// bytes 8 and 13, and bytes 18 and 23.
const (
	dashMask8  = 0xFF<<(0*8) | 0xFF<<(5*8)
	dashMask16 = 0xFF<<(2*8) | 0xFF<<(7*8)
)

// hexWord flags (with 0x80) each byte of x that is a hexadecimal digit.
// Bits other than the flags are garbage. A byte at or above 0x80 is never
// flagged, but its additions may carry into the next byte and flag it
// wrongly; isGUID tests every byte of the words it passes, so that byte
// makes it fail all the same.
func hexWord(x uint64) uint64 {
	digit := (x + ones*(0x80-'0')) &^ (x + ones*(0x80-'9'-1))
	y := x | ones*0x20 // lower case; digits are unchanged
	letter := (y + ones*(0x80-'a')) &^ (y + ones*(0x80-'f'-1))
	return digit | letter
}

// isUPN reports whether b has the shape of an Entra user principal name:
// name@domain, the name made of the characters Entra allows in user names
// (letters, digits and ' . - _ ! # ^ ~, '#' also marking guests), the
// domain a DNS name of at least two labels.
func isUPN(b []byte) bool {
	name, domain, ok := bytes.Cut(b, []byte{'@'})
	if !ok || len(name) == 0 || name[0] == '.' || name[len(name)-1] == '.' {
		return false
	}
	for _, c := range name {
		if !isAlnum(c) && !strings.ContainsRune("'.-_!#^~", rune(c)) {
			return false
		}
	}
	labels := 0
	for label := range bytes.SplitSeq(domain, []byte{'.'}) {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !isAlnum(c) && c != '-' {
				return false
			}
		}
		labels++
	}
	return labels >= 2
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// quote quotes a value for a message, shortened to 40 characters so that a
// report stays readable whatever the file holds.
func quote(b []byte) string {
	const max = 40
	s := string(b)
	if utf8.RuneCountInString(s) <= max {
		return strconv.Quote(s)
	}
	cut := 0
	for range max {
		_, size := utf8.DecodeRuneInString(s[cut:])
		cut += size
	}
	return strconv.Quote(s[:cut]) + "…"
}
