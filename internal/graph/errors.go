package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/byodrop/byodrop/internal/review"
)

// Operation names, as used in Error.Op, OnRetry and the emulator journal.
const (
	OpCreate = "create"
	OpGet    = "get"
	OpList   = "list"
	OpPatch  = "patch"
	OpDelete = "delete"
	OpUpload = "upload"
)

// ErrListUnsupported is returned by List for a profile that documents no
// list operation (beta-2025).
var ErrListUnsupported = review.Errorf(review.Invalid, "graph: this API profile cannot list upload sessions")

// ErrDeleteUnsupported is returned by Delete for a profile that documents no
// delete operation (beta-2025).
var ErrDeleteUnsupported = review.Errorf(review.Invalid, "graph: this API profile cannot delete upload sessions")

// ErrOutcomeUnknown says that a request may have been carried out by the
// service although no answer said so (a lost connection after it was sent,
// a 500, 502 or 504), and that it was not sent again.
var ErrOutcomeUnknown = review.Errorf(review.Internal, "graph: the request may have been carried out, but its answer was lost")

// mayHaveLanded reports whether a failed attempt may still have been
// carried out by the service: a transport failure after the connection was
// made, or a server error that does not say the request was turned away
// (429 and 503 do; so does a refused or unresolved connection).
func mayHaveLanded(err error) bool {
	var ge *Error
	if !errors.As(err, &ge) {
		return false
	}
	switch ge.StatusCode {
	case 0:
		var oe *net.OpError
		if errors.As(ge.Err, &oe) && oe.Op == "dial" {
			return false
		}
		var dns *net.DNSError
		return !errors.As(ge.Err, &dns) && !errors.Is(ge.Err, syscall.ECONNREFUSED)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return false
	default:
		return ge.StatusCode >= 500
	}
}

// Error is a failed Graph call: an HTTP error status with the Graph error
// body's code and message, or a transport failure (StatusCode 0, Err set).
type Error struct {
	StatusCode int
	Code       string
	Message    string
	RequestID  string
	// Op is the operation: create, get, list, patch, delete, upload.
	Op string
	// Err is the transport error, when there was no response.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("graph ")
	b.WriteString(e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later: 408, 429,
// 5xx except 501, and transport failures that mean a lost connection or a
// timeout.
func (e *Error) Retryable() bool {
	if e.StatusCode == 0 {
		return isTransientTransport(e.Err)
	}
	return retryableStatus(e.StatusCode)
}

// Kind classifies e for the caller: throttling, server errors and lost
// connections are Transient; 409 is Conflict; 404 NotFound; 410, or a 4xx
// that says the session no longer accepts changes on an upload, a patch or
// a delete, is Gone; 401 and 403 are Internal (a credential or permission problem of the
// deployment, never the dropped file's fault: the event is kept for replay);
// any other 4xx is Invalid.
func (e *Error) Kind() review.Kind {
	switch {
	case e.StatusCode == 0:
		if isTransientTransport(e.Err) {
			return review.Transient
		}
		return review.Internal
	case retryableStatus(e.StatusCode):
		return review.Transient
	case e.StatusCode == http.StatusGone:
		return review.Gone
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		return review.Internal
	case e.StatusCode == http.StatusNotFound:
		return review.NotFound
	case (e.Op == OpUpload || e.Op == OpPatch || e.Op == OpDelete) && e.StatusCode >= 400 && e.StatusCode < 500 && e.saysNotActive():
		return review.Gone
	case e.StatusCode == http.StatusConflict:
		return review.Conflict
	case e.StatusCode >= 400 && e.StatusCode < 500:
		return review.Invalid
	default:
		// 501, 505 and other non-retryable 5xx: a deployment problem (a
		// profile the service does not implement), not the file's.
		return review.Internal
	}
}

// saysNotActive recognises the service's refusal of a session that is
// complete or expired. Nothing is documented, so it looks for the words.
func (e *Error) saysNotActive() bool {
	s := strings.ToLower(e.Code + " " + e.Message)
	for _, w := range []string{"not active", "notactive", "inactive", "no longer active", "expired", "already complete", "is complete", "completed", "isuploaddone"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func retryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return true
	case code == http.StatusNotImplemented, code == http.StatusHTTPVersionNotSupported:
		return false
	default:
		return code >= 500 && code <= 599
	}
}

// isTransientTransport reports whether a transport error means the
// connection was lost or timed out (worth a new attempt), as opposed to a
// configuration problem such as an untrusted certificate.
func isTransientTransport(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && (dns.IsTimeout || dns.IsTemporary) {
		return true
	}
	// Some lost-connection errors of net/http and its HTTP/2 transport are
	// not typed; their text is stable.
	msg := err.Error()
	for _, s := range []string{"connection reset", "broken pipe", "server closed idle connection", "transport connection broken", "GOAWAY", "stream error", "unexpected EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// errorFromResponse builds an *Error from a non-2xx response whose body (at
// most maxErrorBody bytes) has been read into body.
func errorFromResponse(op string, resp *http.Response, body []byte) *Error {
	e := &Error{Op: op, StatusCode: resp.StatusCode}
	var env struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil {
		e.Code, e.Message, e.RequestID = env.Error.Code, env.Error.Message, env.Error.InnerError.RequestID
	} else if t := strings.TrimSpace(string(body)); t != "" && len(t) <= 200 && !strings.ContainsAny(t, "<>") {
		// A plain-text body (a proxy, a load balancer) still helps.
		e.Message = t
	}
	if e.RequestID == "" {
		e.RequestID = firstNonEmpty(resp.Header.Get("request-id"), resp.Header.Get("client-request-id"))
	}
	return e
}

// IsRefusal reports whether err is Graph's answer that it will not do what
// was asked, whatever its wording: a 4xx other than an expired token, a
// timeout or throttling. What a refusal of a session change means is then
// best learnt by reading the session.
func IsRefusal(err error) bool {
	var ge *Error
	if !errors.As(err, &ge) {
		return false
	}
	switch ge.StatusCode {
	case http.StatusUnauthorized, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return ge.StatusCode >= 400 && ge.StatusCode < 500
}
