package bench

import (
	"net/http"
	"sort"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
)

// Counter is an http.RoundTripper that counts the requests it carries by
// S3 operation (the SDK puts the operation's name in each request's
// context), so that a handler's S3 traffic can be counted without a proxy.
// Every attempt counts, retries included.
type Counter struct {
	Base http.RoundTripper
	// Classify, when set, names what a request is about (the object, a
	// claim, a session record, a report); it is added to the operation's
	// name, so that the counts say which requests a file costs.
	Classify func(*http.Request) string

	mu     sync.Mutex
	counts map[string]int
}

// RoundTrip implements http.RoundTripper.
func (c *Counter) RoundTrip(r *http.Request) (*http.Response, error) {
	op := awsmiddleware.GetOperationName(r.Context())
	if op == "" {
		op = r.Method + " (no operation)"
	}
	if c.Classify != nil {
		if what := c.Classify(r); what != "" {
			op += " " + what
		}
	}
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[op]++
	c.mu.Unlock()
	return c.Base.RoundTrip(r)
}

// Reset forgets the counts.
func (c *Counter) Reset() {
	c.mu.Lock()
	c.counts = nil
	c.mu.Unlock()
}

// Counts returns the counts so far, by operation.
func (c *Counter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// OpCount is one operation's count.
type OpCount struct {
	Op    string
	Count int
}

// Sorted returns counts as a list, the most frequent first, then by name.
func Sorted(counts map[string]int) []OpCount {
	out := make([]OpCount, 0, len(counts))
	for op, n := range counts {
		out = append(out, OpCount{op, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Op < out[j].Op
	})
	return out
}
