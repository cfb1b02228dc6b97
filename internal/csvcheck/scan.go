package csvcheck

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
)

// Tokenizer states, between two bytes.
const (
	stRecordStart   = iota // before the first byte of a record
	stRecordCR             // a CR as the first byte of a record
	stFieldStart           // before the first byte of a field that is not the first
	stUnquoted             // inside an unquoted field
	stQuoted               // inside a quoted field
	stQuoteInQuoted        // after a '"' inside a quoted field: closing, or the first of ""
	stCR                   // a CR after the last field of a record
)

// The bytes that end a run of plain field content, outside and inside
// quotes: delimiters, NUL, and the lead bytes of UTF-8 sequences, which are
// validated on their own. skipPlain finds the same bytes eight at a time.
var unquotedStop, quotedStop [256]bool

func init() {
	for c := 0x80; c < 0x100; c++ {
		unquotedStop[c], quotedStop[c] = true, true
	}
	for _, c := range []byte{',', '"', '\r', '\n', 0} {
		unquotedStop[c] = true
	}
	for _, c := range []byte{'"', '\n', 0} {
		quotedStop[c] = true
	}
}

// hooks let the structural tests see every field; with hooks set the
// validator skips the header and every column rule.
type hooks struct {
	field  func(value []byte)
	record func()
}

// validator is the state machine behind Reader. It sees the input as a
// sequence of chunks (whatever each Read returned) and keeps no reference
// to a chunk after write returns: a field value that must be checked and
// is not whole in one chunk is copied into scratch, bounded by
// MaxFieldBytes.
type validator struct {
	file  string
	hooks *hooks

	// prefix: the first bytes, held until a byte order mark is recognised.
	started bool
	pre     [3]byte
	npre    int

	state   int
	base    int64 // offset of the current chunk in the input
	line    int   // line of the current byte
	recLine int   // line where the current record started
	recOff  int64 // offset where the current record started

	// UTF-8 sequence in progress: continuation bytes still expected, the
	// range the next one must fall in, and the lead byte for messages.
	u8need     int
	u8lo, u8hi byte
	u8lead     byte

	// the current field
	field   int    // its index in the record
	flen    int    // bytes of value so far
	first   byte   // first byte of value
	need    bool   // its value must be kept for a check
	val     []byte // the value so far, in the chunk or in scratch
	owned   bool   // val is in scratch
	scratch []byte
	fast    kind // see column.fast
	checked bool // fastField has checked the value

	// header and column rules
	header bool     // the current record is the header
	names  []string // header names as written (trimmed), by position
	cols   []column // the rule for each position
	format int      // index in Formats, -1 until the header matched
	rows   int64
}

func (v *validator) init(file string) {
	v.file = file
	v.line = 1
	v.header = true
	v.format = -1
}

// write validates the next chunk of input.
func (v *validator) write(b []byte) error {
	if !v.started {
		return v.writePrefix(b)
	}
	err := v.tokenize(b)
	v.base += int64(len(b))
	return err
}

// Byte order marks.
const (
	bomUTF8    = "\xEF\xBB\xBF"
	bomUTF16LE = "\xFF\xFE"
	bomUTF16BE = "\xFE\xFF"
)

// writePrefix holds back the first bytes until they are known not to be a
// byte order mark: a UTF-8 one is skipped, a UTF-16 one refused, anything
// else is validated as content.
func (v *validator) writePrefix(b []byte) error {
	for len(b) > 0 {
		v.pre[v.npre] = b[0]
		v.npre++
		b = b[1:]
		v.base++
		switch p := string(v.pre[:v.npre]); {
		case p == bomUTF8:
			v.started = true
			return v.write(b)
		case p == bomUTF16LE || p == bomUTF16BE:
			order := "little"
			if p == bomUTF16BE {
				order = "big"
			}
			return v.errorf(1, "", "the file is UTF-16 (%s-endian byte order mark); UTF-16 is not supported, save the file as UTF-8", order)
		case strings.HasPrefix(bomUTF8, p) || strings.HasPrefix(bomUTF16LE, p) || strings.HasPrefix(bomUTF16BE, p):
			// could still be a byte order mark
		default:
			return v.flushPrefix(b)
		}
	}
	return nil
}

// flushPrefix validates the held-back bytes, then the rest of the chunk.
func (v *validator) flushPrefix(rest []byte) error {
	v.started = true
	held := v.pre[:v.npre]
	v.base -= int64(len(held))
	if err := v.write(held); err != nil {
		return err
	}
	return v.write(rest)
}

// tokenize runs the state machine over one chunk.
func (v *validator) tokenize(b []byte) error {
	i := 0
	for i < len(b) {
		switch v.state {
		case stRecordStart:
			if !v.header && v.hooks == nil {
				if i = v.fastRecords(b, i); i == len(b) {
					break
				}
			}
			v.recLine, v.recOff = v.line, v.base+int64(i)
			switch b[i] {
			case '\n':
				return v.blankLine()
			case '\r':
				v.state = stRecordCR
				i++
				continue
			}
			v.startRecord()
			v.state = stFieldStart

		case stRecordCR:
			if b[i] == '\n' {
				return v.blankLine()
			}
			return v.bareCR()

		case stFieldStart:
			if v.fast != kindText {
				if i = v.fastField(b, i); v.state != stFieldStart {
					break // fastField took the field's value
				}
			}
			if b[i] == '"' {
				v.state = stQuoted
				i++
				break
			}
			v.state = stUnquoted
			fallthrough

		case stUnquoted:
			// The common case, plain ASCII, without the call to scan.
			var err error
			j := i
			if v.u8need == 0 {
				j = skipPlain(b, i, false)
			}
			if v.u8need > 0 || j < len(b) && b[j] >= 0x80 {
				j, err = v.scan(b, j, false)
			}
			if aerr := v.addSeg(b[i:j]); aerr != nil {
				return aerr
			}
			if err != nil {
				return err
			}
			if i = j; i == len(b) {
				break
			}
			c := b[i]
			i++
			switch c {
			case ',':
				if err := v.endField(i-1, true); err != nil {
					return err
				}
				v.state = stFieldStart
			case '\n':
				if err := v.endLine(i - 1); err != nil {
					return err
				}
			case '\r':
				if err := v.endField(i-1, false); err != nil {
					return err
				}
				v.state = stCR
			case '"':
				return v.errorf(v.recLine, v.column(), "'\"' inside an unquoted field; quote the whole field and double each quote inside it (\"\")")
			default: // NUL
				return v.nul()
			}

		case stQuoted:
			j, err := v.scanQuoted(b, i)
			if aerr := v.addSeg(b[i:j]); aerr != nil {
				return aerr
			}
			if err != nil {
				return err
			}
			if i = j; i == len(b) {
				break
			}
			if b[i] == 0 {
				return v.nul()
			}
			v.state = stQuoteInQuoted // b[i] is '"'
			i++

		case stQuoteInQuoted:
			c := b[i]
			switch c {
			case '"':
				if err := v.addSeg(b[i : i+1]); err != nil {
					return err
				}
				v.state = stQuoted
			case ',':
				if err := v.endField(i, true); err != nil {
					return err
				}
				v.state = stFieldStart
			case '\n':
				if err := v.endLine(i); err != nil {
					return err
				}
			case '\r':
				if err := v.endField(i, false); err != nil {
					return err
				}
				v.state = stCR
			default:
				return v.errorf(v.recLine, v.column(), "%s after the closing quote of a quoted field; only ',' or the end of the line may follow it (double a quote inside a field: \"\")", describeByte(c))
			}
			i++

		case stCR:
			if b[i] != '\n' {
				return v.bareCR()
			}
			if err := v.endRecord(); err != nil {
				return err
			}
			v.line++
			v.state = stRecordStart
			i++
		}
	}
	v.keepField()
	return nil
}

// close validates the end of the input.
func (v *validator) close() error {
	if !v.started {
		if err := v.flushPrefix(nil); err != nil {
			return err
		}
	}
	if v.u8need > 0 {
		return v.badUTF8()
	}
	switch v.state {
	case stQuoted:
		return v.errorf(v.recLine, v.column(), "quoted field never closed: its opening '\"' has no closing quote before the end of the file")
	case stRecordCR, stCR:
		return v.bareCR()
	case stFieldStart, stUnquoted, stQuoteInQuoted:
		// The end of the input is position 0 of an empty last chunk.
		if err := v.endField(0, false); err != nil {
			return err
		}
		if err := v.endRecord(); err != nil {
			return err
		}
		v.state = stRecordStart
	}
	if v.hooks != nil {
		return nil
	}
	if v.header {
		return v.errorf(0, "", "empty file: the first line must name the columns of one of these formats: %s", formatList())
	}
	if v.rows == 0 {
		return v.errorf(0, "", "no data rows: the file has a header and nothing else")
	}
	return nil
}

// scan returns the end of the run of field content starting at b[i]: the
// index of a byte that ends the run (see unquotedStop and quotedStop) and
// is not part of a UTF-8 sequence, or len(b). It validates UTF-8 on the way.
func (v *validator) scan(b []byte, i int, quoted bool) (int, error) {
	for {
		if v.u8need == 0 {
			if i = skipPlain(b, i, quoted); i == len(b) || b[i] < 0x80 {
				return i, nil
			}
		}
		var err error
		if i, err = v.utf8(b, i); err != nil || i == len(b) {
			return i, err
		}
	}
}

// skipPlain returns the index of the first byte from b[i] on that ends a
// run of plain ASCII content, or len(b). Every such byte is below 0x2D or
// above 0x7F, so most words (ids are hex digits and dashes) pass a test of
// a few instructions; the others are tested byte by byte, eight at once.
func skipPlain(b []byte, i int, quoted bool) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if (x-ones*0x2D)&^x&highs|x&highs == 0 {
			continue
		}
		var m uint64
		if quoted {
			m = quotedWord(x)
		} else {
			m = unquotedWord(x)
		}
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	stop := &unquotedStop
	if quoted {
		stop = &quotedStop
	}
	for i < len(b) && !stop[b[i]] {
		i++
	}
	return i
}

// Eight-byte words, least significant byte first, tested for bytes all at
// once: the lowest flagged byte of a result is always a real match.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// zeros flags the zero bytes of x.
func zeros(x uint64) uint64 { return (x - ones) &^ x & highs }

// unquotedWord flags the bytes of x in unquotedStop.
func unquotedWord(x uint64) uint64 {
	return x&highs | zeros(x) | zeros(x^(ones*',')) | zeros(x^(ones*'"')) |
		zeros(x^(ones*'\r')) | zeros(x^(ones*'\n'))
}

// quotedWord flags the bytes of x in quotedStop.
func quotedWord(x uint64) uint64 {
	return x&highs | zeros(x) | zeros(x^(ones*'"')) | zeros(x^(ones*'\n'))
}

// scanQuoted is scan inside a quoted field, where ',' and CR are content
// and LF is content that starts a new line.
func (v *validator) scanQuoted(b []byte, i int) (int, error) {
	for {
		j, err := v.scan(b, i, true)
		if err != nil || j == len(b) || b[j] != '\n' {
			return j, err
		}
		v.line++
		i = j + 1
	}
}

// utf8 validates the UTF-8 sequence starting (or, after a chunk boundary,
// continuing) at b[i]. It returns the index after the sequence, or len(b)
// with the sequence still open.
func (v *validator) utf8(b []byte, i int) (int, error) {
	if v.u8need == 0 {
		c := b[i]
		v.u8lead, v.u8lo, v.u8hi = c, 0x80, 0xBF
		switch {
		case c < 0xC2: // a continuation byte, or an overlong form
			return i, v.badUTF8()
		case c < 0xE0:
			v.u8need = 1
		case c < 0xF0:
			v.u8need = 2
			if c == 0xE0 {
				v.u8lo = 0xA0 // no overlong forms
			} else if c == 0xED {
				v.u8hi = 0x9F // no surrogates
			}
		case c < 0xF5:
			v.u8need = 3
			if c == 0xF0 {
				v.u8lo = 0x90 // no overlong forms
			} else if c == 0xF4 {
				v.u8hi = 0x8F // nothing above U+10FFFF
			}
		default:
			return i, v.badUTF8()
		}
		i++
	}
	for v.u8need > 0 && i < len(b) {
		if c := b[i]; c < v.u8lo || c > v.u8hi {
			return i, v.badUTF8()
		}
		v.u8lo, v.u8hi = 0x80, 0xBF
		v.u8need--
		i++
	}
	return i, nil
}

// startRecord resets the per-record state before its first field.
func (v *validator) startRecord() {
	v.field = 0
	v.resetField()
}

// resetField prepares for the next field of the record.
func (v *validator) resetField() {
	v.flen, v.first = 0, 0
	v.val, v.owned, v.checked = nil, false, false
	v.scratch = v.scratch[:0]
	if v.field < len(v.cols) {
		c := &v.cols[v.field]
		v.need, v.fast = c.need, c.fast
	} else {
		// the header, the structural tests, or past the last column
		v.need, v.fast = v.header || v.hooks != nil, kindText
	}
}

// column is what the tokenizer needs to know of a column's rule, worked out
// once from the header.
type column struct {
	kind kind
	need bool // kind.needsValue()
	fast kind // kindGUID or kindGUIDList when fastField may take the value, else kindText
	// textRun counts the free-text columns from this one on, for
	// fastRecord; 0 for other kinds.
	textRun int
}

func newColumn(k kind) column {
	c := column{kind: k, need: k.needsValue(), fast: kindText}
	if k == kindGUID || k == kindGUIDList {
		c.fast = k
	}
	return c
}

// fastField takes the common shapes of id columns in one pass when they
// are whole in b: an unquoted GUID (a list of one in a list column), or a
// quoted list of GUIDs separated by a comma and spaces. A GUID holds no
// byte that matters to the tokenizer, so checking it is scanning it. It
// returns where the tokenizer goes on, with the state moved on to the
// field's end; in any other case it leaves everything as it was for the
// general path, which reaches the same outcome more slowly.
func (v *validator) fastField(b []byte, i int) int {
	if b[i] != '"' {
		if end := i + 36; end < len(b) && isGUID(b[i:end]) && isFieldEnd(b[end]) {
			v.flen, v.first, v.checked = 36, b[i], true
			v.state = stUnquoted
			return end
		}
		return i
	}
	if v.fast != kindGUIDList {
		return i
	}
	j := i + 1
	for j+36 < len(b) && j-i <= MaxFieldBytes && isGUID(b[j:j+36]) {
		j += 36
		for j < len(b) && b[j] == ' ' {
			j++
		}
		if j+1 >= len(b) || b[j] == '"' && b[j+1] == '"' {
			return i // the end is in the next chunk, or a doubled quote
		}
		if b[j] == '"' {
			v.flen, v.first, v.checked = j-i-1, b[i+1], true
			v.state = stQuoteInQuoted
			return j + 1
		}
		if b[j] != ',' {
			return i
		}
		j++
		for j < len(b) && b[j] == ' ' {
			j++
		}
	}
	return i
}

// isFieldEnd reports whether c ends an unquoted field.
func isFieldEnd(c byte) bool { return c == ',' || c == '\n' || c == '\r' }

// addSeg appends a run of the current field's value.
func (v *validator) addSeg(seg []byte) error {
	if len(seg) == 0 {
		return nil
	}
	if v.flen == 0 {
		v.first = seg[0]
		if isFormulaStart(v.first) {
			v.need = true // to quote it in a message
		}
	}
	v.flen += len(seg)
	if v.flen > MaxFieldBytes {
		return v.errorf(v.recLine, v.column(), "field longer than %d bytes", MaxFieldBytes)
	}
	if !v.need {
		return nil
	}
	switch {
	case v.val == nil:
		v.val = seg
	case v.owned:
		v.scratch = append(v.scratch, seg...)
		v.val = v.scratch
	default:
		v.scratch = append(append(v.scratch[:0], v.val...), seg...)
		v.val, v.owned = v.scratch, true
	}
	return nil
}

// keepField copies a field value that lives in the caller's chunk into
// scratch before the chunk goes away.
func (v *validator) keepField() {
	if v.val != nil && !v.owned {
		v.scratch = append(v.scratch[:0], v.val...)
		v.val, v.owned = v.scratch, true
	}
}

// endField checks the field that ends at b[pos] (pos is an index in the
// current chunk); more tells whether another field follows.
func (v *validator) endField(pos int, more bool) error {
	if size := v.base + int64(pos) - v.recOff; size > MaxRecordBytes {
		return v.errorf(v.recLine, "", "record longer than %d bytes", MaxRecordBytes)
	}
	switch {
	case v.hooks != nil:
		v.hooks.field(v.val)
	case v.header:
		v.names = append(v.names, string(trimBlanks(v.val)))
	default:
		if err := v.checkField(); err != nil {
			return err
		}
	}
	v.field++
	if more && v.hooks == nil {
		if v.header && v.field >= MaxHeaderColumns {
			return v.errorf(v.recLine, "", "the header has more than %d columns; expected the columns of one of these formats: %s", MaxHeaderColumns, formatList())
		}
		if !v.header && v.field >= len(v.cols) {
			return v.errorf(v.recLine, "", "more than %d fields; the header has %d columns", len(v.cols), len(v.cols))
		}
	}
	v.resetField()
	return nil
}

// endLine ends the field and the record at the LF at b[pos].
func (v *validator) endLine(pos int) error {
	if err := v.endField(pos, false); err != nil {
		return err
	}
	if err := v.endRecord(); err != nil {
		return err
	}
	v.line++
	v.state = stRecordStart
	return nil
}

// endRecord checks the record whose last field has just ended.
func (v *validator) endRecord() error {
	switch {
	case v.hooks != nil:
		v.hooks.record()
	case v.header:
		if err := v.matchHeader(); err != nil {
			return err
		}
		v.header = false
	default:
		if v.field < len(v.cols) {
			return v.errorf(v.recLine, "", "%d fields; the header has %d columns", v.field, len(v.cols))
		}
		v.rows++
	}
	return nil
}

// column is the name of the current field's column, "" in the header.
func (v *validator) column() string {
	if v.header || v.field >= len(v.names) {
		return ""
	}
	return v.names[v.field]
}

func (v *validator) blankLine() error {
	return v.errorf(v.recLine, "", "blank line; remove it (a blank line is not a record)")
}

func (v *validator) bareCR() error {
	return v.errorf(v.recLine, "", "carriage return (CR) not followed by a line feed; save the file with CRLF or LF line ends")
}

func (v *validator) nul() error {
	return v.errorf(v.recLine, v.column(), "NUL byte; the file may be UTF-16 or binary: save it as UTF-8 text")
}

func (v *validator) badUTF8() error {
	return v.errorf(v.recLine, v.column(), "not valid UTF-8 (byte 0x%02X); save the file as UTF-8 (in Excel: CSV UTF-8)", v.u8lead)
}

// errorf returns an *Error at line.
func (v *validator) errorf(line int, column, format string, args ...any) error {
	return &Error{File: v.file, Line: line, Column: column, Message: fmt.Sprintf(format, args...)}
}

// describeByte names c for a message.
func describeByte(c byte) string {
	switch {
	case c == 0:
		return "a NUL byte"
	case c == ' ':
		return "a space"
	case c == '\t':
		return "a tab"
	case c > ' ' && c < 0x7F:
		return fmt.Sprintf("%q", c)
	default:
		return fmt.Sprintf("byte 0x%02X", c)
	}
}
