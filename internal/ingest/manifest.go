package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// maxManifest bounds a manifest.json: a list of file names is small.
const maxManifest = 1 << 20

// handleManifest records a review's manifest.json in its ledger record and
// closes the session at once if every listed file is already uploaded. The
// manifest can arrive before or after the files.
func (h *Handler) handleManifest(ctx context.Context, o *object) error {
	body, size, err := h.openObject(ctx, o)
	if err != nil {
		status, err := classify(err)
		return h.finish(ctx, o, status, err)
	}
	defer body.Close()
	o.report.Bytes = size
	data, err := io.ReadAll(io.LimitReader(body, maxManifest+1))
	if err != nil {
		return h.finish(ctx, o, review.Failed, fmt.Errorf("reading the manifest: %w", err))
	}
	files, err := ParseManifest(data)
	if err != nil {
		return h.finish(ctx, o, review.Rejected, err)
	}
	o.report.Rows = int64(len(files))
	m := &ledger.Manifest{Key: o.key, VersionID: o.ref.VersionID, Sequencer: o.sequencer, Files: files, At: h.now().UTC()}
	rec, taken, err := h.sessions(o).RecordManifest(ctx, o.parsed.Target, m)
	if err != nil {
		return h.finish(ctx, o, review.Failed, fmt.Errorf("recording the manifest: %w", err))
	}
	o.report.SessionID = rec.SessionID
	if !taken {
		// An older version's event came after a newer one's: the newer
		// manifest and its report stand.
		o.outcome.Status = "ignored"
		h.log().Info("manifest event older than the recorded manifest; ignored", "key", o.key, "version", o.ref.VersionID, "recorded", rec.Manifest.VersionID)
		return nil
	}
	if rec.SessionID != "" && !rec.Ended() {
		h.closeIfComplete(ctx, o)
	}
	h.log().Info("manifest recorded", "key", o.key, "review", o.parsed.Target.ReviewInstanceID, "files", len(files))
	// A manifest is not uploaded: its report says it was taken in.
	return h.finish(ctx, o, review.Uploaded, nil)
}

// ParseManifest reads {"files": ["a.csv", ...]}: base names of CSV files,
// each listed once.
func ParseManifest(data []byte) ([]string, error) {
	if len(data) > maxManifest {
		return nil, review.Contentf("manifest.json is larger than %d bytes", maxManifest)
	}
	var m struct {
		Files *[]string `json:"files"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, review.Contentf(`manifest.json must be {"files": ["name.csv", ...]}: %v`, err)
	}
	if m.Files == nil {
		return nil, review.Contentf(`manifest.json must be {"files": ["name.csv", ...]}: "files" is missing`)
	}
	seen := map[string]bool{}
	for i, f := range *m.Files {
		switch {
		case f == "" || strings.ContainsAny(f, "/\\") || path.Base(f) != f:
			return nil, review.Contentf("manifest.json: files[%d] %q is not a file name (no folders)", i, f)
		case !strings.HasSuffix(strings.ToLower(f), ".csv"):
			return nil, review.Contentf("manifest.json: files[%d] %q is not a .csv file", i, f)
		case seen[f]:
			return nil, review.Contentf("manifest.json: %q is listed twice", f)
		}
		seen[f] = true
	}
	return *m.Files, nil
}
