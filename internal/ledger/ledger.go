// Package ledger keeps byodrop's state in an object store, as human-readable
// JSON under the state prefix:
//
//	sessions/<catalog>/<resource>/<instance>.json  one record per upload session
//	open/<catalog>/<resource>/<instance>.json      index of the sessions still open
//	claims/<catalog>/<resource>/<instance>/<hash>.json  one claim per object version (package claim)
//	reports/<object key>.json                      the report of each dropped object
//
// Every change to a record or a claim is a conditional write (If-None-Match
// to create, If-Match to replace), so any number of concurrent invocations
// agree on one session per review and one upload per object version. The
// open index lets the finalizer read only the sessions still open, whatever
// the history. Claims are never deleted, only overwritten, because some
// S3-compatible servers keep refusing If-None-Match on a deleted key of a
// versioned bucket.
package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/review"
)

// Ledger reads and writes the state documents under one prefix.
type Ledger struct {
	store  blob.Store
	prefix string
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// New returns a Ledger on store under prefix (normally ending in "/").
func New(store blob.Store, prefix string) *Ledger {
	return &Ledger{store: store, prefix: prefix, Now: time.Now}
}

// Store returns the store the ledger writes to.
func (l *Ledger) Store() blob.Store { return l.store }

// Prefix returns the state prefix.
func (l *Ledger) Prefix() string { return l.prefix }

func (l *Ledger) sessionKey(sessionKey string) string {
	return l.prefix + "sessions/" + sessionKey + ".json"
}

func (l *Ledger) openKey(sessionKey string) string {
	return l.prefix + "open/" + sessionKey + ".json"
}

// errNoChange lets an update function say that nothing needs writing.
type noChange struct{}

func (noChange) Error() string { return "no change" }

// ErrNoChange, returned by an update function, ends Update without a write.
var ErrNoChange error = noChange{}

// maxRaces bounds how often a conditional write may lose in a row before
// Update gives up with a transient error (the caller's retry takes over).
const maxRaces = 64

// UpdateDoc is the optimistic-concurrency loop every ledger document is
// written with: read the JSON document at key, let fn change it (exists
// false: there is none yet), write it back conditionally, and start again
// when another writer got there first. fn may return ErrNoChange to write
// nothing; it can run several times and must only change the document it
// is given.
func UpdateDoc[T any](ctx context.Context, store blob.Store, key string, fn func(doc *T, exists bool) error) (*T, error) {
	return updateDoc(ctx, store, key, fn, nil, blob.Object{})
}

// UpdateDocFrom is UpdateDoc starting from from, the document as it was
// last read or written (its Stored form), instead of reading it: one
// request fewer when nobody wrote it since. A stale from only costs the
// lost conditional write and a read.
func UpdateDocFrom[T any](ctx context.Context, store blob.Store, key string, from blob.Object, fn func(doc *T, exists bool) error) (*T, error) {
	return updateDoc(ctx, store, key, fn, nil, from)
}

// Versioned, embedded in a document type, remembers the document's stored
// form (bytes and ETag) as last read or written, so that the next update
// can start from it (UpdateDocFrom) without reading it again.
type Versioned struct{ stored blob.Object }

// Stored returns the document as last read or written; a zero Object if
// unknown.
func (v *Versioned) Stored() blob.Object { return v.stored }

func (v *Versioned) setStored(o blob.Object) { v.stored = o }

type storedSetter interface{ setStored(blob.Object) }

func remember(doc any, o blob.Object) {
	if s, ok := doc.(storedSetter); ok {
		s.setStored(o)
	}
}

// updateDoc is UpdateDoc; tags, when set, gives the tags of the document
// as it is written ("" for none), applied where the store can tag; from,
// when it has an ETag, stands for the first read.
func updateDoc[T any](ctx context.Context, store blob.Store, key string, fn func(doc *T, exists bool) error, tags func(*T) string, from blob.Object) (*T, error) {
	for race := 0; ; race++ {
		var doc T
		var obj blob.Object
		var err error
		fromKnown := race == 0 && from.ETag != ""
		if fromKnown {
			obj = from
		} else {
			obj, err = store.Get(ctx, key)
		}
		exists := err == nil
		switch {
		case exists:
			if err := json.Unmarshal(obj.Data, &doc); err != nil {
				return nil, review.Errorf(review.Internal, "ledger document %s is not valid JSON: %v", key, err)
			}
		case !blob.IsNotFound(err):
			return nil, err
		}
		if err := fn(&doc, exists); err != nil {
			if err == ErrNoChange {
				if exists {
					remember(&doc, obj)
				}
				return &doc, nil
			}
			return nil, err
		}
		data, err := json.MarshalIndent(&doc, "", "  ")
		if err != nil {
			return nil, err
		}
		tagger, canTag := store.(blob.Tagger)
		var etag string
		switch {
		case exists && canTag && tags != nil && tags(&doc) != "":
			etag, err = tagger.ReplaceTagged(ctx, key, data, obj.ETag, tags(&doc))
		case exists:
			etag, err = store.Replace(ctx, key, data, obj.ETag)
		default:
			etag, err = store.Create(ctx, key, data)
		}
		if err == nil {
			remember(&doc, blob.Object{Data: data, ETag: etag})
			return &doc, nil
		}
		if !blob.IsPrecondition(err) && !(fromKnown && blob.IsNotFound(err)) {
			return nil, err
		}
		if race >= maxRaces {
			return nil, review.Errorf(review.Transient, "ledger %s: gave up after %d concurrent-write conflicts", key, race+1)
		}
		// Back off a little, with jitter, so that a crowd of writers on one
		// record spreads out instead of colliding again.
		wait := time.Duration(5+rand.IntN(20*min(race+1, 8))) * time.Millisecond
		select {
		case <-ctx.Done():
			return nil, review.Errorf(review.Transient, "ledger %s: %w", key, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// ReadDoc reads the JSON document at key; blob.ErrNotFound if absent.
func ReadDoc[T any](ctx context.Context, store blob.Store, key string) (*T, error) {
	obj, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var doc T
	if err := json.Unmarshal(obj.Data, &doc); err != nil {
		return nil, review.Errorf(review.Internal, "ledger document %s is not valid JSON: %v", key, err)
	}
	remember(&doc, obj)
	return &doc, nil
}

// Session reads the record of t's session; blob.ErrNotFound if there is none.
func (l *Ledger) Session(ctx context.Context, t review.Target) (*Session, error) {
	return l.SessionByKey(ctx, t.SessionKey())
}

// SessionByKey reads a record by its review.Target.SessionKey.
func (l *Ledger) SessionByKey(ctx context.Context, sessionKey string) (*Session, error) {
	return ReadDoc[Session](ctx, l.store, l.sessionKey(sessionKey))
}

// UpdateSession applies fn to t's record and writes it back conditionally,
// repeating on conflicts. fn gets a zero Session with exists false when
// there is no record yet (fn must then fill it in, Target first); it may
// return ErrNoChange to write nothing. fn can run several times: it must
// only change the document it is given.
//
// The record of an ended session is tagged EndedTag as it is written, so
// that a lifecycle rule of the bucket can expire the records of sessions
// long over (a record is created pending, so the tagged write is always a
// replace).
func (l *Ledger) UpdateSession(ctx context.Context, t review.Target, fn func(s *Session, exists bool) error) (*Session, error) {
	return l.UpdateSessionFrom(ctx, t, blob.Object{}, fn)
}

// UpdateSessionFrom is UpdateSession starting from from, the record as it
// was last read or written (Session.Stored), instead of reading it.
func (l *Ledger) UpdateSessionFrom(ctx context.Context, t review.Target, from blob.Object, fn func(s *Session, exists bool) error) (*Session, error) {
	return updateDoc(ctx, l.store, l.sessionKey(t.SessionKey()), func(s *Session, exists bool) error {
		if !exists {
			s.Schema = schemaVersion
			s.Target = t
		}
		return fn(s, exists)
	}, func(s *Session) string {
		if s.Ended() {
			return EndedTag
		}
		return ""
	}, from)
}

// EndedTag is the tag of the record of an ended session (complete or
// expired), as an S3 tagging query.
const EndedTag = "byodrop-state=ended"

// MarkOpen adds t's session to the open index. The write is
// unconditional, so a conflict (some S3-compatible servers answer 409 to
// concurrent writes under a new folder) is only a race to try again.
func (l *Ledger) MarkOpen(ctx context.Context, t review.Target) error {
	data, _ := json.Marshal(map[string]string{"session": t.SessionKey()})
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = l.store.Put(ctx, l.openKey(t.SessionKey()), data); err == nil || !blob.IsPrecondition(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(10+rand.IntN(40)) * time.Millisecond):
		}
	}
	return err
}

// MarkClosed removes t's session from the open index.
func (l *Ledger) MarkClosed(ctx context.Context, sessionKey string) error {
	return l.store.Delete(ctx, l.openKey(sessionKey))
}

// OpenSessions lists the session keys in the open index: one LIST request
// per thousand open sessions, whatever the number of closed ones.
func (l *Ledger) OpenSessions(ctx context.Context) ([]string, error) {
	p := l.prefix + "open/"
	keys, err := l.store.List(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if s, ok := strings.CutSuffix(strings.TrimPrefix(k, p), ".json"); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// WriteReport stores r at reports/<r.Key>.json, replacing an older one.
func (l *Ledger) WriteReport(ctx context.Context, r review.Report) error {
	if r.At.IsZero() {
		r.At = l.Now().UTC()
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if _, err := l.store.Put(ctx, l.ReportKey(r.Key), data); err != nil {
		return fmt.Errorf("writing the report of %s: %w", r.Key, err)
	}
	return nil
}

// maxKey is S3's limit on a key, in bytes.
const maxKey = 1024

// ReportKey is where the report of the object at key is stored:
// reports/<key>.json, or, for a key too long for that to fit in S3's 1024
// bytes, reports/long-keys/<sha256 of the key>.json (the report's own "key"
// field still holds the whole key).
func (l *Ledger) ReportKey(key string) string {
	k := l.prefix + "reports/" + key + ".json"
	if len(k) <= maxKey {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return l.prefix + "reports/long-keys/" + hex.EncodeToString(sum[:]) + ".json"
}

// Report reads the report of the object at key; blob.ErrNotFound if none.
func (l *Ledger) Report(ctx context.Context, key string) (*review.Report, error) {
	return ReadDoc[review.Report](ctx, l.store, l.ReportKey(key))
}
