//go:build amd64 || arm64

package csvcheck

import "unsafe"

// word returns the eight bytes b[i:i+8] as a little-endian word. The
// caller guarantees 0 <= i and i+8 <= len(b): the fast path tests that
// once per word, and the compiler cannot prove it for a moving index, so
// binary.LittleEndian would test it twice more. Both architectures load
// unaligned words.
func word(b []byte, i int) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), i))
}
