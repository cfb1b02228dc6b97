package ingest_test

import (
	"slices"
	"testing"

	"github.com/byodrop/byodrop/internal/harness"
)

// A file for a session that exists costs one Graph request, its upload:
// the token and the session come from cache, and the session is read back
// only when the file completes its manifest.
func TestFileIntoAnOpenSessionSendsOnlyItsUpload(t *testing.T) {
	tests := []struct {
		name     string
		manifest string // "" for none
		want     []string
	}{
		{"no manifest", "", []string{"upload"}},
		{"manifest still missing a file", `{"files":["a.csv","b.csv","c.csv"]}`, []string{"upload"}},
		{"file completes the manifest", `{"files":["a.csv","b.csv"]}`, []string{"upload", "get", "patch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := harness.New(t, harness.Options{})
			mustIngest(t, w, w.Put(harness.Key("a.csv"), csvRows(3)))
			if tt.manifest != "" {
				mustIngest(t, w, w.Put(harness.Key("manifest.json"), []byte(tt.manifest)))
			}
			w.Emu.ResetJournal()
			mustIngest(t, w, w.Put(harness.Key("b.csv"), csvRows(3)))
			var ops []string
			for _, r := range w.Emu.Journal() {
				ops = append(ops, r.Op)
			}
			if !slices.Equal(ops, tt.want) {
				t.Fatalf("Graph requests for the second file: %v, want %v", ops, tt.want)
			}
		})
	}
}
