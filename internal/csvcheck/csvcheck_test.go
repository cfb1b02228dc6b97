package csvcheck

import (
	"bytes"
	"testing"
)

func TestCorpus(t *testing.T) {
	files := loadCorpus(t)
	if len(files) < 40 {
		t.Fatalf("the corpus has %d files; it must keep at least 40", len(files))
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			res, err := Validate(bytes.NewReader(f.data), f.name)
			checkOutcome(t, f.want, res, err)
			if err == nil && res.Bytes != int64(len(f.data)) {
				t.Fatalf("Result.Bytes = %d, want %d", res.Bytes, len(f.data))
			}
		})
	}
}
