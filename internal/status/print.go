package status

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

// WriteJSON writes st as indented JSON, for scripts.
func WriteJSON(w io.Writer, st *Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

// WriteText writes st for a person: times in UTC, with how far they are
// from now.
func WriteText(w io.Writer, st *Status) error {
	p := &printer{w: w, now: st.At}
	p.f("byodrop status of s3://%s/%s at %s\n", st.Bucket, st.Prefix, stamp(st.At))

	p.f("\nOpen sessions: %d\n", len(st.Open))
	for _, o := range st.Open {
		p.f("  %s\n", o.Key)
		if o.SessionID != "" || o.State != "" {
			p.f("    session %s (%s), review instance %s\n", orDash(o.SessionID), o.State, o.Target.ReviewInstanceID)
		}
		if !o.WindowEnds.IsZero() {
			p.f("    window ends %s; %d file(s)", p.when(o.WindowEnds), o.Files)
			if !o.LastUploadAt.IsZero() {
				p.f(", last upload %s", p.when(o.LastUploadAt))
			}
			p.f("\n")
		}
		if o.Manifest != nil {
			p.f("    manifest: %d file(s), missing %s\n", len(o.Manifest), orNone(o.Missing))
		}
		if !o.CloseAt.IsZero() {
			p.f("    closes: %s at %s: %s\n", o.CloseReason, p.when(o.CloseAt), o.Next)
		} else {
			p.f("    next: %s\n", o.Next)
		}
	}

	days := int(st.At.Sub(st.Since).Round(time.Hour).Hours() / 24)
	p.f("\nSessions ended in the last %d days: %d\n", days, len(st.Ended))
	for _, e := range st.Ended {
		how := string(e.State)
		if e.CloseReason != "" {
			how += " (" + e.CloseReason + ")"
		}
		p.f("  %-30s %s  %d file(s)  %s\n", how, p.when(e.EndedAt), e.Files, e.Key)
		if e.SessionID != "" {
			p.f("    session %s\n", e.SessionID)
		}
		// A close's note only repeats its reason.
		if e.Note != "" && e.Note != "closed ("+e.CloseReason+")" {
			p.f("    %s\n", e.Note)
		}
	}

	p.f("\nFiles reported in the last %d days: %s\n", days, counts(st.Files))
	p.f("Rejected and failed files, newest first: %d shown\n", len(st.Problems))
	for _, f := range st.Problems {
		p.f("  %-8s %s  %s\n", f.Status, p.when(f.At), f.Key)
		if f.Error.Message != "" {
			p.f("    %s\n", f.Error.Error())
		}
	}

	if q := st.FailureQueue; q != nil {
		p.f("\nFailure queue: %d waiting, %d being received (%s)\n", q.Waiting, q.InFlight, q.URL)
		if q.Waiting+q.InFlight > 0 {
			p.f("  replay them once the cause is fixed: make replay QUEUE_URL=%s FUNCTION=<IngestFunction name>\n", q.URL)
		}
	} else {
		p.f("\nFailure queue: not read (give -queue-url, the stack output FailureQueueUrl)\n")
	}
	return p.err
}

type printer struct {
	w   io.Writer
	now time.Time
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// when is a UTC time with its distance from now: "… (in 1h5m)", "… (3m ago)".
func (p *printer) when(t time.Time) string {
	d := t.Sub(p.now).Round(time.Second)
	switch {
	case d > 0:
		return fmt.Sprintf("%s (in %s)", stamp(t), d)
	case d < 0:
		return fmt.Sprintf("%s (%s ago)", stamp(t), -d)
	}
	return stamp(t) + " (now)"
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// counts is "2 uploaded, 1 rejected" in the order of product.md.
func counts(m map[review.Status]int) string {
	order := []review.Status{review.Uploaded, review.Rejected, review.Duplicate, review.Late, review.Failed, review.Expired}
	for s := range m {
		if !slices.Contains(order, s) {
			order = append(order, s)
		}
	}
	var parts []string
	for _, s := range order {
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[s], s))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
