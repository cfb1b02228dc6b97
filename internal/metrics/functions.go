package metrics

import (
	"cmp"
	"slices"
)

// The functions that write metrics, by their SAM logical ids: the dashboard
// and the alarms of template.yaml name them so.
const (
	IngestFunction   = "IngestFunction"
	FinalizeFunction = "FinalizeFunction"
	DiscoverFunction = "DiscoverFunction"
)

// Written lists, per function, every metric the function can write, in the
// order the dashboard shows them. Ingest closes a session when its manifest
// becomes complete, and learns then that it expired if Graph says so, so it
// writes the session counters too. TestWrittenIsWhatTheFunctionsRecord
// checks this table against what the Recorder writes for the calls each
// function makes; the dashboard and the template's alarms are checked
// against it.
var Written = map[string][]Metric{
	IngestFunction: {
		FilesUploaded, FilesRejected, FilesDuplicate, FilesLate, FilesFailed, FilesExpired,
		BytesUploaded, RowsUploaded, UploadDuration,
		SessionsClosed, SessionsExpired, GraphRetries,
		StandingReady, StandingRejected,
	},
	FinalizeFunction: {
		FilesExpired, SessionsClosed, SessionsExpired, GraphRetries,
	},
	DiscoverFunction: {
		ReviewsDiscovered, ReviewsServed, ReviewsWithoutData, ReviewsFailed, StandingFilesSent, GraphRetries,
	},
}

// Functions returns the logical ids of the functions that write metrics,
// sorted.
func Functions() []string {
	out := make([]string, 0, len(Written))
	for fn := range Written {
		out = append(out, fn)
	}
	slices.Sort(out)
	return out
}

// All returns every metric some function writes, each once, sorted by name.
func All() []Metric {
	seen := map[Metric]bool{}
	var out []Metric
	for _, fn := range Functions() {
		for _, m := range Written[fn] {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b Metric) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Writes reports whether function writes m.
func Writes(function string, m Metric) bool {
	return slices.Contains(Written[function], m)
}
