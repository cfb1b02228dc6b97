package csvcheck

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unicode/utf8"
)

// The record fast path. Between the header and the end of a file the
// tokenizer's state machine spends most of its time on bookkeeping per
// byte and per field; yet almost every record of a real file is valid and
// whole in the chunk that holds its first byte. fastRecords takes such
// records in one pass with the column rules inlined, and gives up on a
// record (touching no state) at the first thing it does not take: a
// record not whole in the chunk, any problem, any shape it does not know.
// The state machine then reads that record from its first byte and reaches
// the outcome it always did, so the fast path only ever decides that a
// record is good, never what is wrong with it.
// TestFastPathAgreesWithTheStateMachine and FuzzValidate (one read against
// many small ones, which the fast path never sees whole) hold the two to
// the same outcome.

// fastRecords validates the whole data records that start at b[i] and
// returns the index after the last one it accepted, i if none. It is only
// called at the start of a record, after the header, without hooks.
func (v *validator) fastRecords(b []byte, i int) int {
	cols := v.cols
	for i < len(b) {
		end, lines := fastRecord(b, i, cols)
		if end < 0 {
			break
		}
		v.rows++
		v.line += 1 + lines
		i = end
	}
	return i
}

// fastRecord returns the index after the line end of the record starting
// at b[start] and the number of LFs inside its quoted fields, or -1 when
// it does not accept the record.
//
// The common shapes of ids and types are tested here and those of free
// text in textRun, a run of columns at a time; anything else goes to
// scanField and valueOK. Calls are kept out of the common path: one costs
// as much as the test of a short value, because every live variable is
// saved around it.
func fastRecord(b []byte, start int, cols []column) (end, lines int) {
	p := start
	if p >= len(b) || b[p] == '\n' || b[p] == '\r' {
		return -1, 0 // a blank line, or a bare CR
	}
	for c := 0; c < len(cols); {
		k := cols[c].kind
		term := -1 // the index of the byte after the field
		next := c + 1
		switch k {
		case kindText, kindOptText:
			next = c + cols[c].textRun
			var nl int
			if term, nl = textRun(b, p, cols[c:next]); term < 0 {
				return -1, 0
			}
			lines += nl
		case kindGUID, kindGUIDList:
			// A GUID, or in a list column a quoted list of them separated
			// by commas, blanks around them allowed: the usual shape.
			j, list := p, false
			if k == kindGUIDList && p < len(b) && b[p] == '"' {
				j, list = p+1, true
			}
			for j-p <= MaxFieldBytes {
				if list {
					for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
						j++
					}
				}
				if j+36 >= len(b) {
					break
				}
				w0, w1, w2, w3, w4 := word(b, j), word(b, j+8), word(b, j+16), word(b, j+24), word(b, j+28)
				if w1&dashMask8 != ones*'-'&dashMask8 || w2&dashMask16 != ones*'-'&dashMask16 ||
					hexWord(w0)&hexWord(w3)&hexWord(w4)&(hexWord(w1)|dashMask8)&(hexWord(w2)|dashMask16)&highs != highs {
					break
				}
				if j += 36; !list {
					term = j
					break
				}
				for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
					j++
				}
				if j+1 >= len(b) {
					break
				}
				if b[j] == ',' {
					j++
					continue
				}
				if b[j] == '"' && b[j+1] != '"' && j-p-1 <= MaxFieldBytes {
					term = j + 1
				}
				break
			}
		case kindEntraType:
			if p+11 < len(b) && isEntraIdUser(b[p:p+11]) {
				term = p + 11
			}
		}
		if term < 0 {
			val, t, doubled, nl, ok := scanField(b, p)
			if !ok || len(val)-doubled > MaxFieldBytes || !valueOK(k, val, doubled) {
				return -1, 0
			}
			term = t
			lines += nl
		}
		if term >= len(b) {
			return -1, 0
		}
		if c = next; c < len(cols) {
			if b[term] != ',' {
				return -1, 0
			}
			p = term + 1
			continue
		}
		if term-start > MaxRecordBytes {
			return -1, 0
		}
		switch b[term] {
		case '\n':
			return term + 1, lines
		case '\r':
			if term+1 < len(b) && b[term+1] == '\n' {
				return term + 2, lines
			}
		}
	}
	return -1, 0
}

// textRun reads the free-text fields for cols, one after the other from
// b[p], and returns the index of the byte after the last one and the
// number of LFs inside them, or -1 when it does not accept them. Words are
// tested for a byte below 0x20, '"', ',' (outside quotes) and any byte
// from 0x80 up; the byte found decides.
func textRun(b []byte, p int, cols []column) (term, lines int) {
	for i := range cols {
		q := p
		if q >= len(b) {
			return -1, lines
		}
		from, ok := q, true
		if b[q] != '"' {
			for {
				if q+8 > len(b) {
					return -1, lines
				}
				x := word(b, q)
				y, z := x^(ones*'"'), x^(ones*',')
				m := ((x-ones*0x20)&^x | (y-ones)&^y | (z-ones)&^z | x) & highs
				if m == 0 {
					q += 8
					continue
				}
				// The flagged byte, taken from the word rather than loaded
				// again.
				tz := bits.TrailingZeros64(m)
				q += tz >> 3
				ch := byte(x >> (tz &^ 7))
				if ch == ',' || ch == '\n' || ch == '\r' {
					break
				}
				if ch >= 0x80 || ch == 0 || ch == '"' {
					ok = false // UTF-8, or a problem
					break
				}
				q++ // another control character
			}
			term = q
		} else {
			q++
			from = q
		quoted:
			for {
				if q+8 > len(b) {
					return -1, lines
				}
				x := word(b, q)
				y := x ^ (ones * '"')
				m := ((x-ones*0x20)&^x | (y-ones)&^y | x) & highs
				if m == 0 {
					q += 8
					continue
				}
				tz := bits.TrailingZeros64(m)
				q += tz >> 3
				switch ch := byte(x >> (tz &^ 7)); {
				case ch == '"':
					break quoted
				case ch >= 0x80 || ch == 0 || ch == '\n':
					ok = false // UTF-8, a line break to count, or a problem
					break quoted
				default:
					q++ // CR or another control character
				}
			}
			if ok && q+1 < len(b) && b[q+1] != '"' {
				term = q + 1
			} else {
				ok = false
			}
		}
		if ok {
			if n := q - from; n == 0 && cols[i].kind == kindText || n > 1 && formulaStart[b[from]] || n > MaxFieldBytes {
				return -1, lines
			}
		} else {
			val, t, doubled, nl, ok := scanField(b, p)
			if !ok || len(val)-doubled > MaxFieldBytes || !valueOK(cols[i].kind, val, doubled) {
				return -1, lines
			}
			term = t
			lines += nl
		}
		if i == len(cols)-1 {
			return term, lines
		}
		if term >= len(b) || b[term] != ',' {
			return -1, lines
		}
		p = term + 1
	}
	return -1, lines
}

// formulaStart is isFormulaStart as a table: one load in the fast path
// instead of four comparisons.
var formulaStart = [256]bool{'=': true, '+': true, '-': true, '@': true}

// setTextRuns notes in each free-text column how many free-text columns
// start there, itself included, for fastRecord.
func setTextRuns(cols []column) {
	for i := len(cols) - 1; i >= 0; i-- {
		cols[i].textRun = 0
		if k := cols[i].kind; k == kindText || k == kindOptText {
			cols[i].textRun = 1
			if i+1 < len(cols) {
				cols[i].textRun += cols[i+1].textRun
			}
		}
	}
}

// scanField reads the field starting at b[p]: its value as written (inside
// the quotes of a quoted field, doubled quotes still doubled), the index
// of the byte after the field, and the number of doubled quotes and of LFs
// in it. ok is false when the field is not whole in b (the byte after it
// must be in b too), or holds a NUL byte, invalid UTF-8 or a '"' where
// the tokenizer refuses one.
func scanField(b []byte, p int) (val []byte, term, doubled, lines int, ok bool) {
	if p >= len(b) {
		return nil, 0, 0, 0, false
	}
	if b[p] == '"' {
		q := p + 1
		for {
			if q = skipPlain(b, q, true); q >= len(b) {
				return nil, 0, 0, 0, false
			}
			switch c := b[q]; {
			case c == '"':
				if q+1 >= len(b) {
					return nil, 0, 0, 0, false
				}
				if b[q+1] != '"' {
					return b[p+1 : q], q + 1, doubled, lines, true
				}
				doubled++
				q += 2
			case c == '\n':
				lines++
				q++
			case c >= 0x80:
				if q = skipRune(b, q); q < 0 {
					return nil, 0, 0, 0, false
				}
			default: // NUL
				return nil, 0, 0, 0, false
			}
		}
	}
	q := p
	for {
		if q = skipPlain(b, q, false); q >= len(b) {
			return nil, 0, 0, 0, false
		}
		if b[q] < 0x80 {
			break
		}
		if q = skipRune(b, q); q < 0 {
			return nil, 0, 0, 0, false
		}
	}
	if c := b[q]; c == '"' || c == 0 {
		return nil, 0, 0, 0, false
	}
	return b[p:q], q, 0, 0, true
}

// skipRune returns the index after the valid UTF-8 sequence at b[q], or -1
// if the bytes there are not one (or it is cut off at the end of b).
func skipRune(b []byte, q int) int {
	r, size := utf8.DecodeRune(b[q:])
	if r == utf8.RuneError && size == 1 {
		return -1
	}
	return q + size
}

// valueOK reports whether checkField accepts the value val, as written,
// with doubled quotes in it, for a column of kind k. Its answer may be
// false where checkField's is not, never the other way round.
func valueOK(k kind, val []byte, doubled int) bool {
	n := len(val) - doubled
	if n == 0 {
		return k == kindOptText || k == kindGUIDList
	}
	switch k {
	case kindText, kindOptText:
		// A value starting with a doubled quote starts with '"'.
		return n == 1 || !isFormulaStart(val[0])
	}
	if doubled > 0 {
		return false // no id or type holds a '"'
	}
	switch k {
	case kindGUID:
		return isGUID(val)
	case kindGUIDOrUPN:
		return isGUID(val) || isUPN(val)
	case kindGUIDList:
		return isGUIDList(val)
	case kindEntraType:
		return strings.EqualFold(str(val), "EntraIdUser")
	case kindUserType:
		return strings.EqualFold(str(val), "user") || strings.EqualFold(str(val), "EntraIdUser")
	}
	return false
}

// isGUIDList reports whether checkList accepts val.
func isGUIDList(val []byte) bool {
	for {
		end := 0
		for end < len(val) && val[end] != ',' {
			end++
		}
		if !isGUID(trimBlanks(val[:end])) {
			return false
		}
		if end == len(val) {
			return true
		}
		val = val[end+1:]
	}
}

// isEntraIdUser reports whether b, 11 bytes, is "EntraIdUser" in any case
// of ASCII letters. Setting bit 5 of a byte maps exactly the upper and
// lower case of a letter to the lower case one, so two words compare all
// eleven bytes.
func isEntraIdUser(b []byte) bool {
	const (
		entraidu = 0x7564696172746e65 // "entraidu", little-endian
		user     = 0x72657375         // "user"
	)
	le := binary.LittleEndian
	return len(b) == 11 && le.Uint64(b)|ones*0x20 == entraidu && le.Uint32(b[7:])|0x20202020 == user
}
