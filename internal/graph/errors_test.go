package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/byodrop/byodrop/internal/review"
)

func TestErrorKindAndRetryableByStatus(t *testing.T) {
	tests := []struct {
		op        string
		status    int
		code, msg string
		kind      review.Kind
		retryable bool
	}{
		{OpCreate, 408, "", "", review.Transient, true},
		{OpCreate, 429, "TooManyRequests", "", review.Transient, true},
		{OpUpload, 500, "", "", review.Transient, true},
		{OpUpload, 502, "", "", review.Transient, true},
		{OpUpload, 503, "", "", review.Transient, true},
		{OpUpload, 504, "", "", review.Transient, true},
		{OpUpload, 501, "", "", review.Internal, false},
		{OpCreate, 409, "Conflict", "An upload session already exists", review.Conflict, false},
		{OpGet, 404, "ResourceNotFound", "", review.NotFound, false},
		{OpUpload, 410, "", "", review.Gone, false},
		{OpUpload, 400, "BadRequest", "The upload session is not active.", review.Gone, false},
		{OpPatch, 409, "", "Session has expired", review.Gone, false},
		{OpPatch, 400, "UploadSessionCompleted", "", review.Gone, false},
		{OpDelete, 400, "sessionNotActive", "Upload session is not active (status: complete)", review.Gone, false},
		{OpCreate, 400, "BadRequest", "Session has expired", review.Invalid, false}, // only upload/patch/delete
		{OpUpload, 400, "BadRequest", "Invalid multipart body", review.Invalid, false},
		{OpUpload, 413, "", "", review.Invalid, false},
		{OpGet, 401, "InvalidAuthenticationToken", "", review.Internal, false},
		{OpCreate, 403, "Authorization_RequestDenied", "", review.Internal, false},
	}
	for _, tc := range tests {
		e := &Error{Op: tc.op, StatusCode: tc.status, Code: tc.code, Message: tc.msg}
		if k := e.Kind(); k != tc.kind {
			t.Errorf("%s %d %q %q: kind %v, want %v", tc.op, tc.status, tc.code, tc.msg, k, tc.kind)
		}
		if r := e.Retryable(); r != tc.retryable {
			t.Errorf("%s %d: retryable %v, want %v", tc.op, tc.status, r, tc.retryable)
		}
		// The kind is seen through wrapping, as the handlers will see it.
		if k := review.KindOf(fmt.Errorf("uploading x: %w", e)); k != tc.kind {
			t.Errorf("%s %d: KindOf(wrapped) = %v, want %v", tc.op, tc.status, k, tc.kind)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTransportErrorsThatMeanALostConnectionAreTransient(t *testing.T) {
	transient := []error{
		io.ErrUnexpectedEOF,
		io.EOF,
		&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
		&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)},
		&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
		timeoutErr{},
		context.DeadlineExceeded,
		errors.New("net/http: HTTP/1.x transport connection broken: write tcp: broken pipe"),
		&net.DNSError{Err: "timeout", IsTimeout: true},
	}
	for _, err := range transient {
		e := &Error{Op: OpUpload, Err: fmt.Errorf("post: %w", err)}
		if !e.Retryable() || e.Kind() != review.Transient {
			t.Errorf("%v: retryable %v kind %v, want transient", err, e.Retryable(), e.Kind())
		}
	}
	permanent := []error{
		context.Canceled,
		errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"),
		&net.DNSError{Err: "no such host", IsNotFound: true},
	}
	for _, err := range permanent {
		e := &Error{Op: OpUpload, Err: err}
		if e.Retryable() || e.Kind() != review.Internal {
			t.Errorf("%v: retryable %v kind %v, want internal, not retried", err, e.Retryable(), e.Kind())
		}
	}
}

func TestErrorFromResponseReadsTheGraphErrorBodyAndRequestID(t *testing.T) {
	body := `{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"request-id":"rid-1","date":"2026-11-28T10:00:00"}}}`
	e := errorFromResponse(OpUpload, &http.Response{StatusCode: 429, Header: http.Header{"Request-Id": {"hdr"}}}, []byte(body))
	if e.Code != "TooManyRequests" || e.Message != "Please retry again later." || e.RequestID != "rid-1" || e.StatusCode != 429 {
		t.Fatalf("got %+v", e)
	}
	want := "graph upload: 429 Too Many Requests: TooManyRequests: Please retry again later. (request-id rid-1)"
	if e.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", e.Error(), want)
	}

	// Without a body id, the header's.
	e = errorFromResponse(OpGet, &http.Response{StatusCode: 503, Header: http.Header{"Request-Id": {"hdr-2"}}}, []byte("upstream overloaded"))
	if e.RequestID != "hdr-2" || e.Message != "upstream overloaded" {
		t.Fatalf("got %+v", e)
	}
	// An HTML page from a proxy is not repeated.
	e = errorFromResponse(OpGet, &http.Response{StatusCode: 502, Header: http.Header{}}, []byte("<html>bad gateway</html>"))
	if e.Message != "" {
		t.Fatalf("message %q", e.Message)
	}
}
