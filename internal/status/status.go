// Package status reads what byodrop left in the state bucket (the ledger's
// open index and session records, the files' reports) and the failure
// queue's depth, and says where things stand: `byodrop status`. It only
// reads, and needs no Graph token: s3:ListBucket on the state prefix,
// s3:GetObject under it and, for the queue, sqs:GetQueueAttributes.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// Defaults of Options.
const (
	DefaultPrefix   = "state/"
	DefaultDays     = 7
	DefaultMaxFiles = 20
	// readers bounds the concurrent GETs: enough to read a week of reports
	// quickly, few enough not to be throttled.
	readers = 16
)

// Options say what to read.
type Options struct {
	Bucket string // the state bucket (STATE_BUCKET; the stack's DropBucketName)
	Prefix string // the state prefix (STATE_PREFIX), default state/
	// Days: sessions ended and files reported in the last Days days are
	// shown (default 7).
	Days int
	// MaxFiles bounds the rejected and failed files listed, newest first
	// (default 20); they are all counted.
	MaxFiles int
	// QueueURL is the failure queue (stack output FailureQueueUrl); empty
	// means its depth is not read.
	QueueURL string
	// Policy is the finalizer's QUIET_PERIOD and CLOSE_MARGIN, to say when
	// each open session will be closed.
	Policy review.Policy
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Clients are what Read reads with. SQS may be nil when QueueURL is empty.
type Clients struct {
	S3  *s3.Client
	SQS QueueReader
}

// QueueReader reads a queue's attributes (*sqs.Client implements it).
type QueueReader interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Status is where things stand.
type Status struct {
	Bucket string    `json:"bucket"`
	Prefix string    `json:"prefix"`
	At     time.Time `json:"at"`
	Since  time.Time `json:"since"` // start of the window of Ended and Files
	// Open are the sessions of the open index, soonest window end first.
	Open []OpenSession `json:"open"`
	// Ended are the sessions closed or expired since Since, latest first.
	Ended []EndedSession `json:"ended"`
	// Files counts the reports written since Since by status.
	Files map[review.Status]int `json:"files"`
	// Problems are the newest rejected and failed files since Since (at
	// most MaxFiles), with their first error.
	Problems []Problem `json:"problems"`
	// FailureQueue is nil when no queue was given.
	FailureQueue *Queue `json:"failureQueue,omitempty"`
}

// OpenSession is a session still taking files, and what will close it.
type OpenSession struct {
	Key          string        `json:"key"` // <catalog>/<resource>/<instance>
	Target       review.Target `json:"target"`
	SessionID    string        `json:"sessionId,omitempty"`
	State        ledger.State  `json:"state"`
	CreatedAt    time.Time     `json:"createdAt,omitzero"`
	WindowEnds   time.Time     `json:"windowEnds,omitzero"`
	LastUploadAt time.Time     `json:"lastUploadAt,omitzero"`
	Files        int           `json:"files"`
	Manifest     []string      `json:"manifest,omitempty"`
	Missing      []string      `json:"missing,omitempty"`
	// CloseAt is when the close rules make it due (the finalizer closes it
	// at its first run from then); zero when it will not be closed.
	CloseAt     time.Time `json:"closeAt,omitzero"`
	CloseReason string    `json:"closeReason,omitempty"`
	// Next says in words what happens next.
	Next string `json:"next"`
}

// EndedSession is a session closed or expired.
type EndedSession struct {
	Key         string        `json:"key"`
	Target      review.Target `json:"target"`
	SessionID   string        `json:"sessionId,omitempty"`
	State       ledger.State  `json:"state"`
	EndedAt     time.Time     `json:"endedAt"`
	CloseReason string        `json:"closeReason,omitempty"`
	Files       int           `json:"files"`
	Note        string        `json:"note,omitempty"`
}

// Problem is a rejected or failed file.
type Problem struct {
	Key       string            `json:"key"`
	Status    review.Status     `json:"status"`
	At        time.Time         `json:"at"`
	SessionID string            `json:"sessionId,omitempty"`
	Error     review.FieldError `json:"error"`
}

// Queue is a queue's depth.
type Queue struct {
	URL      string `json:"url"`
	Waiting  int    `json:"waiting"`  // ApproximateNumberOfMessages
	InFlight int    `json:"inFlight"` // ApproximateNumberOfMessagesNotVisible
}

// Read reads the status.
func Read(ctx context.Context, c Clients, o Options) (*Status, error) {
	if o.Bucket == "" {
		return nil, fmt.Errorf("no bucket: give -bucket (or STATE_BUCKET), the stack output DropBucketName")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.Days <= 0 {
		o.Days = DefaultDays
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	// Empty lists, not null, for scripts reading the JSON.
	st := &Status{
		Bucket: o.Bucket, Prefix: o.Prefix, At: now().UTC(), Files: map[review.Status]int{},
		Open: []OpenSession{}, Ended: []EndedSession{}, Problems: []Problem{},
	}
	st.Since = st.At.Add(-time.Duration(o.Days) * 24 * time.Hour)

	store := &blob.S3{Client: c.S3, Bucket: o.Bucket}
	led := ledger.New(store, o.Prefix)
	if err := st.readOpen(ctx, led, o.Policy); err != nil {
		return nil, err
	}
	if err := st.readEnded(ctx, c.S3, led, o); err != nil {
		return nil, err
	}
	if err := st.readFiles(ctx, c.S3, store, o); err != nil {
		return nil, err
	}
	if o.QueueURL != "" {
		if c.SQS == nil {
			return nil, fmt.Errorf("failure queue %s: no SQS client", o.QueueURL)
		}
		q, err := readQueue(ctx, c.SQS, o.QueueURL)
		if err != nil {
			return nil, err
		}
		st.FailureQueue = q
	}
	return st, nil
}

func (st *Status) readOpen(ctx context.Context, led *ledger.Ledger, p review.Policy) error {
	keys, err := led.OpenSessions(ctx)
	if err != nil {
		return fmt.Errorf("listing the open index s3://%s/%sopen/: %w", st.Bucket, st.Prefix, err)
	}
	recs := make([]*ledger.Session, len(keys))
	errs := make([]error, len(keys))
	each(len(keys), func(i int) { recs[i], errs[i] = led.SessionByKey(ctx, keys[i]) })
	for i, k := range keys {
		switch {
		case blob.IsNotFound(errs[i]):
			// An index entry whose record is gone: the finalizer drops it.
			st.Open = append(st.Open, OpenSession{Key: k, Next: "no session record; the finalizer removes the index entry"})
			continue
		case errs[i] != nil:
			return fmt.Errorf("reading the session record of %s: %w", k, errs[i])
		}
		st.Open = append(st.Open, DescribeOpen(k, recs[i], p, st.At))
	}
	slices.SortStableFunc(st.Open, func(a, b OpenSession) int { return a.WindowEnds.Compare(b.WindowEnds) })
	return nil
}

// DescribeOpen says what the close rules (review.Decide, as the finalizer
// applies them) will do with s, and when.
func DescribeOpen(key string, s *ledger.Session, p review.Policy, now time.Time) OpenSession {
	o := OpenSession{
		Key: key, Target: s.Target, SessionID: s.SessionID, State: s.State,
		CreatedAt: s.CreatedAt, WindowEnds: s.WindowEnds, LastUploadAt: s.LastUploadAt, Files: len(s.Files),
	}
	facts := s.Facts()
	o.Manifest = facts.Manifest
	d := review.Decide(facts, p, now)
	o.Missing = d.Missing
	deadline := s.WindowEnds.Add(-p.CloseMargin)
	switch {
	case s.Ended():
		o.Next = fmt.Sprintf("already %s; the finalizer removes it from the open index", s.State)
	case s.State == ledger.CreateUnknown:
		o.Next = "create outcome unknown: resolve it by hand (docs/operations.md, Create outcome unknown): " + s.Note
	case s.State == ledger.Pending && s.SessionID == "":
		o.Next = "no Graph session yet: the next file creates it"
	case s.WindowEnds.IsZero():
		o.Next = "no window known yet"
	case d.Expired:
		o.Next = "window ended with no file: the finalizer records it expired (nothing lost)"
	case d.Close:
		o.CloseAt, o.CloseReason = now, d.Reason
		o.Next = "due now (" + d.Reason + "): the next finalizer run closes it"
	case len(facts.Uploaded) == 0:
		o.Next = "no file yet: never closed empty; expires at the window's end"
	case facts.Manifest != nil:
		o.CloseAt, o.CloseReason = deadline, review.ReasonDeadline
		o.Next = fmt.Sprintf("waiting for %d file(s) of the manifest; closed at once when they are in, else at the deadline", len(d.Missing))
	default:
		o.CloseAt, o.CloseReason = s.LastUploadAt.Add(p.QuietPeriod), review.ReasonQuietPeriod
		if deadline.Before(o.CloseAt) {
			o.CloseAt, o.CloseReason = deadline, review.ReasonDeadline
		}
		o.Next = "closed after the quiet period since the last upload, unless another file arrives"
		if o.CloseReason == review.ReasonDeadline {
			o.Next = "closed at the deadline, before the window ends"
		}
	}
	return o
}

// object is a listed key and when it was last written.
type object struct {
	key     string
	written time.Time
}

// list lists the keys under prefix written since since: a record's or a
// report's last write is at or after everything it says happened, so older
// objects cannot hold anything recent.
func list(ctx context.Context, c *s3.Client, bucket, prefix string, since time.Time) ([]object, error) {
	var out []object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if o.LastModified != nil && !o.LastModified.Before(since) {
				out = append(out, object{aws.ToString(o.Key), *o.LastModified})
			}
		}
	}
	return out, nil
}

func (st *Status) readEnded(ctx context.Context, c *s3.Client, led *ledger.Ledger, o Options) error {
	p := o.Prefix + "sessions/"
	objs, err := list(ctx, c, o.Bucket, p, st.Since)
	if err != nil {
		return err
	}
	recs := make([]*ledger.Session, len(objs))
	errs := make([]error, len(objs))
	each(len(objs), func(i int) {
		key, ok := strings.CutSuffix(strings.TrimPrefix(objs[i].key, p), ".json")
		if ok {
			recs[i], errs[i] = led.SessionByKey(ctx, key)
		}
	})
	for i, s := range recs {
		if blob.IsNotFound(errs[i]) {
			continue // expired or removed since the listing
		}
		if errs[i] != nil {
			return fmt.Errorf("reading %s: %w", objs[i].key, errs[i])
		}
		if s == nil || !s.Ended() {
			continue
		}
		e := EndedSession{
			Key: s.Target.SessionKey(), Target: s.Target, SessionID: s.SessionID, State: s.State,
			CloseReason: s.CloseReason, Files: len(s.Files), Note: s.Note,
		}
		e.EndedAt = s.ClosedAt
		if s.State == ledger.Expired {
			e.EndedAt = s.ExpiredAt
		}
		if e.EndedAt.IsZero() {
			e.EndedAt = objs[i].written
		}
		if e.EndedAt.Before(st.Since) {
			continue
		}
		st.Ended = append(st.Ended, e)
	}
	slices.SortStableFunc(st.Ended, func(a, b EndedSession) int { return b.EndedAt.Compare(a.EndedAt) })
	return nil
}

func (st *Status) readFiles(ctx context.Context, c *s3.Client, store blob.Store, o Options) error {
	objs, err := list(ctx, c, o.Bucket, o.Prefix+"reports/", st.Since)
	if err != nil {
		return err
	}
	reps := make([]*review.Report, len(objs))
	errs := make([]error, len(objs))
	each(len(objs), func(i int) {
		obj, err := store.Get(ctx, objs[i].key)
		if err != nil {
			errs[i] = err
			return
		}
		var r review.Report
		if err := json.Unmarshal(obj.Data, &r); err != nil {
			errs[i] = fmt.Errorf("not a report: %w", err)
			return
		}
		reps[i] = &r
	})
	for i, r := range reps {
		if blob.IsNotFound(errs[i]) {
			continue
		}
		if errs[i] != nil {
			return fmt.Errorf("reading %s: %w", objs[i].key, errs[i])
		}
		st.Files[r.Status]++
		if r.Status != review.Rejected && r.Status != review.Failed {
			continue
		}
		p := Problem{Key: r.Key, Status: r.Status, At: r.At, SessionID: r.SessionID}
		if len(r.Errors) > 0 {
			p.Error = r.Errors[0]
		}
		st.Problems = append(st.Problems, p)
	}
	slices.SortStableFunc(st.Problems, func(a, b Problem) int { return b.At.Compare(a.At) })
	if len(st.Problems) > o.MaxFiles {
		st.Problems = st.Problems[:o.MaxFiles]
	}
	return nil
}

func readQueue(ctx context.Context, c QueueReader, url string) (*Queue, error) {
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("reading the failure queue %s: %w", url, err)
	}
	q := &Queue{URL: url}
	q.Waiting, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	q.InFlight, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return q, nil
}

// each runs fn(0..n-1) on at most readers goroutines.
func each(n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, readers) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
