package graph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/byodrop/byodrop/internal/review"
)

// uploadClockSkew is how far the service's clock may lag ours when an
// ambiguous upload attempt is checked for in the session's file list.
const uploadClockSkew = 5 * time.Minute

// SizeError reports that the file's reader produced a different number of
// bytes than announced: the object changed, or the size given was wrong.
// It is not retried.
type SizeError struct {
	Name      string
	Want, Got int64
	Longer    bool // the reader had more bytes than Want
}

func (e *SizeError) Error() string {
	if e.Longer {
		return fmt.Sprintf("graph upload %s: the file is longer than the %d bytes announced", e.Name, e.Want)
	}
	return fmt.Sprintf("graph upload %s: the file ended after %d of the %d bytes announced", e.Name, e.Got, e.Want)
}

// Kind is Internal: the file is not known to be bad; the event is kept for
// replay once the cause is understood.
func (e *SizeError) Kind() review.Kind { return review.Internal }

// UploadFile streams one file into session id (POST …/uploadFile, one
// multipart/form-data part named "file" with name as its filename) and
// returns the session as the service reports it afterwards.
//
// open is called for every attempt and must return the file from its start;
// the file must have exactly size bytes. The body is the multipart framing
// around the reader, with an exact Content-Length, never buffered. If the
// reader fails (an error other than io.EOF), the attempt is aborted and that
// error decides: a kind that will never succeed (review.Invalid, from the
// CSV validator) is returned at once; any other is retried with a new open.
// If an attempt may have delivered the whole file before the connection was
// lost, the session is read before sending it again, so that a file is not
// uploaded twice.
func (c *Client) UploadFile(ctx context.Context, t review.Target, id, name string, size int64, open func(ctx context.Context) (io.ReadCloser, error)) (*Session, error) {
	u, err := c.sessionURL(t, id, "/uploadFile")
	if err != nil {
		return nil, err
	}
	if err := checkFileName(name); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, review.Errorf(review.Invalid, "graph upload %s: negative size %d", name, size)
	}
	if open == nil {
		return nil, fmt.Errorf("graph upload %s: no reader", name)
	}
	up, err := newUpload(c, t, id, name, size, open)
	if err != nil {
		return nil, err
	}
	data, _, err := c.do(ctx, &call{op: OpUpload, method: http.MethodPost, url: u, upload: up})
	if err != nil {
		var done *alreadyUploaded
		if errors.As(err, &done) {
			return done.session, nil
		}
		return nil, err
	}
	return parseResponse(OpUpload, data)
}

// checkFileName refuses names that cannot be sent faithfully in a
// Content-Disposition header.
func checkFileName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return review.Errorf(review.Invalid, "graph upload: empty file name")
	case !utf8.ValidString(name):
		return review.Errorf(review.Invalid, "graph upload: file name is not valid UTF-8: %q", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return review.Errorf(review.Invalid, "graph upload: file name contains a control character: %q", name)
	}
	return nil
}

// upload is what every attempt of one UploadFile shares.
type upload struct {
	c              *Client
	t              review.Target
	id, name       string
	size           int64
	openFn         func(ctx context.Context) (io.ReadCloser, error)
	prefix, suffix string
	contentType    string
	ambiguous      bool // the last attempt may have delivered the file
	timedOut       bool // ... and ended in a timeout: Graph may still be storing it
}

func newUpload(c *Client, t review.Target, id, name string, size int64, open func(ctx context.Context) (io.ReadCloser, error)) (*upload, error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("graph upload %s: boundary: %w", name, err)
	}
	boundary := "byodrop-" + hex.EncodeToString(rnd[:])
	// RFC 7578 §4.2 forbids filename* in multipart/form-data; the name goes
	// as UTF-8 in filename, escaped exactly as Go's mime/multipart does
	// (backslash and quote escaped, CR and LF percent-encoded).
	prefix := "--" + boundary + "\r\n" +
		"Content-Disposition: " + multipart.FileContentDisposition("file", name) + "\r\n" +
		"Content-Type: application/octet-stream\r\n" +
		"\r\n"
	return &upload{
		c: c, t: t, id: id, name: name, size: size, openFn: open,
		prefix:      prefix,
		suffix:      "\r\n--" + boundary + "--\r\n",
		contentType: "multipart/form-data; boundary=" + boundary,
	}, nil
}

// open starts one attempt's body.
func (u *upload) open(ctx context.Context) (*uploadAttempt, error) {
	rc, err := u.openFn(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the file: %w", err)
	}
	if rc == nil {
		return nil, errors.New("opening the file: no reader")
	}
	a := &uploadAttempt{
		file:        &fileReader{rc: rc, name: u.name, want: u.size},
		length:      int64(len(u.prefix)) + u.size + int64(len(u.suffix)),
		contentType: u.contentType,
	}
	a.r = io.MultiReader(strings.NewReader(u.prefix), a.file, strings.NewReader(u.suffix))
	return a, nil
}

// classify turns a failure of the file's reader (or of open) into what
// doWith expects: a *stopError when retrying cannot help, else a plain
// error that is retried.
func (u *upload) classify(err error) error {
	var se *SizeError
	if errors.As(err, &se) {
		return &stopError{err}
	}
	wrapped := fmt.Errorf("graph upload %s: %w", u.name, err)
	if !review.IsRetryable(err) {
		return &stopError{wrapped}
	}
	return wrapped
}

// alreadyThere reads the session and returns it if it holds a file with
// this upload's name and size, uploaded since the call started.
func (u *upload) alreadyThere(ctx context.Context, started time.Time) *Session {
	s, err := u.c.Get(ctx, u.t, u.id)
	if err != nil {
		return nil
	}
	for _, f := range s.Files {
		if f.Name == u.name && f.Size == u.size &&
			(f.UploadedDateTime.IsZero() || !f.UploadedDateTime.Before(started.Add(-uploadClockSkew))) {
			return s
		}
	}
	return nil
}

// uploadAttempt is the request body of one attempt: prefix, the file,
// suffix. It counts what the transport read.
type uploadAttempt struct {
	r           io.Reader
	file        *fileReader
	length      int64
	contentType string

	mu   sync.Mutex
	read int64
}

func (a *uploadAttempt) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.mu.Lock()
	a.read += int64(n)
	a.mu.Unlock()
	return n, err
}

// sentAll reports whether the transport took the whole body.
func (a *uploadAttempt) sentAll() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.read == a.length && a.file.ok()
}

// bodyErr returns the file reader's failure, if any.
func (a *uploadAttempt) bodyErr() error { return a.file.failure() }

func (a *uploadAttempt) close() { a.file.close() }

// fileReader passes the file through, checks its length, and records the
// first failure, because http.Client.Do may wrap or replace the error a
// request body returns.
type fileReader struct {
	rc   io.ReadCloser
	name string
	want int64

	mu     sync.Mutex
	got    int64
	err    error
	eof    bool
	closed sync.Once
}

func (f *fileReader) Read(p []byte) (int, error) {
	f.mu.Lock()
	got, err, eof := f.got, f.err, f.eof
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if eof {
		return 0, io.EOF
	}
	if got == f.want {
		// All announced bytes are read; the reader must now say EOF. This
		// is also where a validating reader reports a bad last record.
		return 0, f.expectEOF()
	}
	if rem := f.want - got; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, rerr := f.rc.Read(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got += int64(n)
	switch {
	case rerr == io.EOF && f.got < f.want:
		f.err = &SizeError{Name: f.name, Want: f.want, Got: f.got}
		return n, f.err
	case rerr == io.EOF:
		f.eof = true
		return n, io.EOF
	case rerr != nil:
		f.err = rerr
		return n, rerr
	}
	return n, nil
}

// expectEOF reads past the announced end: it must get io.EOF.
func (f *fileReader) expectEOF() error {
	var one [1]byte
	for range 100 { // tolerate a few empty reads
		n, err := f.rc.Read(one[:])
		f.mu.Lock()
		switch {
		case n > 0:
			f.err = &SizeError{Name: f.name, Want: f.want, Got: f.want + int64(n), Longer: true}
		case err == io.EOF:
			f.eof = true
			f.mu.Unlock()
			return io.EOF
		case err != nil:
			f.err = err
		}
		if f.err != nil {
			e := f.err
			f.mu.Unlock()
			return e
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = io.ErrNoProgress
	return f.err
}

func (f *fileReader) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fileReader) ok() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eof && f.err == nil
}

func (f *fileReader) close() { f.closed.Do(func() { f.rc.Close() }) }
