package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Session statuses, lower-cased (the 2025 examples send "Active",
// "Complete"; Session.Status is always normalised).
const (
	StatusActive   = "active"
	StatusComplete = "complete"
	StatusExpired  = "expired"
)

// Session is an upload session as any of the three API shapes returns it:
// the superset of their fields, with absent ones left zero.
type Session struct {
	ID string
	// Status is lower-cased: active, complete, expired, or whatever new
	// value the service sends (unknownFutureValue…).
	Status       string
	IsUploadDone bool
	// CreatedDateTime and ExpirationDateTime are zero when absent
	// (expirationDateTime only appears in older responses).
	CreatedDateTime, ExpirationDateTime time.Time
	// ReferenceID is the review instance id in current responses.
	ReferenceID  string
	Source       string
	Type         string
	ODataType    string
	ODataContext string
	// Data is the context data, whichever of the two shapes was sent.
	Data  ContextData
	Stats Stats
	// Files is filled by Get ($expand=files), uploadFile and list
	// responses; nil when the response did not include it.
	Files []File
}

// ContextData is the review the session belongs to, normalised from either
// accessReviewContextData (reviewDefinitionId, reviewInstanceId) or the
// 2025 accessReviewResourceDataUploadSessionContextData (accessReviewId,
// accessReviewInstanceId).
type ContextData struct {
	ODataType, ReviewDefinitionID, ReviewInstanceID string
}

// Stats summarises what was uploaded so far.
type Stats struct {
	FilesUploaded      int32
	TotalBytesUploaded int64
}

// File is one uploaded file of a session.
type File struct {
	ID, Name         string
	Size             int64
	UploadedDateTime time.Time
}

// IsActive reports whether the session still accepts files.
func (s *Session) IsActive() bool { return s.Status == StatusActive }

// InstanceID returns the review instance id the session is for: its
// referenceId, or the context data's instance id when referenceId is absent
// (older responses).
func (s *Session) InstanceID() string {
	if s.ReferenceID != "" {
		return s.ReferenceID
	}
	return s.Data.ReviewInstanceID
}

// ParseSession decodes one session from a Graph response body. It is
// tolerant by design, because the API changed shape while in beta and the
// published examples differ: status in any case, either context-data shape,
// unknown fields ignored, timestamps with or without fractional seconds or
// zone, Int64 values as numbers or strings (OData's IEEE754Compatible form),
// and the trailing commas some published examples contain. It fails only
// when the body is not a JSON object, has no id, or a known field has a
// value that cannot mean what the field says.
func ParseSession(data []byte) (*Session, error) {
	var w wireSession
	if err := unmarshalTolerant(data, &w); err != nil {
		return nil, fmt.Errorf("graph: parsing session: %w", err)
	}
	return w.session()
}

// listPage is one page of a List response.
type listPage struct {
	Sessions []Session
	NextLink string
}

func parseListPage(data []byte) (*listPage, error) {
	var w struct {
		Value    []json.RawMessage `json:"value"`
		NextLink flexString        `json:"@odata.nextLink"`
	}
	if err := unmarshalTolerant(data, &w); err != nil {
		return nil, fmt.Errorf("graph: parsing session list: %w", err)
	}
	p := &listPage{NextLink: string(w.NextLink), Sessions: make([]Session, 0, len(w.Value))}
	for i, raw := range w.Value {
		var ws wireSession
		if err := json.Unmarshal(raw, &ws); err != nil {
			return nil, fmt.Errorf("graph: parsing session list: value[%d]: %w", i, err)
		}
		s, err := ws.session()
		if err != nil {
			return nil, fmt.Errorf("graph: parsing session list: value[%d]: %w", i, err)
		}
		p.Sessions = append(p.Sessions, *s)
	}
	return p, nil
}

// unmarshalTolerant decodes a JSON object into v. If the strict decoder
// rejects the text, it retries once without trailing commas (found in
// published examples); any other error stands.
func unmarshalTolerant(data []byte, v any) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	err := json.Unmarshal(trimmed, v)
	var syn *json.SyntaxError
	if err != nil && errors.As(err, &syn) {
		if fixed, changed := dropTrailingCommas(trimmed); changed {
			if err2 := json.Unmarshal(fixed, v); err2 == nil {
				return nil
			}
		}
	}
	return err
}

// dropTrailingCommas removes each comma that is followed, after white space
// only, by a closing brace or bracket; commas inside strings are kept.
func dropTrailingCommas(b []byte) ([]byte, bool) {
	out := make([]byte, 0, len(b))
	inString, escaped, changed := false, false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
		}
		if c == ',' {
			j := i + 1
			for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
				j++
			}
			if j < len(b) && (b[j] == '}' || b[j] == ']') {
				changed = true
				continue
			}
		}
		out = append(out, c)
	}
	return out, changed
}

// wireSession is the superset of all session shapes, field by field.
type wireSession struct {
	ID                 flexString `json:"id"`
	Status             flexString `json:"status"`
	IsUploadDone       flexBool   `json:"isUploadDone"`
	CreatedDateTime    flexTime   `json:"createdDateTime"`
	ExpirationDateTime flexTime   `json:"expirationDateTime"`
	ReferenceID        flexString `json:"referenceId"`
	Source             flexString `json:"source"`
	Type               flexString `json:"type"`
	ODataType          flexString `json:"@odata.type"`
	ODataContext       flexString `json:"@odata.context"`
	Data               *struct {
		ODataType              flexString `json:"@odata.type"`
		ReviewDefinitionID     flexString `json:"reviewDefinitionId"`
		ReviewInstanceID       flexString `json:"reviewInstanceId"`
		AccessReviewID         flexString `json:"accessReviewId"`
		AccessReviewInstanceID flexString `json:"accessReviewInstanceId"`
	} `json:"data"`
	Stats *struct {
		FilesUploaded      flexInt `json:"filesUploaded"`
		TotalBytesUploaded flexInt `json:"totalBytesUploaded"`
	} `json:"stats"`
	Files *[]struct {
		ID               flexString `json:"id"`
		Name             flexString `json:"name"`
		Size             flexInt    `json:"size"`
		UploadedDateTime flexTime   `json:"uploadedDateTime"`
	} `json:"files"`
}

func (w *wireSession) session() (*Session, error) {
	if strings.TrimSpace(string(w.ID)) == "" {
		return nil, errors.New("graph: session has no id")
	}
	s := &Session{
		ID:                 string(w.ID),
		Status:             strings.ToLower(strings.TrimSpace(string(w.Status))),
		IsUploadDone:       bool(w.IsUploadDone),
		CreatedDateTime:    time.Time(w.CreatedDateTime),
		ExpirationDateTime: time.Time(w.ExpirationDateTime),
		ReferenceID:        string(w.ReferenceID),
		Source:             string(w.Source),
		Type:               string(w.Type),
		ODataType:          string(w.ODataType),
		ODataContext:       string(w.ODataContext),
	}
	if d := w.Data; d != nil {
		s.Data = ContextData{
			ODataType:          string(d.ODataType),
			ReviewDefinitionID: firstNonEmpty(string(d.ReviewDefinitionID), string(d.AccessReviewID)),
			ReviewInstanceID:   firstNonEmpty(string(d.ReviewInstanceID), string(d.AccessReviewInstanceID)),
		}
	}
	if st := w.Stats; st != nil {
		n := int64(st.FilesUploaded)
		if n < 0 || n > 1<<31-1 {
			return nil, fmt.Errorf("graph: session %s: stats.filesUploaded out of range: %d", s.ID, n)
		}
		s.Stats = Stats{FilesUploaded: int32(n), TotalBytesUploaded: int64(st.TotalBytesUploaded)}
	}
	if w.Files != nil {
		s.Files = make([]File, 0, len(*w.Files))
		for _, f := range *w.Files {
			s.Files = append(s.Files, File{
				ID:               string(f.ID),
				Name:             string(f.Name),
				Size:             int64(f.Size),
				UploadedDateTime: time.Time(f.UploadedDateTime),
			})
		}
	}
	return s, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// flexString accepts a string or null.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a string, got %s", abbreviate(b))
	}
	*f = flexString(s)
	return nil
}

// flexBool accepts true, false, their string forms in any case, or null.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.ToLower(strings.Trim(string(b), `"`)) {
	case "true":
		*f = true
	case "false", "null":
		*f = false
	default:
		return fmt.Errorf("want a boolean, got %s", abbreviate(b))
	}
	return nil
}

// flexInt accepts an integer as a JSON number or a string (OData writes
// Int64 as a string when IEEE754Compatible=true), or null.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*f = 0
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, got %s", abbreviate(b))
	}
	*f = flexInt(n)
	return nil
}

// flexTime accepts an RFC 3339 timestamp with or without fractional seconds
// (Graph sends up to seven digits), with or without a zone (UTC assumed),
// or null / "".
type flexTime time.Time

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

func (f *flexTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = flexTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a timestamp string, got %s", abbreviate(b))
	}
	s = strings.TrimSpace(s)
	if s == "" {
		*f = flexTime{}
		return nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			*f = flexTime(t.UTC())
			return nil
		}
	}
	return fmt.Errorf("not an RFC 3339 timestamp: %q", abbreviate([]byte(s)))
}

func abbreviate(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
