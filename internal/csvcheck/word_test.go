package csvcheck

import (
	"encoding/binary"
	"testing"
)

func TestWordIsTheLittleEndianWordAtEveryOffset(t *testing.T) {
	b := make([]byte, 40)
	for i := range b {
		b[i] = byte(i*37 + 11)
	}
	for i := 0; i+8 <= len(b); i++ {
		if got, want := word(b, i), binary.LittleEndian.Uint64(b[i:]); got != want {
			t.Fatalf("word(b, %d) = %#x, want %#x", i, got, want)
		}
	}
	// A word that ends exactly at the end of a slice of a larger array
	// reads nothing past it.
	s := b[3:19]
	if got, want := word(s, len(s)-8), binary.LittleEndian.Uint64(b[11:19]); got != want {
		t.Fatalf("last word of a subslice = %#x, want %#x", got, want)
	}
}
