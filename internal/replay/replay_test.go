package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/replay"
)

var testCreds = credentials.NewStaticCredentialsProvider("test", "test", "")

func sqsClient(endpoint string) *sqs.Client {
	return sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: testCreds})
}

func lambdaClient(endpoint string) *lambda.Client {
	return lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: testCreds})
}

// destinationRecord is the message Lambda's OnFailure destination sends for
// an event that failed after its retries (the documented shape).
func destinationRecord(t testing.TB, recs ...events.S3EventRecord) string {
	t.Helper()
	return destinationRecordWith(t, harness.Payload(recs...), json.RawMessage(`{"errorMessage":"incoming/a.csv: graph upload: 503 serviceUnavailable","errorType":"wrapError"}`))
}

func destinationRecordWith(t testing.TB, requestPayload, responsePayload json.RawMessage) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"version":   "1.0",
		"timestamp": "2026-11-28T10:00:00.000Z",
		"requestContext": map[string]any{
			"requestId":              "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
			"functionArn":            "arn:aws:lambda:us-east-1:123456789012:function:byodrop-IngestFunction-AbC123:$LATEST",
			"condition":              "RetriesExhausted",
			"approximateInvokeCount": 3,
		},
		"requestPayload":  requestPayload,
		"responseContext": map[string]any{"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
		"responsePayload": responsePayload,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func record(key, version string) events.S3EventRecord {
	return harness.Record("drop", key, 10, "etag-"+version, version)
}

// fakeLambda answers the Invoke API (POST /2015-03-31/functions/{name}/invocations)
// the way Lambda does: a function error is a 200 with X-Amz-Function-Error.
type fakeLambda struct {
	*httptest.Server
	// answer decides the response to one payload; nil means success (null).
	answer func(payload []byte) (status int, header map[string]string, body string)

	mu    sync.Mutex
	calls []fakeCall
}

type fakeCall struct {
	Function string
	Type     string // X-Amz-Invocation-Type
	Payload  []byte
}

func startFakeLambda(t *testing.T) *fakeLambda {
	t.Helper()
	f := &fakeLambda{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/2015-03-31/functions/")
		name, ok2 := strings.CutSuffix(name, "/invocations")
		if r.Method != http.MethodPost || !ok || !ok2 {
			http.Error(w, "not the Invoke API", http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.calls = append(f.calls, fakeCall{Function: name, Type: r.Header.Get("X-Amz-Invocation-Type"), Payload: body})
		answer := f.answer
		f.mu.Unlock()
		status, header, resp := http.StatusOK, map[string]string(nil), "null"
		if answer != nil {
			status, header, resp = answer(body)
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, resp)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeLambda) invocations() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// keyOf returns the object key of a one-record S3 event.
func keyOf(t testing.TB, payload []byte) string {
	t.Helper()
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("invoked with a payload that is not an S3 event: %v: %s", err, payload)
	}
	if len(ev.Records) != 1 {
		t.Fatalf("invoked with %d records, want exactly one: %s", len(ev.Records), payload)
	}
	return ev.Records[0].S3.Object.Key
}

// world is a fake queue and a fake function, wired to a Replayer.
type world struct {
	sqs    *fakeSQS
	fn     *fakeLambda
	queue  string
	out    bytes.Buffer
	client *sqs.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{sqs: startFakeSQS(t), fn: startFakeLambda(t)}
	w.client = sqsClient(w.sqs.URL)
	q, err := w.client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("byodrop-FailureQueue")})
	if err != nil {
		t.Fatal(err)
	}
	w.queue = aws.ToString(q.QueueUrl)
	return w
}

func (w *world) send(t *testing.T, body string) {
	t.Helper()
	if _, err := w.client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(w.queue), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) replayer(opts replay.Options) *replay.Replayer {
	opts.QueueURL, opts.Function, opts.Out = w.queue, "byodrop-IngestFunction-AbC123", &w.out
	if opts.Wait == 0 {
		opts.Wait = time.Millisecond // short polling: the fake has no servers to sample
	}
	return &replay.Replayer{Queue: w.client, Lambda: lambdaClient(w.fn.URL), Options: opts}
}

func (w *world) run(t *testing.T, opts replay.Options) replay.Summary {
	t.Helper()
	s, err := w.replayer(opts).Run(context.Background())
	if err != nil {
		t.Fatalf("replay: %v\noutput:\n%s", err, w.out.String())
	}
	t.Logf("replay output:\n%s%s", w.out.String(), s)
	return s
}

func TestEachRecordIsReplayedAloneAndTheMessageDeleted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	a, b := record("incoming/x/a.csv", "v1"), record("incoming/x/b+c.csv", "v7")
	w.send(t, destinationRecord(t, a, b))

	s := w.run(t, replay.Options{})
	if want := (replay.Summary{Messages: 1, Deleted: 1, Records: 2, Replayed: 2}); s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	calls := w.fn.invocations()
	if len(calls) != 2 {
		t.Fatalf("%d invocations, want one per record", len(calls))
	}
	for i, want := range []events.S3EventRecord{a, b} {
		c := calls[i]
		if c.Function != "byodrop-IngestFunction-AbC123" || c.Type != "RequestResponse" {
			t.Errorf("invocation %d: function %q, type %q; want the named function, synchronously", i, c.Function, c.Type)
		}
		// The record is sent as Lambda delivered it, not re-encoded.
		wantPayload, _ := json.Marshal(events.S3Event{Records: []events.S3EventRecord{want}})
		if !bytes.Equal(c.Payload, wantPayload) {
			t.Errorf("invocation %d payload\n got %s\nwant %s", i, c.Payload, wantPayload)
		}
	}
	if total, _ := w.sqs.counts(w.queue); total != 0 {
		t.Errorf("%d messages left; a fully replayed message is deleted", total)
	}
	out := w.out.String()
	for _, want := range []string{"RetriesExhausted after 3 attempts", "last error: wrapError: incoming/a.csv: graph upload: 503",
		"s3://drop/incoming/x/a.csv (version v1): replayed", "s3://drop/incoming/x/b+c.csv (version v7): replayed", "deleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestARecordThatStillFailsKeepsItsMessageButNotTheOthers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.fn.answer = func(payload []byte) (int, map[string]string, string) {
		if strings.Contains(string(payload), "bad.csv") {
			return http.StatusOK, map[string]string{"X-Amz-Function-Error": "Unhandled"},
				`{"errorMessage":"incoming/x/bad.csv: graph upload: 503 serviceUnavailable","errorType":"wrapError"}`
		}
		return http.StatusOK, nil, "null"
	}
	w.send(t, destinationRecord(t, record("incoming/x/good.csv", "v1"), record("incoming/x/bad.csv", "v1")))
	w.send(t, destinationRecord(t, record("incoming/x/other.csv", "v1")))

	s := w.run(t, replay.Options{})
	if want := (replay.Summary{Messages: 2, Deleted: 1, Kept: 1, Records: 3, Replayed: 2, Failed: 1}); s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	var keys []string
	for _, c := range w.fn.invocations() {
		keys = append(keys, keyOf(t, c.Payload))
	}
	// The good record of the failing message was replayed all the same.
	if want := []string{"incoming/x/good.csv", "incoming/x/bad.csv", "incoming/x/other.csv"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("invoked %v, want %v", keys, want)
	}
	// The kept message is back in the queue, visible at once for the next run.
	if total, visible := w.sqs.counts(w.queue); total != 1 || visible != 1 {
		t.Errorf("queue holds %d messages, %d visible; want the failing one, visible", total, visible)
	}
	out := w.out.String()
	for _, want := range []string{"bad.csv (version v1): failed: function error: wrapError: incoming/x/bad.csv: graph upload: 503",
		"kept: 1 of 2 records failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestFunctionErrorsAreRecognised(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   string
		failed bool
		says   string
	}{
		{"Lambda's header", map[string]string{"X-Amz-Function-Error": "Unhandled"}, `{"errorMessage":"boom","errorType":"wrapError"}`, true, "wrapError: boom"},
		{"the emulator's error document, no header", nil, `{"errorMessage":"boom","errorType":"wrapError"}`, true, "wrapError: boom"},
		{"the emulator's timeout text", nil, "Task timed out after 900.00 seconds", true, "Task timed out"},
		{"a header without a document", map[string]string{"X-Amz-Function-Error": "Unhandled"}, `"out of memory"`, true, "Unhandled"},
		{"ingest's success: null", nil, "null", false, "ok, no function error"},
		{"a response document", nil, `{"objects": [{"key": "a.csv", "status": "uploaded"}]}`, false, `ok, response {"objects":[{"key":"a.csv","status":"uploaded"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.fn.answer = func([]byte) (int, map[string]string, string) { return http.StatusOK, tc.header, tc.body }
			w.send(t, destinationRecord(t, record("incoming/x/a.csv", "v1")))
			s := w.run(t, replay.Options{})
			if (s.Failed == 1) != tc.failed || (s.Deleted == 1) == tc.failed {
				t.Errorf("summary %+v; failed = %v expected", s, tc.failed)
			}
			if !strings.Contains(w.out.String(), tc.says) {
				t.Errorf("output lacks %q", tc.says)
			}
		})
	}
}

func TestInvokeRefusedKeepsTheMessage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.fn.answer = func([]byte) (int, map[string]string, string) {
		return http.StatusNotFound, map[string]string{"X-Amzn-ErrorType": "ResourceNotFoundException", "Content-Type": "application/json"},
			`{"Type":"User","message":"Function not found: arn:aws:lambda:us-east-1:123456789012:function:byodrop-IngestFunction-AbC123"}`
	}
	w.send(t, destinationRecord(t, record("incoming/x/a.csv", "v1")))
	s := w.run(t, replay.Options{})
	if s.Kept != 1 || s.Failed != 1 {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(w.out.String(), "ResourceNotFoundException") {
		t.Errorf("output does not say why the call failed")
	}
	if total, _ := w.sqs.counts(w.queue); total != 1 {
		t.Errorf("message deleted although nothing was replayed")
	}
}

func TestDryRunInvokesAndDeletesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for i := range 3 {
		w.send(t, destinationRecord(t, record(fmt.Sprintf("incoming/x/%d.csv", i), "v1")))
	}
	s := w.run(t, replay.Options{DryRun: true})
	if want := (replay.Summary{Messages: 3, Kept: 3, Records: 3}); s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	if n := len(w.fn.invocations()); n != 0 {
		t.Errorf("dry run invoked the function %d times", n)
	}
	if got := w.sqs.calls()["DeleteMessage"]; got != 0 {
		t.Errorf("dry run deleted %d messages", got)
	}
	// Released at the end: a real run right after finds them.
	if total, visible := w.sqs.counts(w.queue); total != 3 || visible != 3 {
		t.Errorf("after the dry run: %d messages, %d visible; want 3 and 3", total, visible)
	}
	if !strings.Contains(w.out.String(), "s3://drop/incoming/x/0.csv (version v1): would replay") {
		t.Errorf("dry run does not say what it would replay")
	}
}

func TestDrainsBatchesAndStopsAtMax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		messages, max  int
		handled, calls int
	}{
		{"all of three batches", 23, 0, 23, 3 + 1}, // 10, 10, 3, then an empty receive
		{"at most max", 23, 12, 12, 2},             // 10, then 2
		{"max beyond the queue", 4, 50, 4, 2},      // 4, then an empty receive
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			for i := range tc.messages {
				w.send(t, destinationRecord(t, record(fmt.Sprintf("incoming/x/%02d.csv", i), "v1")))
			}
			s := w.run(t, replay.Options{Max: tc.max})
			if s.Messages != tc.handled || s.Deleted != tc.handled {
				t.Errorf("summary %+v, want %d handled and deleted", s, tc.handled)
			}
			if got := w.sqs.calls()["ReceiveMessage"]; got != tc.calls {
				t.Errorf("%d receives, want %d", got, tc.calls)
			}
			if total, _ := w.sqs.counts(w.queue); total != tc.messages-tc.handled {
				t.Errorf("%d messages left, want %d", total, tc.messages-tc.handled)
			}
		})
	}
}

func TestUnreadableMessagesAreKept(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, says string }{
		{"not JSON", "hello", "not an asynchronous invocation record"},
		{"another kind of message", `{"Records":[{"eventSource":"aws:s3"}]}`, "no requestPayload"},
		{"not an S3 event", destinationRecordWith(t, json.RawMessage(`{"source":"aws.events"}`), nil), "no S3 records"},
		{"a record without a key", destinationRecordWith(t, json.RawMessage(`{"Records":[{"s3":{}}]}`), nil), "record 1 is not an S3 record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.send(t, tc.body)
			w.send(t, destinationRecord(t, record("incoming/x/fine.csv", "v1")))
			s := w.run(t, replay.Options{})
			if s.Messages != 2 || s.Kept != 1 || s.Deleted != 1 {
				t.Errorf("summary %+v: want the unreadable message kept and the other replayed", s)
			}
			if !strings.Contains(w.out.String(), tc.says) {
				t.Errorf("output lacks %q", tc.says)
			}
		})
	}
}

func TestQueueErrorsStopTheRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replayer(replay.Options{})
	r.QueueURL = w.sqs.URL + "/123456789012/no-such-queue"
	_, err := r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "QueueDoesNotExist") {
		t.Errorf("error %v, want the queue's refusal", err)
	}
}

// The command builds its clients from the SDK's configuration: the
// service-specific endpoint variables must reach both clients.
func TestEndpointsComeFromTheSDKSettings(t *testing.T) {
	w := newWorld(t)
	w.send(t, destinationRecord(t, record("incoming/x/a.csv", "v1")))
	t.Setenv("AWS_ENDPOINT_URL_SQS", w.sqs.URL)
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", w.fn.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s, err := replay.New(cfg, replay.Options{QueueURL: w.queue, Function: "byodrop-IngestFunction-AbC123", Wait: time.Millisecond, Out: &out}).Run(context.Background())
	if err != nil || s.Deleted != 1 || len(w.fn.invocations()) != 1 {
		t.Errorf("summary %+v, error %v, %d invocations:\n%s", s, err, len(w.fn.invocations()), out.String())
	}
}

func TestRegionOfQueue(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"https://sqs.eu-west-1.amazonaws.com/123456789012/byodrop-FailureQueue-X": "eu-west-1",
		"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q":                  "cn-north-1",
		"https://sqs.us-gov-west-1.amazonaws.com/123456789012/q":                  "us-gov-west-1",
		"http://127.0.0.1:4566/000000000000/q":                                    "",
		"not a url %":                                                             "",
	} {
		if got := replay.RegionOfQueue(url); got != want {
			t.Errorf("RegionOfQueue(%q) = %q, want %q", url, got, want)
		}
	}
}

func TestParseRecordReadsTheDocumentedShape(t *testing.T) {
	t.Parallel()
	// The example of a failed invocation's record from the Lambda
	// documentation, with an S3 event as its request.
	body := `{"version":"1.0","timestamp":"2019-11-14T18:16:05.568Z",
	"requestContext":{"requestId":"e4b46cbf-b738-xmpl-8880-a18cdf61200e","functionArn":"arn:aws:lambda:us-east-2:123456789012:function:my-function:$LATEST","condition":"EventAgeExceeded","approximateInvokeCount":0},
	"requestPayload":{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"drop"},"object":{"key":"incoming/badges/a%2Bb+c.csv","size":5,"eTag":"e","versionId":"v9"}}}]},
	"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},
	"responsePayload":{"errorMessage":"RequestId: e4b46cbf-b738-xmpl-8880-a18cdf61200e Error: Runtime exited with error: exit status 1","errorType":"Runtime.ExitError"}}`
	rec, err := replay.ParseRecord([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if rec.RequestContext.Condition != "EventAgeExceeded" || rec.ResponseContext.FunctionError != "Unhandled" || rec.ResponseContext.StatusCode != 200 {
		t.Errorf("record %+v", rec)
	}
	if got := rec.LastError(); !strings.HasPrefix(got, "Runtime.ExitError: RequestId:") {
		t.Errorf("LastError %q", got)
	}
	evs, err := rec.Events()
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Bucket != "drop" || evs[0].Key != "incoming/badges/a+b c.csv" || evs[0].VersionID != "v9" {
		t.Errorf("events %+v", evs)
	}
	var ev events.S3Event
	if err := json.Unmarshal(evs[0].Payload, &ev); err != nil || len(ev.Records) != 1 || ev.Records[0].S3.Object.Key != "incoming/badges/a%2Bb+c.csv" {
		t.Errorf("payload %s: the key must stay encoded as S3 sent it", evs[0].Payload)
	}
}
