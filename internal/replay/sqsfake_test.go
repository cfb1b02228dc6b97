package replay_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSQS is a small in-process SQS for tests, speaking the JSON protocol
// of the SDK (X-Amz-Target: AmazonSQS.<Action>, application/x-amz-json-1.0):
// CreateQueue, SendMessage, ReceiveMessage (long polling, visibility
// timeouts, a new receipt handle per receive), DeleteMessage and
// ChangeMessageVisibility, refusing stale receipt handles as SQS does.
// Bodies are checked by the SDK against the MD5 digests it returns.
type fakeSQS struct {
	*httptest.Server

	mu      sync.Mutex
	queues  map[string][]*fakeMessage // by queue URL
	actions []string
	seq     int
}

type fakeMessage struct {
	id, body  string
	receipt   string // the latest receive's handle; "" before the first
	visibleAt time.Time
	receives  int
	sent      time.Time
}

func startFakeSQS(t *testing.T) *fakeSQS {
	t.Helper()
	f := &fakeSQS{queues: map[string][]*fakeMessage{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// sqsError is an error in the JSON protocol's shape.
type sqsError struct {
	status     int
	code, text string
}

func (f *fakeSQS) serve(w http.ResponseWriter, r *http.Request) {
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	if r.Method != http.MethodPost || !ok || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.0") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"__type": "com.amazonaws.sqs#InvalidAction", "message": "not an SQS JSON request"})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeJSON(w, http.StatusForbidden, map[string]string{"__type": "com.amazonaws.sqs#MissingAuthenticationToken", "message": "request is not signed"})
		return
	}
	var in struct {
		QueueName, QueueUrl, MessageBody, ReceiptHandle string
		MaxNumberOfMessages, WaitTimeSeconds            int
		VisibilityTimeout                               *int
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": err.Error()})
		return
	}
	f.mu.Lock()
	f.actions = append(f.actions, action)
	f.mu.Unlock()
	var out any
	var e *sqsError
	switch action {
	case "CreateQueue":
		out = f.createQueue(in.QueueName)
	case "SendMessage":
		out, e = f.send(in.QueueUrl, in.MessageBody)
	case "ReceiveMessage":
		out, e = f.receive(r, in.QueueUrl, in.MaxNumberOfMessages, in.WaitTimeSeconds, in.VisibilityTimeout)
	case "DeleteMessage":
		out, e = f.delete(in.QueueUrl, in.ReceiptHandle)
	case "ChangeMessageVisibility":
		out, e = f.changeVisibility(in.QueueUrl, in.ReceiptHandle, in.VisibilityTimeout)
	default:
		e = &sqsError{http.StatusBadRequest, "InvalidAction", "the fake does not implement " + action}
	}
	if e != nil {
		w.Header().Set("x-amzn-query-error", e.code+";Sender")
		writeJSON(w, e.status, map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.text})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (f *fakeSQS) createQueue(name string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.URL + "/123456789012/" + name
	if _, ok := f.queues[u]; !ok {
		f.queues[u] = nil
	}
	return map[string]string{"QueueUrl": u}
}

func (f *fakeSQS) queue(u string) ([]*fakeMessage, *sqsError) {
	q, ok := f.queues[u]
	if !ok {
		return nil, &sqsError{http.StatusBadRequest, "QueueDoesNotExist", "The specified queue does not exist: " + u}
	}
	return q, nil
}

func (f *fakeSQS) send(u, body string) (any, *sqsError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, e := f.queue(u); e != nil {
		return nil, e
	}
	f.seq++
	m := &fakeMessage{id: fmt.Sprintf("00000000-0000-4000-8000-%012d", f.seq), body: body, sent: time.Now()}
	f.queues[u] = append(f.queues[u], m)
	return map[string]string{"MessageId": m.id, "MD5OfMessageBody": md5Hex(body)}, nil
}

func (f *fakeSQS) receive(r *http.Request, u string, max, wait int, visibility *int) (any, *sqsError) {
	if max == 0 {
		max = 1
	}
	if max < 1 || max > 10 {
		return nil, &sqsError{http.StatusBadRequest, "InvalidParameterValue", "MaxNumberOfMessages must be 1 to 10"}
	}
	vis := 30 * time.Second
	if visibility != nil {
		vis = time.Duration(*visibility) * time.Second
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		f.mu.Lock()
		q, e := f.queue(u)
		if e != nil {
			f.mu.Unlock()
			return nil, e
		}
		now := time.Now()
		var msgs []map[string]any
		for _, m := range q {
			if len(msgs) == max {
				break
			}
			if m.visibleAt.After(now) {
				continue
			}
			f.seq++
			m.receives++
			m.receipt = fmt.Sprintf("receipt-%s-%d", m.id, f.seq)
			m.visibleAt = now.Add(vis)
			msgs = append(msgs, map[string]any{
				"MessageId": m.id, "ReceiptHandle": m.receipt, "Body": m.body, "MD5OfBody": md5Hex(m.body),
				"Attributes": map[string]string{
					"ApproximateReceiveCount": strconv.Itoa(m.receives),
					"SentTimestamp":           strconv.FormatInt(m.sent.UnixMilli(), 10),
				},
			})
		}
		f.mu.Unlock()
		if len(msgs) > 0 || !time.Now().Before(deadline) {
			return map[string]any{"Messages": msgs}, nil
		}
		select {
		case <-r.Context().Done():
			return map[string]any{}, nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// find returns the message whose latest receipt is handle.
func (f *fakeSQS) find(u, handle string) (int, *sqsError) {
	q, e := f.queue(u)
	if e != nil {
		return 0, e
	}
	for i, m := range q {
		if handle != "" && m.receipt == handle {
			return i, nil
		}
	}
	return 0, &sqsError{http.StatusBadRequest, "ReceiptHandleIsInvalid", "The input receipt handle is invalid: " + handle}
}

func (f *fakeSQS) delete(u, handle string) (any, *sqsError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, e := f.find(u, handle)
	if e != nil {
		return nil, e
	}
	f.queues[u] = append(f.queues[u][:i:i], f.queues[u][i+1:]...)
	return map[string]any{}, nil
}

func (f *fakeSQS) changeVisibility(u, handle string, visibility *int) (any, *sqsError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, e := f.find(u, handle)
	if e != nil {
		return nil, e
	}
	m := f.queues[u][i]
	if !m.visibleAt.After(time.Now()) {
		return nil, &sqsError{http.StatusBadRequest, "MessageNotInflight", "The message is not in flight"}
	}
	if visibility == nil {
		return nil, &sqsError{http.StatusBadRequest, "MissingParameter", "VisibilityTimeout is required"}
	}
	m.visibleAt = time.Now().Add(time.Duration(*visibility) * time.Second)
	return map[string]any{}, nil
}

// counts returns how many messages the queue holds, and how many of them
// are visible now.
func (f *fakeSQS) counts(u string) (total, visible int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for _, m := range f.queues[u] {
		total++
		if !m.visibleAt.After(now) {
			visible++
		}
	}
	return total, visible
}

// calls returns how many times each action was called.
func (f *fakeSQS) calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, a := range f.actions {
		out[a]++
	}
	return out
}
