package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

// openString opens s anew for each attempt.
func openString(s string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

// received is one file as a test server parsed it from the multipart body.
type received struct {
	disposition, partType string
	name                  string
	data                  []byte
	contentLength         int64
	err                   error // the body was cut or malformed
}

// uploadServer parses every uploadFile request's body strictly and answers
// with a session that lists what it received.
type uploadServer struct {
	mu    sync.Mutex
	files []received
	// before, if set, runs first and may answer by itself (returning true).
	before func(n int, w http.ResponseWriter, r *http.Request) bool
	n      int
}

func (u *uploadServer) handle(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.n++
	n := u.n
	u.mu.Unlock()
	if u.before != nil && u.before(n, w, r) {
		return
	}
	if r.Method == http.MethodGet {
		writeJSON(w, 200, u.session())
		return
	}
	rec := readUpload(r)
	if rec.err != nil {
		u.mu.Lock()
		u.files = append(u.files, rec)
		u.mu.Unlock()
		graphError(w, 400, "BadRequest", rec.err.Error())
		return
	}
	u.mu.Lock()
	u.files = append(u.files, rec)
	u.mu.Unlock()
	writeJSON(w, 200, u.session())
}

func readUpload(r *http.Request) received {
	rec := received{contentLength: r.ContentLength}
	mr, err := r.MultipartReader()
	if err != nil {
		rec.err = err
		return rec
	}
	p, err := mr.NextPart()
	if err != nil {
		rec.err = err
		return rec
	}
	rec.disposition, rec.partType = p.Header.Get("Content-Disposition"), p.Header.Get("Content-Type")
	if _, params, err := mime.ParseMediaType(rec.disposition); err == nil {
		rec.name = params["filename"]
	}
	if rec.data, err = io.ReadAll(p); err != nil {
		rec.err = err
		return rec
	}
	if _, err := mr.NextPart(); err != io.EOF {
		rec.err = fmt.Errorf("after the file part: %v", err)
	}
	return rec
}

// complete returns the files received whole.
func (u *uploadServer) complete() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []received
	for _, f := range u.files {
		if f.err == nil {
			out = append(out, f)
		}
	}
	return out
}

func (u *uploadServer) session() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var files []string
	var total int64
	for i, f := range u.files {
		if f.err == nil {
			files = append(files, fmt.Sprintf(`{"id":"f%d","name":%q,"size":%d,"uploadedDateTime":%q}`,
				i, f.name, len(f.data), time.Now().UTC().Format(time.RFC3339Nano)))
			total += int64(len(f.data))
		}
	}
	return fmt.Sprintf(`{"id":%q,"status":"active","stats":{"filesUploaded":%d,"totalBytesUploaded":%d},"files":[%s]}`,
		sessionID, len(files), total, strings.Join(files, ","))
}

func newUploadEnv(t *testing.T) (*testEnv, *uploadServer) {
	us := &uploadServer{}
	return newEnv(t, "v1.0", false, us.handle), us
}

// opener counts opens and serves data through wrap (for fault injection).
type opener struct {
	opens atomic.Int32
	data  []byte
	wrap  func(attempt int, r io.Reader) io.Reader
}

func (o *opener) open(ctx context.Context) (io.ReadCloser, error) {
	n := int(o.opens.Add(1))
	var r io.Reader = bytes.NewReader(o.data)
	if o.wrap != nil {
		r = o.wrap(n, r)
	}
	return io.NopCloser(r), nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestUploadStreamsTheFileByteIdenticalWithAnExactLength(t *testing.T) {
	e, us := newUploadEnv(t)
	data := randomBytes(3<<20 + 17)
	// Binary data that contains boundary-like lines must pass untouched.
	copy(data[1000:], "\r\n--byodrop-\r\n--\r\n")
	o := &opener{data: data, wrap: func(_ int, r io.Reader) io.Reader { return iotest.HalfReader(r) }}
	s, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "badge-access.csv", int64(len(data)), o.open)
	if err != nil {
		t.Fatal(err)
	}
	got := us.complete()
	if len(got) != 1 {
		t.Fatalf("%d files received", len(got))
	}
	f := got[0]
	if sha256.Sum256(f.data) != sha256.Sum256(data) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(f.data), len(data))
	}
	if f.name != "badge-access.csv" || f.partType != "application/octet-stream" ||
		f.disposition != `form-data; name="file"; filename="badge-access.csv"` {
		t.Errorf("part headers %q / %q", f.disposition, f.partType)
	}
	// Content-Length is the framing plus the file, exactly.
	boundary := strings.TrimPrefix(e.requests()[0].ContentType, "multipart/form-data; boundary=")
	framing := len("--"+boundary+"\r\n"+"Content-Disposition: "+f.disposition+"\r\n"+"Content-Type: application/octet-stream\r\n\r\n") +
		len("\r\n--"+boundary+"--\r\n")
	if f.contentLength != int64(framing+len(data)) {
		t.Errorf("Content-Length %d, want %d", f.contentLength, framing+len(data))
	}
	if s.Stats.FilesUploaded != 1 || s.Files[0].Size != int64(len(data)) || o.opens.Load() != 1 {
		t.Errorf("session %+v, opens %d", s, o.opens.Load())
	}
}

func TestUploadStreamsWithoutBufferingTheFile(t *testing.T) {
	// The reader blocks after its first chunk until the server has seen it:
	// a client that buffered the file before sending would never finish.
	seen := make(chan struct{})
	first := bytes.Repeat([]byte("a,b\n"), 1024)
	rest := bytes.Repeat([]byte("c,d\n"), 1024)
	e := newEnv(t, "v1.0", false, func(w http.ResponseWriter, r *http.Request) {
		mr, _ := r.MultipartReader()
		p, _ := mr.NextPart()
		buf := make([]byte, len(first))
		if _, err := io.ReadFull(p, buf); err != nil || !bytes.Equal(buf, first) {
			t.Errorf("first chunk: %v", err)
		}
		close(seen)
		io.Copy(io.Discard, p)
		writeJSON(w, 200, activeSession)
	})
	open := func(ctx context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			pw.Write(first)
			select {
			case <-seen:
			case <-time.After(5 * time.Second):
				pw.CloseWithError(errors.New("the server never saw the first chunk: the body is buffered"))
				return
			}
			pw.Write(rest)
			pw.Close()
		}()
		return pr, nil
	}
	if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", int64(len(first)+len(rest)), open); err != nil {
		t.Fatal(err)
	}
}

func TestUploadFileNamesAreEscapedLikeMimeMultipart(t *testing.T) {
	names := []string{`plain.csv`, `with space.csv`, `quote"d.csv`, `back\slash.csv`, `ünïcödé-€.csv`, `a;b=c.csv`}
	for _, name := range names {
		e, us := newUploadEnv(t)
		if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, name, 3, openString("x,y")); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := us.complete()
		if len(got) != 1 {
			t.Fatalf("%s: %d files", name, len(got))
		}
		if want := multipart.FileContentDisposition("file", name); got[0].disposition != want {
			t.Errorf("%s: Content-Disposition %q, want %q", name, got[0].disposition, want)
		}
		if got[0].name != name {
			t.Errorf("%s: server read the name as %q", name, got[0].name)
		}
	}
}

// failAfter passes n bytes of r, then fails with err.
type failAfter struct {
	r   io.Reader
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestAnInvalidBodyErrorStopsAtOnceWithoutRetry(t *testing.T) {
	e, us := newUploadEnv(t)
	bad := review.Errorf(review.Invalid, "line 7, column PrincipalId: not a GUID")
	data := randomBytes(256 << 10)
	o := &opener{data: data, wrap: func(_ int, r io.Reader) io.Reader { return &failAfter{r: r, n: 100 << 10, err: bad} }}
	_, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", int64(len(data)), o.open)
	if !errors.Is(err, bad) || review.KindOf(err) != review.Invalid {
		t.Fatalf("error %v (kind %v), want the reader's invalid error", err, review.KindOf(err))
	}
	if !strings.Contains(err.Error(), "a.csv") {
		t.Errorf("error %q does not name the file", err)
	}
	if o.opens.Load() != 1 || len(e.waits) != 0 || len(us.complete()) != 0 {
		t.Fatalf("opens %d, waits %v, complete files %d: want 1, none, 0", o.opens.Load(), e.waits, len(us.complete()))
	}
}

func TestAnInvalidErrorAtTheEndOfTheFileStillAbortsTheUpload(t *testing.T) {
	// A validating reader reports a bad last record instead of io.EOF, after
	// all the bytes: the closing boundary must not be sent.
	e, us := newUploadEnv(t)
	data := []byte("h1,h2\nbad\n")
	bad := review.Errorf(review.Invalid, "line 2: wrong number of fields")
	o := &opener{data: data, wrap: func(_ int, r io.Reader) io.Reader { return &failAfter{r: r, n: len(data), err: bad} }}
	_, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", int64(len(data)), o.open)
	if !errors.Is(err, bad) {
		t.Fatalf("error %v", err)
	}
	time.Sleep(50 * time.Millisecond) // let the server finish with the cut body
	if len(us.complete()) != 0 {
		t.Fatal("the server received a complete file")
	}
}

func TestATransientBodyErrorReopensTheFile(t *testing.T) {
	e, us := newUploadEnv(t)
	data := randomBytes(512 << 10)
	o := &opener{data: data, wrap: func(attempt int, r io.Reader) io.Reader {
		if attempt == 1 {
			return &failAfter{r: r, n: 200 << 10, err: errors.New("s3: read tcp: connection reset by peer")}
		}
		return r
	}}
	s, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", int64(len(data)), o.open)
	if err != nil {
		t.Fatal(err)
	}
	got := us.complete()
	if o.opens.Load() != 2 || len(got) != 1 || !bytes.Equal(got[0].data, data) || s.Stats.FilesUploaded != 1 {
		t.Fatalf("opens %d, complete files %d", o.opens.Load(), len(got))
	}
	if fmt.Sprint(e.events) != "[upload#1]" {
		t.Errorf("OnRetry %v", e.events)
	}
}

func TestOpenFailuresFollowTheirKind(t *testing.T) {
	e, _ := newUploadEnv(t)
	var opens int
	transientThenOK := func(ctx context.Context) (io.ReadCloser, error) {
		opens++
		if opens == 1 {
			return nil, review.Errorf(review.Transient, "s3: SlowDown")
		}
		return io.NopCloser(strings.NewReader("x")), nil
	}
	if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", 1, transientThenOK); err != nil || opens != 2 {
		t.Fatalf("err %v, opens %d", err, opens)
	}
	opens = 0
	gone := func(ctx context.Context) (io.ReadCloser, error) {
		opens++
		return nil, review.Errorf(review.NotFound, "s3: NoSuchKey")
	}
	if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", 1, gone); review.KindOf(err) != review.NotFound || opens != 1 {
		t.Fatalf("err %v, opens %d", err, opens)
	}
}

func TestASizeMismatchAbortsWithoutRetry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   string
		size   int64
		longer bool
	}{
		{"shorter", "abc", 5, false},
		{"longer", "abcdefg", 5, true},
		{"empty announced, data sent", "a", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, us := newUploadEnv(t)
			o := &opener{data: []byte(tc.data)}
			_, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", tc.size, o.open)
			var se *SizeError
			if !errors.As(err, &se) || se.Longer != tc.longer || se.Want != tc.size {
				t.Fatalf("error %v", err)
			}
			if o.opens.Load() != 1 || len(us.complete()) != 0 {
				t.Fatalf("opens %d, complete files %d", o.opens.Load(), len(us.complete()))
			}
		})
	}
}

func TestAnEmptyFileIsSent(t *testing.T) {
	e, us := newUploadEnv(t)
	if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "empty.csv", 0, openString("")); err != nil {
		t.Fatal(err)
	}
	if got := us.complete(); len(got) != 1 || len(got[0].data) != 0 {
		t.Fatalf("files %+v", got)
	}
}

func TestAConnectionResetMidBodyRetriesWithAFreshOpen(t *testing.T) {
	e, us := newUploadEnv(t)
	us.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n != 1 {
			return false
		}
		io.CopyN(io.Discard, r.Body, 64<<10) // part of the body, then a reset
		hijackClose(t, w)
		return true
	}
	// Larger than what loopback socket buffers absorb, so that the reset
	// really cuts the client's writing.
	const size = 32 << 20
	var opens atomic.Int32
	open := func(context.Context) (io.ReadCloser, error) {
		opens.Add(1)
		return io.NopCloser(&pattern{n: size}), nil
	}
	if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", size, open); err != nil {
		t.Fatal(err)
	}
	got := us.complete()
	want, _ := io.ReadAll(&pattern{n: size})
	if opens.Load() != 2 || len(got) != 1 || !bytes.Equal(got[0].data, want) {
		t.Fatalf("opens %d, complete files %d", opens.Load(), len(got))
	}
	// The body was cut, so the file cannot be in the session: no check.
	for _, r := range e.requests() {
		if r.Method == http.MethodGet {
			t.Fatal("a session read after a cut body")
		}
	}
}

func TestALostAnswerAfterTheWholeFileIsCheckedBeforeSendingAgain(t *testing.T) {
	e, us := newUploadEnv(t)
	us.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n != 1 {
			return false
		}
		rec := readUpload(r) // stored...
		us.mu.Lock()
		us.files = append(us.files, rec)
		us.mu.Unlock()
		hijackClose(t, w) // ...but the answer is lost
		return true
	}
	o := &opener{data: []byte("h1,h2\n1,2\n")}
	s, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", int64(len(o.data)), o.open)
	if err != nil {
		t.Fatal(err)
	}
	if len(us.complete()) != 1 || o.opens.Load() != 1 || s.Stats.FilesUploaded != 1 {
		t.Fatalf("complete files %d, opens %d, session %+v: the file was sent twice", len(us.complete()), o.opens.Load(), s)
	}
	reqs := e.requests()
	if len(reqs) != 2 || reqs[1].Method != http.MethodGet || reqs[1].RawQuery != "$expand=files" {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestALostAnswerWithoutTheFileInTheSessionSendsAgain(t *testing.T) {
	e, us := newUploadEnv(t)
	us.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n != 1 {
			return false
		}
		io.Copy(io.Discard, r.Body) // read whole, not stored
		hijackClose(t, w)
		return true
	}
	o := &opener{data: []byte("h1,h2\n1,2\n")}
	if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", int64(len(o.data)), o.open); err != nil {
		t.Fatal(err)
	}
	if len(us.complete()) != 1 || o.opens.Load() != 2 {
		t.Fatalf("complete files %d, opens %d", len(us.complete()), o.opens.Load())
	}
}

func TestA401DuringUploadReopensWithANewToken(t *testing.T) {
	e, us := newUploadEnv(t)
	us.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == "Bearer tok-0" {
			graphError(w, 401, "InvalidAuthenticationToken", "expired")
			return true
		}
		return false
	}
	data := randomBytes(2 << 20)
	o := &opener{data: data}
	if _, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", int64(len(data)), o.open); err != nil {
		t.Fatal(err)
	}
	if got := us.complete(); len(got) != 1 || !bytes.Equal(got[0].data, data) || o.opens.Load() != 2 || e.tokens.refreshes != 1 {
		t.Fatalf("complete %d, opens %d, refreshes %d", len(got), o.opens.Load(), e.tokens.refreshes)
	}
}

func TestUploadToAClosedSessionIsGone(t *testing.T) {
	e, us := newUploadEnv(t)
	us.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		io.Copy(io.Discard, r.Body)
		graphError(w, 400, "BadRequest", "Upload session is not active.")
		return true
	}
	_, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "a.csv", 1, openString("x"))
	if review.KindOf(err) != review.Gone || len(e.requests()) != 1 {
		t.Fatalf("error %v (kind %v), %d requests", err, review.KindOf(err), len(e.requests()))
	}
}

// pattern produces n bytes on the fly, without holding them.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		b[i] = byte('a' + (p.off+int64(i))%26)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func TestUploadOf512MiBStaysSmallInMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 512 MiB")
	}
	const size = 512 << 20
	var got atomic.Int64
	e := newEnv(t, "v1.0", false, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		writeJSON(w, 200, activeSession)
	})
	open := func(context.Context) (io.ReadCloser, error) { return io.NopCloser(&pattern{n: size}), nil }

	// Sample the heap while the upload runs; compare with before.
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	_, err := e.c.UploadFile(context.Background(), testTarget, sessionID, "big.csv", size, open)
	close(stop)
	<-sampled
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got.Load() < size {
		t.Fatalf("server read %d bytes", got.Load())
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("512 MiB upload: %.2f MiB allocated in total (client and server), peak heap-in-use growth %.2f MiB",
		float64(allocated)/(1<<20), float64(growth)/(1<<20))
	const limit = 16 << 20
	if allocated > limit {
		t.Errorf("allocated %d bytes during the upload, want under %d", allocated, limit)
	}
	if growth > limit {
		t.Errorf("heap in use grew by %d bytes, want under %d", growth, limit)
	}
}
