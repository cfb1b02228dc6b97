package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/byodrop/byodrop/internal/dropkey"
)

// DefaultSample is the file of events/data seeded for an event whose key
// names no sample.
const DefaultSample = "badge-access.csv"

// Seeded is one object put so that an event refers to something real.
type Seeded struct {
	Object
	Sample string // the file of events/data it was made from, or "(generated manifest)"
	// Reused says the object was put for an earlier event of this Env and
	// is announced again, as S3 does when it delivers an event twice.
	Reused bool
	// Rewrote lists the event fields that were changed to the stored
	// object's values ("eTag", "versionId", "size"), for the first record
	// of this object.
	Rewrote []string
}

// SeedEvent makes an S3 event true: for every ObjectCreated record, it puts
// the sample file events/data/<the key's base name> (or DefaultSample when
// there is none) at the record's decoded key, once per key and Env (a key
// seeded for an earlier event is announced again, not put again, so that a
// repeated event is a real duplicate), and rewrites
// the records' eTag, versionId and size to those of the stored object, so
// that ingest reads the very version the event announces. Other fields are
// kept as they are. A payload that is not an S3 event with records (the
// s3:TestEvent, a scheduled event) is returned unchanged.
func (e *Env) SeedEvent(ctx context.Context, payload []byte) ([]byte, []Seeded, error) {
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber() // keep every number as written
	if err := dec.Decode(&ev); err != nil {
		return nil, nil, fmt.Errorf("the event is not a JSON object: %w", err)
	}
	records, _ := ev["Records"].([]any)
	if len(records) == 0 {
		return payload, nil, nil
	}
	var seeded []Seeded
	byKey := map[string]int{} // bucket/key -> index in seeded
	for i, r := range records {
		rec, _ := r.(map[string]any)
		name, _ := rec["eventName"].(string)
		s3e, _ := rec["s3"].(map[string]any)
		bucketObj, _ := s3e["bucket"].(map[string]any)
		object, _ := s3e["object"].(map[string]any)
		bucket, _ := bucketObj["name"].(string)
		rawKey, _ := object["key"].(string)
		if !strings.HasPrefix(name, "ObjectCreated:") || bucket == "" || rawKey == "" {
			continue
		}
		key, err := dropkey.DecodeEventKey(rawKey)
		if err != nil {
			return nil, nil, fmt.Errorf("record %d: %w", i, err)
		}
		id := bucket + "/" + key
		j, ok := byKey[id]
		if !ok {
			s, seen := e.seeded[id]
			if seen {
				s.Reused, s.Rewrote = true, nil
			} else if s, err = e.seed(ctx, bucket, key); err != nil {
				return nil, nil, fmt.Errorf("record %d: %w", i, err)
			}
			if e.seeded == nil {
				e.seeded = map[string]Seeded{}
			}
			e.seeded[id] = s
			j = len(seeded)
			byKey[id] = j
			seeded = append(seeded, s)
		}
		changed := rewrite(object, seeded[j].Object)
		if !ok {
			seeded[j].Rewrote = changed
		}
	}
	out, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return out, seeded, nil
}

func (e *Env) seed(ctx context.Context, bucket, key string) (Seeded, error) {
	sample := path.Base(key)
	data, err := os.ReadFile(filepath.Join(e.Root, "events", "data", sample))
	switch {
	case errors.Is(err, fs.ErrNotExist) && sample == "manifest.json":
		// A manifest listing the default sample, rather than a CSV that
		// would only show that a CSV is not a manifest.
		sample, data, err = "(generated manifest)", []byte(`{"files": ["`+DefaultSample+`"]}`), nil
	case errors.Is(err, fs.ErrNotExist):
		sample = DefaultSample
		data, err = os.ReadFile(filepath.Join(e.Root, "events", "data", sample))
	}
	if err != nil {
		return Seeded{}, fmt.Errorf("sample for %s: %w", key, err)
	}
	obj, err := e.Put(ctx, bucket, key, data)
	if err != nil {
		return Seeded{}, err
	}
	return Seeded{Object: obj, Sample: sample}, nil
}

// rewrite sets object's eTag, versionId and size to o's and returns the
// names of those that differed.
func rewrite(object map[string]any, o Object) []string {
	var changed []string
	set := func(field string, v any) {
		if fmt.Sprint(object[field]) != fmt.Sprint(v) {
			changed = append(changed, field)
		}
		object[field] = v
	}
	set("eTag", o.ETag)
	if o.VersionID != "" {
		set("versionId", o.VersionID)
	} else if _, ok := object["versionId"]; ok {
		delete(object, "versionId")
		changed = append(changed, "versionId")
	}
	set("size", json.Number(fmt.Sprint(o.Size)))
	return changed
}
