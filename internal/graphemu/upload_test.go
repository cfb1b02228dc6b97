package graphemu

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestUploadFileRules(t *testing.T) {
	const b = "XyZ"
	part := func(disposition, content string) string {
		return "--" + b + "\r\nContent-Disposition: " + disposition + "\r\nContent-Type: text/csv\r\n\r\n" + content + "\r\n"
	}
	good := multipartBody(b, "file", "badge-access.csv", "a,b\n1,2\n")
	tests := []struct {
		name, ct, body string
		status         int
		msg            string
		recorded       string // the file name recorded, "" for none
	}{
		{"one file part is recorded", "multipart/form-data; boundary=" + b, good, 200, "", "badge-access.csv"},
		{"an empty file is recorded", "multipart/form-data; boundary=" + b, multipartBody(b, "file", "empty.csv", ""), 200, "", "empty.csv"},
		{"the filename is kept as sent", "multipart/form-data; boundary=" + b, multipartBody(b, "file", "dir/x.csv", "a\n"), 200, "", "dir/x.csv"},
		{"a preamble and an epilogue are tolerated", "multipart/form-data; boundary=" + b, "preamble\r\n" + good + "epilogue", 200, "", "badge-access.csv"},
		{"a JSON body is refused", "application/json", `{}`, 415, "multipart/form-data", ""},
		{"multipart without a boundary is refused", "multipart/form-data", good, 415, "boundary", ""},
		{"a part not named file is refused", "multipart/form-data; boundary=" + b, multipartBody(b, "data", "a.csv", "x"), 400, "named 'file'", ""},
		{"a part without filename is refused", "multipart/form-data; boundary=" + b, part(`form-data; name="file"`, "x") + "--" + b + "--\r\n", 400, "filename", ""},
		{"an attachment disposition is refused", "multipart/form-data; boundary=" + b, part(`attachment; name="file"; filename="a.csv"`, "x") + "--" + b + "--\r\n", 400, "form-data", ""},
		{"two parts are refused", "multipart/form-data; boundary=" + b, part(`form-data; name="file"; filename="a.csv"`, "x") + part(`form-data; name="file"; filename="b.csv"`, "y") + "--" + b + "--\r\n", 400, "exactly one part", ""},
		{"a missing closing boundary is refused", "multipart/form-data; boundary=" + b, part(`form-data; name="file"; filename="a.csv"`, "x"), 400, "", ""},
		{"a body without any boundary is refused", "multipart/form-data; boundary=" + b, "just bytes", 400, "multipart", ""},
		{"a different boundary is refused", "multipart/form-data; boundary=other", good, 400, "multipart", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startT(t, Options{})
			tok := s.IssueToken()
			id := create(t, s, tok, "v1.0", instID)
			r := send(t, s, http.MethodPost, collection(s, "v1.0", catalogID, resourceID)+"/"+id+"/uploadFile", tok, tc.ct, strings.NewReader(tc.body))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			v, _ := s.Session(id)
			if tc.recorded == "" {
				if _, msg := r.graphErr(t); !strings.Contains(msg, tc.msg) {
					t.Errorf("message %q does not mention %q", msg, tc.msg)
				}
				if len(v.Files) != 0 {
					t.Errorf("a refused upload recorded %+v", v.Files)
				}
				return
			}
			if len(v.Files) != 1 || v.Files[0].Name != tc.recorded {
				t.Fatalf("recorded %+v, want one file %q", v.Files, tc.recorded)
			}
			files := r.json(t)["files"].([]any)
			if len(files) != 1 || files[0].(map[string]any)["name"] != tc.recorded {
				t.Errorf("answer files = %v", files)
			}
		})
	}
}

func TestUploadAnswersTheWholeSessionGrownByOne(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	id := create(t, s, tok, "beta", instID)
	var total int
	for i, content := range []string{"a\n", "bb\n", "ccc\n"} {
		total += len(content)
		r := upload(t, s, tok, "beta", id, fmt.Sprintf("f%d.csv", i), content)
		if r.status != 200 {
			t.Fatalf("upload %d: %d %s", i, r.status, r.body)
		}
		m := r.json(t)
		stats := m["stats"].(map[string]any)
		files := m["files"].([]any)
		if stats["filesUploaded"] != float64(i+1) || stats["totalBytesUploaded"] != float64(total) || len(files) != i+1 {
			t.Fatalf("after upload %d: stats %v, %d files", i, stats, len(files))
		}
		f := files[i].(map[string]any)
		if f["name"] != fmt.Sprintf("f%d.csv", i) || f["size"] != float64(len(content)) || !isGUID(f["id"].(string)) || f["uploadedDateTime"] == "" {
			t.Errorf("file %d = %v", i, f)
		}
		if m["id"] != id || m["status"] != "active" {
			t.Errorf("answer is not the session: %v", m)
		}
	}
}

func TestUploadRefusals(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	id := create(t, s, tok, "v1.0", instID)
	u := collection(s, "v1.0", catalogID, resourceID) + "/" + id + "/uploadFile"

	t.Run("a chunked body is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, u, io.NopCloser(strings.NewReader(multipartBody("B", "file", "a.csv", "x"))))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusLengthRequired {
			t.Errorf("status %d, want 411", res.StatusCode)
		}
	})
	t.Run("an unknown session is not found", func(t *testing.T) {
		r := upload(t, s, tok, "v1.0", newGUID(), "a.csv", "x")
		if code, _ := r.graphErr(t); r.status != 404 || code != "ResourceNotFound" {
			t.Errorf("%d %s", r.status, code)
		}
	})
	if v, _ := s.Session(id); len(v.Files) != 0 {
		t.Errorf("recorded %+v", v.Files)
	}
}

// A body cut short (the client died, the connection dropped) records
// nothing, even when the part's content arrived in full.
func TestTruncatedUploadRecordsNothing(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	id := create(t, s, tok, "v1.0", instID)
	path := strings.TrimPrefix(collection(s, "v1.0", catalogID, resourceID), s.URL()) + "/" + id + "/uploadFile"
	body := multipartBody("B", "file", "a.csv", strings.Repeat("row\n", 1000))
	for _, tc := range []struct {
		name string
		cut  int // bytes of the body sent before the connection closes
	}{
		{"cut inside the content", len(body) / 2},
		{"cut before the closing boundary", len(body) - len("--B--\r\n") - 2},
		{"cut right before the last byte", len(body) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.ResetJournal()
			conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL(), "https://"), &tls.Config{RootCAs: s.CertPool()})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n%s",
				path, strings.TrimPrefix(s.URL(), "https://"), tok, len(body), body[:tc.cut])
			conn.Close()
			waitFor(t, func() bool { return s.Count("upload", 0) == 1 })
			if v, _ := s.Session(id); len(v.Files) != 0 {
				t.Fatalf("a truncated upload recorded %+v", v.Files)
			}
			if j := s.Journal()[0]; j.Status == 200 || j.BodyBytes != int64(tc.cut) {
				t.Errorf("journal entry %+v", j)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pattern is a reader of n generated bytes that allocates nothing.
type pattern struct{ n, off int64 }

// alphabet repeats a-z; pattern copies windows of it.
var alphabet = []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz", 64<<10/26+2))

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	start := p.off % 26
	n := copy(b, alphabet[start:start+min(int64(len(b)), 64<<10)])
	p.off += int64(n)
	return n, nil
}

// Uploads are streamed: a large file goes through with a small, bounded
// amount of memory, and its size and hash are exact.
func TestLargeUploadIsStreamedNotBuffered(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB")
	}
	size := int64(64 << 20)
	if raceEnabled {
		size = 8 << 20
	}
	s := startT(t, Options{})
	tok := s.IssueToken()
	id := create(t, s, tok, "v1.0", instID)

	head := "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\nContent-Type: application/octet-stream\r\n\r\n"
	tail := "\r\n--B--\r\n"
	h := sha256.New()
	body := io.MultiReader(strings.NewReader(head), io.TeeReader(&pattern{n: size}, h), strings.NewReader(tail))
	req, _ := http.NewRequest(http.MethodPost, collection(s, "v1.0", catalogID, resourceID)+"/"+id+"/uploadFile", body)
	req.ContentLength = int64(len(head)+len(tail)) + size
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=B")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
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
	res, err := s.Client().Do(req)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if grown := int64(peak.Load()) - int64(base.HeapInuse); grown > 16<<20 {
		t.Errorf("heap grew by %d MiB during a %d MiB upload", grown>>20, size>>20)
	}
	v, _ := s.Session(id)
	if len(v.Files) != 1 || v.Files[0].Size != size || v.Files[0].SHA256 != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("recorded %+v", v.Files)
	}
}
