package review

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller should do about it.
type Kind int

const (
	// Internal is a bug or an unclassified failure: treated as transient,
	// so that nothing is lost.
	Internal Kind = iota
	// Transient failures may succeed on a retry (throttling, 5xx, timeouts,
	// a connection reset, a lost conditional-write race).
	Transient
	// Invalid input will never succeed: reject it with a report.
	Invalid
	// Conflict means the target already exists (a second session for a pair).
	Conflict
	// NotFound means the thing asked for does not exist.
	NotFound
	// Gone means the target no longer accepts data (session complete or
	// expired).
	Gone
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Invalid:
		return "invalid"
	case Conflict:
		return "conflict"
	case NotFound:
		return "not found"
	case Gone:
		return "gone"
	default:
		return "internal"
	}
}

// Error is an error with a Kind. Adapters return it (or an error that
// implements Kind() Kind) so that the edge can decide between retry and
// rejection without knowing which adapter failed.
type Error struct {
	Kind Kind
	Msg  string // the whole message, including Err's text when it matters
	Err  error  // the cause, for errors.Is and errors.As
}

func (e *Error) Error() string {
	if e.Msg == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k with a formatted message; a %w verb
// keeps the wrapped error reachable.
func Errorf(k Kind, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// KindOf returns the kind of the first error in err's chain that has one
// (an *Error, or any error with a `Kind() Kind` method); Internal otherwise.
func KindOf(err error) Kind {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch v := e.(type) {
		case *Error:
			return v.Kind
		case interface{ Kind() Kind }:
			return v.Kind()
		}
	}
	return Internal
}

// IsRetryable reports whether err is worth retrying: Transient and Internal
// errors are; invalid input, conflicts and gone sessions are not.
func IsRetryable(err error) bool {
	k := KindOf(err)
	return k == Transient || k == Internal
}
