// Package csvcheck validates access-data CSV files while they stream to
// Graph: a Reader passes the bytes through unchanged and stops with an
// *Error at the first bad record, so that a rejected file is never sent
// whole and a valid one is never held in memory.
//
// The rules, chosen because Entra documents almost nothing about its parser
// and a file it silently misreads is worse than one refused with a reason:
//
//   - Encoding: UTF-8 only. A UTF-8 byte order mark is accepted (Excel's
//     "CSV UTF-8" writes one); a UTF-16 byte order mark is refused with a
//     hint; any invalid UTF-8 sequence (Latin-1 or Windows-1252 text, for
//     instance) and any NUL byte are refused.
//   - Structure: RFC 4180 with ',' as the delimiter. A '"' inside an
//     unquoted field, anything but ',' or a line end after a closing quote,
//     and a quoted field still open at the end of the file are errors (the
//     same records encoding/csv refuses with LazyQuotes off). Quoted fields
//     may hold line breaks.
//   - Line ends: LF and CRLF, mixed freely. A CR that is not followed by LF
//     outside a quoted field is refused: old Mac line ends would otherwise
//     read as one endless record. Inside a quoted field a CR is data.
//   - Blank lines are refused: RFC 4180 makes one a record with a single
//     empty field, encoding/csv skips it, and what Graph does is unknown.
//   - The last record may end without a line break.
//   - Sizes: a field longer than MaxFieldBytes, a record longer than
//     MaxRecordBytes, or a header of more than MaxHeaderColumns columns is
//     refused, so that a hostile file cannot make the validator allocate
//     without bound. A row with too many fields is refused at the first
//     field too many, whatever the number.
//   - Header: the first line names the columns of one of Formats, in any
//     order, each exactly once, no other (an unnamed column, as a trailing
//     comma makes, is refused too); names are matched ignoring case and
//     surrounding spaces and tabs. A header that matches no format is
//     compared with the closest one, and the message names the missing and
//     the unexpected columns. See Formats for the rules per column.
//
// Only the first problem is reported: the stream stops there. Line numbers
// count LF bytes, so they are what an editor shows; an error gives the line
// where the bad record starts (the header is line 1), even when the problem
// sits on a later line of a multi-line record, and line 0 when the problem
// is the file as a whole (empty, or a header and no rows). The column is
// the header's name for it as the file writes it, or "" for a problem with
// the header or the record as a whole. Values quoted in messages are cut to
// 40 characters.
//
// The validator works in place on the bytes each Read returns, with a small
// state machine that carries partial UTF-8 sequences and partial values
// across reads, so the outcome never depends on how the input is split;
// it allocates nothing per row. A data record whole in one read is first
// offered to a faster path that tests the usual shapes of each column
// and either accepts the record or leaves it to the state machine, which
// alone decides what is wrong with a bad one.
package csvcheck

import (
	"fmt"
	"io"
	"strings"

	"github.com/byodrop/byodrop/internal/review"
)

// Limits that bound the memory a file can make the validator use.
const (
	// MaxFieldBytes is the longest field value accepted, in bytes of UTF-8
	// text (a doubled quote counts once).
	MaxFieldBytes = 64 << 10
	// MaxRecordBytes is the longest record accepted, in bytes as written,
	// line break excluded.
	MaxRecordBytes = 1 << 20
	// MaxHeaderColumns is the most columns a header may name; the widest
	// documented format has 11.
	MaxHeaderColumns = 64
)

// Format is one documented column set.
type Format struct {
	// Name identifies the format in results and messages.
	Name string
	// Columns are the column names as documented; files may use any case
	// and any order.
	Columns []string
	kinds   []kind // the rule for each column, parallel to Columns
}

// Formats are the three column sets the Graph documentation describes
// (see graph-contract.md); a file must use exactly one of them.
//
// Column rules, taken from the documentation where it says something and
// chosen to be strict where it does not:
//
//   - Principal ids (PrincipalId, principalId) must be canonical GUIDs: they
//     are Entra object ids. PrincipalAADId (beta-2025) may be a GUID or a user
//     principal name, because the 2025 example puts a UPN there.
//   - PrincipalType must be EntraIdUser in entra-template (the only value
//     that page names); v1.0 also accepts user, the value its own example
//     uses. Both ignore case.
//   - Owner lists (EntitlementOwners_Users, EntitlementOwners_Groups,
//     ResourceOwners) may be empty, since only resource-owner reviews need
//     them; when not empty they are comma-separated GUIDs, spaces and tabs
//     around an item allowed, no empty item.
//   - Descriptions (PermissionDescription, ResourceDescription) and
//     CustomData may be empty, although the Entra page calls every column
//     mandatory: a permission without a description is common, and an empty
//     value is what an exporter without one writes. Every other column must
//     not be empty.
//   - Free text refuses a value that starts with '=', '+', '-' or '@' and is
//     longer than that one character. Entra shows these values to reviewers
//     and in downloaded review results; a spreadsheet that opens such a
//     download runs them as formulas (CSV injection). Refusing costs a data
//     owner a rename, accepting could run a payload on a reviewer's machine.
//     A lone "-", the usual placeholder, is accepted.
var Formats = []Format{
	{
		Name: "entra-template",
		Columns: []string{"PrincipalId", "PrincipalType", "PermissionId", "PermissionName",
			"PermissionDescription", "PermissionType", "ScopeId", "ScopeDisplayName",
			"EntitlementOwners_Users", "EntitlementOwners_Groups", "CustomData"},
		kinds: []kind{kindGUID, kindEntraType, kindText, kindText,
			kindOptText, kindText, kindText, kindText,
			kindGUIDList, kindGUIDList, kindOptText},
	},
	{
		Name: "v1.0",
		Columns: []string{"principalId", "principalType", "permissionId", "permissionName",
			"permissionDescription", "permissionType"},
		kinds: []kind{kindGUID, kindUserType, kindText, kindText,
			kindOptText, kindText},
	},
	{
		Name: "beta-2025",
		Columns: []string{"PrincipalAADId", "ResourceId", "ResourceName", "ResourceDescription",
			"ResourceType", "PermissionId", "PermissionName", "PermissionDescription",
			"PermissionType", "ResourceOwners"},
		kinds: []kind{kindGUIDOrUPN, kindText, kindText, kindOptText,
			kindText, kindText, kindText, kindOptText,
			kindText, kindGUIDList},
	},
}

// Result describes what a Reader has validated so far; complete once Read
// has returned io.EOF.
type Result struct {
	// Format is the column set the header matched; nil before the header
	// is complete or when it matched none.
	Format *Format
	// Rows counts data records, the header not included.
	Rows int64
	// Bytes counts the bytes read from the source, a byte order mark
	// included.
	Bytes int64
}

// Error locates the first problem in a file. It is always of kind
// review.Invalid: the same bytes will never pass.
type Error struct {
	File string
	// Line is the 1-based line where the bad record starts (the header is
	// line 1); 0 when the problem is the file as a whole (empty, no rows).
	Line int
	// Column is the column's name as the header writes it; "" when the
	// problem is the record (its length, its field count) or the header.
	Column  string
	Message string
}

// Error formats e the way compilers do, "file:line: column: message", so
// that editors can jump to it; the parts that are unknown are left out.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Column != "" {
		b.WriteString(e.Column)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Kind reports review.Invalid: a bad file is rejected, never retried.
func (e *Error) Kind() review.Kind { return review.Invalid }

// FieldError returns e as it appears in a report.
func (e *Error) FieldError() review.FieldError {
	return review.FieldError{Line: e.Line, Column: e.Column, Message: e.Message}
}

// Reader validates the bytes of a CSV file while passing them through
// unchanged. It reads at most as much as it is asked for, validates those
// bytes in place and hands them on; the first problem ends the stream with
// an *Error, and io.EOF comes only after the end of the input has been
// checked too (an unterminated quote, a missing data row).
type Reader struct {
	src io.Reader
	v   validator
	err error // sticky: the first error returned
}

// NewReader returns a Reader over r; file names the file in errors.
func NewReader(r io.Reader, file string) *Reader {
	rd := &Reader{src: r}
	rd.v.init(file)
	return rd
}

// Read reads from the source into p and returns those bytes once they are
// validated. At the first bad record it returns 0 and the *Error, even if p
// holds good bytes that precede it; a source error is returned as it is.
// Every later call returns the same error.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.src.Read(p)
	if n > 0 {
		if verr := r.v.write(p[:n]); verr != nil {
			r.err = verr
			return 0, verr
		}
	}
	if err == io.EOF {
		if verr := r.v.close(); verr != nil {
			r.err = verr
			return 0, verr
		}
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// Result reports what has been validated so far.
func (r *Reader) Result() Result {
	res := Result{Rows: r.v.rows, Bytes: r.v.base}
	if r.v.format >= 0 {
		res.Format = &Formats[r.v.format]
	}
	return res
}

// Validate reads r to its end and reports the first problem, an *Error, or
// the source's own read error.
func Validate(r io.Reader, file string) (Result, error) {
	rd := NewReader(r, file)
	buf := make([]byte, 64<<10)
	for {
		_, err := rd.Read(buf)
		if err == io.EOF {
			return rd.Result(), nil
		}
		if err != nil {
			return rd.Result(), err
		}
	}
}
