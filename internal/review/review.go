// Package review holds byodrop's domain: the review a dropped file belongs
// to, the outcome reported for each file, and the error kinds that decide
// between a retry and a rejection. It imports nothing outside the standard
// library; the adapters (graph, ledger, S3) depend on it, never the reverse.
package review

import (
	"fmt"
	"strings"
	"time"
)

// Target names the Graph upload session a file belongs to: one session per
// (catalog, resource, review instance).
type Target struct {
	CatalogID          string `json:"catalogId"`
	ResourceID         string `json:"resourceId"`
	ReviewDefinitionID string `json:"reviewDefinitionId"`
	ReviewInstanceID   string `json:"reviewInstanceId"`
	// Source is the custom data provided resource's display name. Only the
	// beta-2025 profile needs it; it comes from a route.
	Source string `json:"source,omitempty"`
}

// Validate reports whether every id of t is a canonical GUID. Ids are
// checked before they are put into any URL or object key.
func (t Target) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"catalogId", t.CatalogID},
		{"resourceId", t.ResourceID},
		{"reviewDefinitionId", t.ReviewDefinitionID},
		{"reviewInstanceId", t.ReviewInstanceID},
	} {
		if !IsGUID(f.v) {
			return Errorf(Invalid, "%s is not a GUID: %q", f.name, f.v)
		}
	}
	return nil
}

// SessionKey is the stable identity of the session for t, usable as a path
// segment: catalog/resource/instance, lower-cased.
func (t Target) SessionKey() string {
	return strings.ToLower(t.CatalogID + "/" + t.ResourceID + "/" + t.ReviewInstanceID)
}

// String is a short human form for logs.
func (t Target) String() string {
	return fmt.Sprintf("catalog %s resource %s review %s/%s", t.CatalogID, t.ResourceID, t.ReviewDefinitionID, t.ReviewInstanceID)
}

// IsGUID reports whether s is a GUID in the canonical 8-4-4-4-12 hexadecimal
// form, the only form byodrop accepts for ids.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Status is the outcome of one dropped object, as written in its report.
type Status string

// The outcomes of product.md.
const (
	// Uploaded: the file is in the session, once.
	Uploaded Status = "uploaded"
	// Rejected: the key or the CSV is invalid; nothing was sent to Graph.
	Rejected Status = "rejected"
	// Duplicate: the same object version was already uploaded.
	Duplicate Status = "duplicate"
	// Late: the session is already complete or expired; nothing was sent.
	Late Status = "late"
	// Failed: gave up on a transient error after retries.
	Failed Status = "failed"
	// Expired: uploaded, but the session expired before it could be closed,
	// so Entra did not process the data.
	Expired Status = "expired"
	// Ready: a valid standing file; this version goes to the next review.
	Ready Status = "ready"
)

// FieldError locates one problem in a dropped file.
type FieldError struct {
	// Line is the 1-based line where the bad record starts (header = 1);
	// 0 when the problem is not in the content (the key, the whole file).
	Line    int    `json:"line,omitempty"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	switch {
	case e.Line > 0 && e.Column != "":
		return fmt.Sprintf("line %d, column %s: %s", e.Line, e.Column, e.Message)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	case e.Column != "":
		return fmt.Sprintf("column %s: %s", e.Column, e.Message)
	default:
		return e.Message
	}
}

// Report is what each dropped object gets, at
// <STATE_PREFIX>reports/<key>.json (see product.md).
type Report struct {
	Key                string       `json:"key"`
	VersionID          string       `json:"versionId,omitempty"`
	ETag               string       `json:"etag,omitempty"`
	Status             Status       `json:"status"`
	SessionID          string       `json:"sessionId,omitempty"`
	CatalogID          string       `json:"catalogId,omitempty"`
	ResourceID         string       `json:"resourceId,omitempty"`
	ReviewDefinitionID string       `json:"reviewDefinitionId,omitempty"`
	ReviewInstanceID   string       `json:"reviewInstanceId,omitempty"`
	Bytes              int64        `json:"bytes"`
	Rows               int64        `json:"rows"`
	Errors             []FieldError `json:"errors,omitempty"`
	// FallbackVersionID is, for a rejected standing file, the newest
	// earlier version that was ready (what the next review gets instead).
	FallbackVersionID string    `json:"fallbackVersionId,omitempty"`
	At                time.Time `json:"at"`
}

// SetTarget copies t's ids into r.
func (r *Report) SetTarget(t Target) {
	r.CatalogID, r.ResourceID = t.CatalogID, t.ResourceID
	r.ReviewDefinitionID, r.ReviewInstanceID = t.ReviewDefinitionID, t.ReviewInstanceID
}
