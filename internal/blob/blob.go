// Package blob is the small object-store interface the ledger is built on:
// whole-object reads and writes of small JSON documents, with the
// conditional writes (If-None-Match, If-Match) that make the ledger safe
// under any concurrency, and an implementation on Amazon S3.
package blob

import (
	"context"
	"errors"
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = &review.Error{Kind: review.NotFound, Msg: "object not found"}
	// ErrPrecondition: a conditional write lost: the object exists (create)
	// or changed since it was read (replace). Re-read and decide again.
	ErrPrecondition = &review.Error{Kind: review.Transient, Msg: "precondition failed: the object changed"}
)

// Object is a stored document and the ETag it was read with.
type Object struct {
	Data []byte
	ETag string
}

// Store holds small documents under keys.
type Store interface {
	// Get reads the object at key; ErrNotFound if absent.
	Get(ctx context.Context, key string) (Object, error)
	// Create writes data at key only if no object is there
	// (If-None-Match: *); ErrPrecondition otherwise. It returns the new ETag.
	Create(ctx context.Context, key string, data []byte) (string, error)
	// Replace writes data at key only if the object's ETag is still etag
	// (If-Match); ErrPrecondition otherwise, ErrNotFound if it is gone.
	Replace(ctx context.Context, key string, data []byte, etag string) (string, error)
	// Put writes data at key unconditionally.
	Put(ctx context.Context, key string, data []byte) (string, error)
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every key under prefix, in lexical order.
	List(ctx context.Context, prefix string) ([]string, error)
	// ListEntries is List with each object's last-modified time.
	ListEntries(ctx context.Context, prefix string) ([]Entry, error)
}

// Tagger is a Store that can tag an object as it replaces it, in the same
// request (x-amz-tagging), so that lifecycle rules can select it.
type Tagger interface {
	// ReplaceTagged is Replace that also sets the object's tags, given as
	// a URL query ("key=value&key2=value2").
	ReplaceTagged(ctx context.Context, key string, data []byte, etag, tagging string) (string, error)
}

// Entry is one listed object.
type Entry struct {
	Key      string
	Modified time.Time
}

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsPrecondition reports whether err is a lost conditional write.
func IsPrecondition(err error) bool { return errors.Is(err, ErrPrecondition) }
