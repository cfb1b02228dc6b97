package bench

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// EntraHeader is the header line of the generated files: the columns of the
// entra-template format.
const EntraHeader = "PrincipalId,PrincipalType,PermissionId,PermissionName,PermissionDescription," +
	"PermissionType,ScopeId,ScopeDisplayName,EntitlementOwners_Users,EntitlementOwners_Groups,CustomData\n"

// maxRowBytes bounds a generated row before padding; the last row is padded
// to make the file exactly its size, so a row must always fit after the
// one before the last.
const maxRowBytes = 512

// CSV is a valid entra-template file of exactly Size bytes, generated as it
// is read: a 1 GiB file costs a few hundred bytes of memory. It is an
// io.ReadSeeker so that an S3 client can size it, hash it and rewind it
// for a retry; the content is the same on every pass.
type CSV struct {
	size int64
	pos  int64
	row  int
	buf  []byte // generated; buf[off:] is not read yet
	off  int
	rows int64 // data rows in the whole file, known after a full pass
}

// NewCSV returns a generator of exactly size bytes. The file holds the
// header and at least one data row, so size must be at least MinCSVSize.
func NewCSV(size int64) (*CSV, error) {
	if size < MinCSVSize {
		return nil, fmt.Errorf("generated CSV: %d bytes is too small (at least %d)", size, MinCSVSize)
	}
	c := &CSV{size: size}
	c.reset()
	return c, nil
}

// MinCSVSize is the smallest size NewCSV accepts.
const MinCSVSize = int64(len(EntraHeader)) + maxRowBytes

// Size returns the file's length in bytes.
func (c *CSV) Size() int64 { return c.size }

// Rows returns the number of data rows; it is known once the file has been
// read to its end, and 0 before.
func (c *CSV) Rows() int64 { return c.rows }

func (c *CSV) reset() {
	c.pos, c.row, c.off = 0, 0, 0
	c.buf = append(c.buf[:0], EntraHeader...)
}

// Read implements io.Reader.
func (c *CSV) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.off == len(c.buf) {
			if c.pos >= c.size {
				break
			}
			c.fill()
		}
		m := copy(p[n:], c.buf[c.off:])
		c.off += m
		c.pos += int64(m)
		n += m
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// fill generates the next row into buf; the row that leaves too little room
// for another is padded to end the file exactly at size.
func (c *CSV) fill() {
	c.buf, c.off = appendRow(c.buf[:0], c.row, 0), 0
	c.row++
	if rest := c.size - c.pos - int64(len(c.buf)); rest < maxRowBytes {
		c.buf = appendRow(c.buf[:0], c.row-1, int(rest))
		c.rows = int64(c.row)
	}
}

// Seek implements io.Seeker. Seeking to the end is free; seeking anywhere
// else regenerates the file from its start up to that offset.
func (c *CSV) Seek(offset int64, whence int) (int64, error) {
	var target int64
	switch whence {
	case io.SeekStart:
		target = offset
	case io.SeekCurrent:
		target = c.pos + offset
	case io.SeekEnd:
		target = c.size + offset
	default:
		return c.pos, errors.New("generated CSV: invalid whence")
	}
	if target < 0 {
		return c.pos, errors.New("generated CSV: negative position")
	}
	if target == c.pos {
		return c.pos, nil
	}
	if target >= c.size {
		c.pos, c.off = target, len(c.buf)
		return c.pos, nil
	}
	if target < c.pos || c.pos >= c.size {
		c.reset()
	}
	if _, err := io.CopyN(io.Discard, c, target-c.pos); err != nil {
		return c.pos, fmt.Errorf("generated CSV: seek to %d: %w", target, err)
	}
	return c.pos, nil
}

// appendRow appends data row i: realistic values whose ids vary with i,
// CustomData padded with pad underscores.
func appendRow(b []byte, i, pad int) []byte {
	b = appendGUID(b, uint64(i), 1)
	b = append(b, ",EntraIdUser,door-"...)
	b = strconv.AppendInt(b, int64(i%500), 10)
	b = append(b, ",Door "...)
	b = strconv.AppendInt(b, int64(i%500), 10)
	b = append(b, ",\"Entrance "...)
	b = strconv.AppendInt(b, int64(i%500), 10)
	b = append(b, ", ground floor\",Badge,bldg-"...)
	b = strconv.AppendInt(b, int64(i%7), 10)
	b = append(b, ",Building "...)
	b = strconv.AppendInt(b, int64(i%7), 10)
	b = append(b, ",\""...)
	b = append(b, owners.users[i%len(owners.users)][:]...)
	b = append(b, ", "...)
	b = append(b, owners.more[i%len(owners.more)][:]...)
	b = append(b, "\","...)
	b = append(b, owners.groups[i%len(owners.groups)][:]...)
	b = append(b, ",site=HQ"...)
	for range pad {
		b = append(b, '_')
	}
	return append(b, '\n')
}

// owners are the few owner ids the rows cycle through, made once: owners
// repeat across a real file too.
var owners = func() (o struct{ users, more, groups [][36]byte }) {
	ids := func(n, salt uint64) [][36]byte {
		out := make([][36]byte, n)
		for i := range out {
			copy(out[i][:], appendGUID(nil, uint64(i), salt))
		}
		return out
	}
	o.users, o.more, o.groups = ids(97, 2), ids(89, 3), ids(13, 4)
	return o
}()

// appendGUID appends a canonical version-4 GUID made from n and salt.
func appendGUID(b []byte, n, salt uint64) []byte {
	var g [36]byte
	putHex(g[0:8], n)
	g[8] = '-'
	putHex(g[9:13], salt)
	g[13], g[14] = '-', '4'
	putHex(g[15:18], n&0xfff)
	g[18], g[19] = '-', '8'
	putHex(g[20:23], salt&0xfff)
	g[23] = '-'
	putHex(g[24:36], n*2654435761&0xffffffffffff)
	return append(b, g[:]...)
}

// putHex writes the low len(dst) hex digits of v into dst, zero-padded.
func putHex(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = digits[v&0xf]
		v >>= 4
	}
}
