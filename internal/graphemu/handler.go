package graphemu

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// exchange is one request being handled: what the journal needs, and the
// identifiers every answer carries.
type exchange struct {
	s         *Server
	w         *recorder
	r         *http.Request
	body      *countingReader
	requestID string
	clientReq string
	op        string
	profile   string
	code      string
	fault     string
	at        time.Time
}

// ServeHTTP routes a request to the token endpoint, a discovery document or
// the Graph session API, applying injected faults first.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		w.Header().Set("request-id", newGUID())
		http.Error(w, "graphemu is closing", http.StatusServiceUnavailable)
		return
	}
	defer s.active.Done()
	start := time.Now()
	x := &exchange{
		s:         s,
		w:         &recorder{ResponseWriter: w},
		r:         r,
		body:      &countingReader{r: r.Body},
		requestID: newGUID(),
		clientReq: r.Header.Get("client-request-id"),
		at:        s.Now(),
	}
	if x.clientReq == "" {
		x.clientReq = x.requestID
	}
	r.Body = x.body
	h := x.w.Header()
	h.Set("request-id", x.requestID)
	h.Set("client-request-id", x.clientReq)

	kind, rt := s.classify(r)
	x.op = kind.op
	if rt != nil {
		x.profile = rt.profile.name
	}
	if !s.applyFault(x) {
		s.process(x)
	}
	s.record(Request{
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.RawQuery,
		Op:        x.op,
		Profile:   x.profile,
		Status:    x.w.status,
		Code:      x.code,
		Fault:     x.fault,
		BodyBytes: x.body.n,
		RequestID: x.requestID,
		At:        x.at,
		Duration:  time.Since(start),
	})
}

// routeKind is the outcome of classifying a request: an op and either a
// handler (token, discovery), a Graph route, or a refusal.
type routeKind struct {
	op      string
	handler func(*exchange)
	status  int
	code    string
	msg     string
}

func (s *Server) classify(r *http.Request) (routeKind, *graphRoute) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(segs) > 0 && (segs[0] == "v1.0" || segs[0] == "beta") {
		if k, ok := s.classifyReviews(segs); ok {
			return k, nil
		}
		rt, refusal := parseGraphPath(segs)
		if rt == nil {
			return routeKind{status: http.StatusNotFound, code: "BadRequest", msg: refusal}, nil
		}
		return routeKind{op: rt.op(r.Method)}, rt
	}
	if k, ok := s.classifyEntra(segs); ok {
		return k, nil
	}
	msg := "Invalid version."
	if len(segs) > 0 && segs[0] != "" {
		msg = "Invalid version: " + segs[0]
	}
	return routeKind{status: http.StatusNotFound, code: "BadRequest", msg: msg}, nil
}

// recorder remembers the status sent; Unwrap lets http.ResponseController
// reach the connection for injected resets.
type recorder struct {
	http.ResponseWriter
	status int
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingReader counts the request body bytes read, for the journal.
type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// graphContentType is what Graph sends with its JSON; clients must accept
// the parameters.
const graphContentType = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"

// writeJSON answers status with v as JSON.
func (x *exchange) writeJSON(status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(x.w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := x.w.Header()
	h.Set("Content-Type", graphContentType)
	h.Set("OData-Version", "4.0")
	x.w.WriteHeader(status)
	x.w.Write(buf.Bytes())
}

// graphErrorBody is Graph's error envelope.
type graphErrorBody struct {
	Error graphErrorDetail `json:"error"`
}

type graphErrorDetail struct {
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	InnerError graphInnerError `json:"innerError"`
}

type graphInnerError struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

// graphError answers a refusal the way Graph does.
func (x *exchange) graphError(status int, code, msg string) {
	x.code = code
	if status == http.StatusUnauthorized {
		x.w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+x.s.url+`/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	}
	x.writeJSON(status, graphErrorBody{Error: graphErrorDetail{
		Code:    code,
		Message: msg,
		InnerError: graphInnerError{
			Date:            x.at.UTC().Format("2006-01-02T15:04:05"),
			RequestID:       x.requestID,
			ClientRequestID: x.clientReq,
		},
	}})
}

// graphCode is the error code Graph uses for a status when nothing more
// specific applies (injected faults).
func graphCode(status int) (code, msg string) {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest", "The request is invalid."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token validation failure."
	case http.StatusForbidden:
		return "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	case http.StatusNotFound:
		return "ResourceNotFound", "Resource not found."
	case http.StatusConflict:
		return "Conflict", "The request conflicts with the current state of the resource."
	case http.StatusTooManyRequests:
		return "TooManyRequests", "Too many requests, retry after the time given in Retry-After."
	case http.StatusInternalServerError:
		return "InternalServerError", "An internal server error occurred."
	case http.StatusBadGateway:
		return "BadGateway", "Bad gateway."
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable", "The service is temporarily unavailable, retry later."
	case http.StatusGatewayTimeout:
		return "GatewayTimeout", "The gateway timed out."
	default:
		return "UnknownError", http.StatusText(status)
	}
}
