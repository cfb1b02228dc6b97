package review

import (
	"errors"
	"fmt"
)

// ErrObjectGone: the event's version of a dropped object was deleted or
// replaced before it could be read. There is nothing to upload; a newer
// version has its own event.
var ErrObjectGone = &Error{Kind: Gone, Msg: "the object version of the event no longer exists (deleted or replaced since the event)"}

// Retry says who tries again after an error.
type Retry string

// The retries of an outcome.
const (
	// Final: nobody; the report says why.
	Final Retry = "final"
	// RetryThenLambda: the clients retry within the invocation (Graph's
	// Retry-After, the SDK's backoff); if that is not enough the
	// invocation fails, so Lambda retries it and the failure queue keeps
	// it for replay.
	RetryThenLambda Retry = "retry, then Lambda"
	// Lambda: the invocation fails at once, for Lambda's retries and the
	// failure queue, so that nothing is lost while an operator fixes the
	// cause (a permission, a setting, a refusal).
	Lambda Retry = "Lambda"
)

// Disposition is what an error means for the object it happened to.
type Disposition struct {
	Status Status
	Retry  Retry
}

// FunctionError reports whether the invocation must fail.
func (d Disposition) FunctionError() bool { return d.Retry != Final }

// outcomeRow is one row of the table from errors to outcomes.
type outcomeRow struct {
	name  string
	match func(error) bool
	d     Disposition
}

// outcomes is the one table from an error to what becomes of the object:
// the first row that matches decides. docs/lifecycles.md shows it.
var outcomes = []outcomeRow{
	{"the content or the key is invalid (located in the file)", isContent, Disposition{Rejected, Final}},
	{"the object version no longer exists", func(err error) bool { return errors.Is(err, ErrObjectGone) }, Disposition{Rejected, Final}},
	{"the session takes no more files (complete or expired)", func(err error) bool { return KindOf(err) == Gone }, Disposition{Late, Final}},
	{"a transient failure (throttling, 5xx, a reset, a lost race)", func(err error) bool { return KindOf(err) == Transient }, Disposition{Failed, RetryThenLambda}},
	{"anything else: internal, a permission, a setting, a refusal by Graph", func(error) bool { return true }, Disposition{Failed, Lambda}},
}

// isContent reports whether err is about the dropped object's content or
// key: it locates itself in the file, and will never pass.
func isContent(err error) bool {
	var fe interface{ FieldError() FieldError }
	return errors.As(err, &fe) && KindOf(err) == Invalid
}

// OutcomeOf returns what err means for the object it happened to.
func OutcomeOf(err error) Disposition {
	for _, r := range outcomes {
		if r.match(err) {
			return r.d
		}
	}
	return outcomes[len(outcomes)-1].d
}

// OutcomeTable returns the table's rows as (condition, status, retry), in
// order, for documentation and tests.
func OutcomeTable() [][3]string {
	out := make([][3]string, len(outcomes))
	for i, r := range outcomes {
		out[i] = [3]string{r.name, string(r.d.Status), string(r.d.Retry)}
	}
	return out
}

// ContentError is a problem of a dropped object's content or key that has
// no line of its own (a manifest, a key that needs a route).
type ContentError struct{ Field FieldError }

// Contentf returns a ContentError with a formatted message.
func Contentf(format string, args ...any) error {
	return &ContentError{Field: FieldError{Message: fmt.Sprintf(format, args...)}}
}

func (e *ContentError) Error() string { return e.Field.Error() }

// Kind is Invalid: the same object will never pass.
func (e *ContentError) Kind() Kind { return Invalid }

// FieldError locates the problem for the report.
func (e *ContentError) FieldError() FieldError { return e.Field }
