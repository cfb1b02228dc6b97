//go:build !amd64 && !arm64

package csvcheck

import "encoding/binary"

// word returns the eight bytes b[i:i+8] as a little-endian word; the
// caller guarantees 0 <= i and i+8 <= len(b).
func word(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[i : i+8]) }
