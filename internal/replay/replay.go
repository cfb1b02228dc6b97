// Package replay re-drives the ingest function's failed events. Lambda puts
// an asynchronous invocation record in the failure queue (the function's
// OnFailure destination) for every event it gave up on; replay reads them,
// invokes the function again, synchronously, once per original S3 record,
// and deletes a message only when every record of it went through without
// a function error.
//
// Replaying is idempotent: ingest claims each object version once, so a
// record that had gone through after all, or is replayed twice, reports
// "duplicate" and sends nothing to Graph.
package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Queue is what replay needs of SQS (*sqs.Client).
type Queue interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Invoker is what replay needs of Lambda (*lambda.Client).
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// Options say what to replay and how.
type Options struct {
	// QueueURL is the failure queue (stack output FailureQueueUrl).
	QueueURL string
	// Function is the ingest function's name or ARN.
	Function string
	// DryRun shows what would be replayed; nothing is invoked or deleted.
	DryRun bool
	// Max is the most messages handled in this run; 0 means all.
	Max int
	// Wait is each receive's long-polling wait (default 5s, at most 20s):
	// a receive that waited this long and got nothing ends the run. Under
	// a second means short polling, which on SQS may answer "empty" while
	// messages remain; it is for emulators and tests.
	Wait time.Duration
	// Visibility is how long a received message stays hidden from other
	// readers while it is replayed (default 15m, the longest an ingest
	// invocation can run). Messages that are kept are made visible again
	// at the end of the run.
	Visibility time.Duration
	// Out receives one block of lines per message (default io.Discard).
	Out io.Writer
}

// Replayer replays the failure queue's messages.
type Replayer struct {
	Queue  Queue
	Lambda Invoker
	Options
}

// New returns a Replayer with SQS and Lambda clients built from cfg, so
// that the endpoints come from the SDK's own settings
// (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_LAMBDA, profiles).
func New(cfg aws.Config, opts Options) *Replayer {
	return &Replayer{Queue: sqs.NewFromConfig(cfg), Lambda: lambda.NewFromConfig(cfg), Options: opts}
}

// RegionOfQueue returns the region in an AWS queue URL
// (https://sqs.eu-west-1.amazonaws.com/123456789012/name), or "" for any
// other URL, such as a local emulator's.
func RegionOfQueue(queueURL string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return ""
	}
	labels := strings.Split(u.Hostname(), ".")
	for i := 0; i+2 < len(labels); i++ {
		if labels[i] == "sqs" && labels[i+2] == "amazonaws" {
			return labels[i+1]
		}
	}
	return ""
}

// Summary counts what a run did.
type Summary struct {
	Messages int // received
	Deleted  int // every record replayed without a function error
	Kept     int // left in the queue: a record failed, unreadable, or a dry run
	Records  int // S3 records found in the messages
	Replayed int // records invoked without a function error
	Failed   int // records whose invocation failed
}

func (s Summary) String() string {
	return fmt.Sprintf("%s: %d deleted, %d kept; %s: %d replayed, %d failed",
		count(s.Messages, "message"), s.Deleted, s.Kept, count(s.Records, "record"), s.Replayed, s.Failed)
}

// Run replays messages until the queue has none left to give, or Max
// messages were handled, or ctx ends. The error is about the queue itself
// (it cannot be read); each message's outcome is in the output and the
// summary.
func (r *Replayer) Run(ctx context.Context) (Summary, error) {
	var s Summary
	if r.QueueURL == "" || r.Function == "" {
		return s, errors.New("replay: the queue URL and the function are required")
	}
	wait := r.Wait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	wait = min(wait, 20*time.Second)
	visibility := r.Visibility
	if visibility <= 0 {
		visibility = 15 * time.Minute
	}
	// Kept messages stay hidden until the end of the run, so that the run
	// sees each message once; then they are released for the next reader.
	var kept []sqstypes.Message
	defer func() { r.release(ctx, kept) }()
	seen := map[string]bool{}
	for r.Max <= 0 || s.Messages < r.Max {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		n := int32(10)
		if r.Max > 0 {
			n = int32(min(10, r.Max-s.Messages))
		}
		out, err := r.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(r.QueueURL),
			MaxNumberOfMessages:         n,
			WaitTimeSeconds:             int32(wait / time.Second),
			VisibilityTimeout:           int32(visibility / time.Second),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			return s, fmt.Errorf("receiving from %s: %w", r.QueueURL, err)
		}
		fresh := 0
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] {
				// Back after its visibility timeout, in a long run: it was
				// handled once already.
				continue
			}
			seen[id] = true
			fresh++
			s.Messages++
			if r.message(ctx, m, &s) {
				s.Deleted++
			} else {
				s.Kept++
				kept = append(kept, m)
			}
		}
		if fresh == 0 {
			return s, nil
		}
	}
	return s, nil
}

// message replays one message and reports whether it was deleted.
func (r *Replayer) message(ctx context.Context, m sqstypes.Message, s *Summary) bool {
	out := r.out()
	id := aws.ToString(m.MessageId)
	rec, err := ParseRecord([]byte(aws.ToString(m.Body)))
	if err != nil {
		fmt.Fprintf(out, "message %s: kept: %v\n", id, err)
		return false
	}
	head := fmt.Sprintf("message %s: %s after %d attempts", id, orUnknown(rec.RequestContext.Condition), rec.RequestContext.ApproximateInvokeCount)
	if rec.Timestamp != "" {
		head += " at " + rec.Timestamp
	}
	if n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]); n > 1 {
		head += fmt.Sprintf(" (received %d times from the queue)", n)
	}
	if e := rec.LastError(); e != "" {
		head += "; last error: " + clip(e, 300)
	}
	fmt.Fprintln(out, head)
	events, err := rec.Events()
	if err != nil {
		fmt.Fprintf(out, "  kept: %v\n", err)
		return false
	}
	s.Records += len(events)
	failed := 0
	for _, ev := range events {
		if r.DryRun {
			fmt.Fprintf(out, "  %s: would replay\n", ev)
			continue
		}
		outcome, err := r.invoke(ctx, ev)
		if err != nil {
			failed++
			s.Failed++
			fmt.Fprintf(out, "  %s: failed: %v\n", ev, err)
			continue
		}
		s.Replayed++
		fmt.Fprintf(out, "  %s: replayed: %s\n", ev, outcome)
	}
	switch {
	case r.DryRun:
		fmt.Fprintln(out, "  kept (dry run)")
		return false
	case failed > 0:
		fmt.Fprintf(out, "  kept: %d of %d records failed; the message stays in the queue\n", failed, len(events))
		return false
	}
	if _, err := r.Queue.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
		// Harmless: a later replay of it finds the records done (duplicate).
		fmt.Fprintf(out, "  replayed, but not deleted: %v\n", err)
		return false
	}
	fmt.Fprintln(out, "  deleted")
	return true
}

// invoke sends one record to the function and waits for its answer. The
// error is a failed call or a function error; otherwise it describes the
// function's response.
func (r *Replayer) invoke(ctx context.Context, ev Event) (string, error) {
	res, err := r.Lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(r.Function),
		InvocationType: lambdatypes.InvocationTypeRequestResponse,
		Payload:        ev.Payload,
	})
	if err != nil {
		return "", fmt.Errorf("invoking %s: %w", r.Function, err)
	}
	if msg, failed := functionError(res); failed {
		return "", fmt.Errorf("function error: %s", clip(msg, 500))
	}
	payload := bytes.TrimSpace(res.Payload)
	if len(payload) == 0 || string(payload) == "null" {
		return "ok, no function error", nil
	}
	var compact bytes.Buffer
	if json.Compact(&compact, payload) == nil {
		payload = compact.Bytes()
	}
	return "ok, response " + clip(string(payload), 500), nil
}

// functionError reports whether the invocation ended in a function error,
// and its message. Lambda says so in X-Amz-Function-Error (FunctionError);
// the runtime interface emulator, used locally, does not set that header,
// so the error document in the payload counts too, and so does the plain
// text it answers for a timeout. Ingest's successful answer is null, which
// is neither.
func functionError(res *lambda.InvokeOutput) (string, bool) {
	var doc struct {
		ErrorType    *string `json:"errorType"`
		ErrorMessage *string `json:"errorMessage"`
	}
	isDoc := json.Unmarshal(res.Payload, &doc) == nil && doc.ErrorType != nil && doc.ErrorMessage != nil
	switch {
	case isDoc:
		return *doc.ErrorType + ": " + *doc.ErrorMessage, true
	case res.FunctionError != nil:
		return aws.ToString(res.FunctionError) + ": " + strings.TrimSpace(string(res.Payload)), true
	case bytes.HasPrefix(res.Payload, []byte("Task timed out after")):
		return string(res.Payload), true
	}
	return "", false
}

// release makes the kept messages visible again at once, for the next run
// or reader, instead of after the visibility timeout.
func (r *Replayer) release(ctx context.Context, kept []sqstypes.Message) {
	if len(kept) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, m := range kept {
		_, err := r.Queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(r.QueueURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
		})
		if err != nil {
			fmt.Fprintf(r.out(), "message %s stays hidden until its visibility timeout ends: %v\n", aws.ToString(m.MessageId), err)
		}
	}
}

func (r *Replayer) out() io.Writer {
	if r.Out == nil {
		return io.Discard
	}
	return r.Out
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func orUnknown(s string) string {
	if s == "" {
		return "failed"
	}
	return s
}

// clip shortens s to at most n bytes for one line of output.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
