package graphemu

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sync"
)

// copyBufs keeps the buffers uploads are hashed through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// serveUpload is uploadFile: one multipart part named "file", streamed
// through SHA-256. The file is recorded only when the whole message
// arrived (closing boundary seen, exactly Content-Length bytes read).
func (s *Server) serveUpload(x *exchange, rt *graphRoute) {
	if !checkQuery(x) {
		return
	}
	first := s.lockActive(x, rt, "files")
	if first == nil {
		return
	}
	instID := first.instID
	s.mu.Unlock()
	if s.refuseLate(x, instID, "files") {
		return
	}
	if x.r.ContentLength < 0 {
		x.graphError(http.StatusLengthRequired, "LengthRequired", "uploadFile needs a Content-Length header: chunked request bodies are not accepted.")
		return
	}
	ct := x.r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		x.graphError(http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf(
			"Content-Type '%s' is not supported: uploadFile takes multipart/form-data with a boundary.", ct))
		return
	}
	bad := func(format string, args ...any) {
		x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf(format, args...))
	}
	mr := multipart.NewReader(x.r.Body, params["boundary"])
	part, err := mr.NextPart()
	if err != nil {
		bad("The request body is not a complete multipart/form-data message: %v.", err)
		return
	}
	disp, dparams, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	switch {
	case err != nil || disp != "form-data":
		bad("The multipart part needs 'Content-Disposition: form-data; name=\"file\"; filename=\"…\"', got '%s'.", part.Header.Get("Content-Disposition"))
		return
	case dparams["name"] != "file":
		bad("The multipart part must be named 'file', got '%s'.", dparams["name"])
		return
	case dparams["filename"] == "":
		bad("The 'file' part must carry a filename.")
		return
	}
	name := dparams["filename"]

	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	size, err := io.CopyBuffer(h, part, *buf)
	copyBufs.Put(buf)
	if err != nil {
		bad("The request body ended before the file '%s' was complete (%d bytes read): %v.", name, size, err)
		return
	}
	if _, err := mr.NextPart(); err == nil {
		bad("uploadFile takes exactly one part: a second part follows 'file'.")
		return
	} else if !errors.Is(err, io.EOF) {
		bad("The multipart message has no closing boundary after the file '%s': %v.", name, err)
		return
	}
	// The epilogue, if any: the body must still arrive whole.
	if _, err := io.Copy(io.Discard, x.r.Body); err != nil {
		bad("The request body ended early: %v.", err)
		return
	}
	if x.body.n != x.r.ContentLength {
		bad("The request body has %d bytes, Content-Length says %d.", x.body.n, x.r.ContentLength)
		return
	}

	// Completed, deleted or expired while the file was arriving?
	sess := s.lockActive(x, rt, "files")
	if sess == nil {
		return
	}
	sess.files = append(sess.files, FileView{
		ID:         newGUID(),
		Name:       name,
		Size:       size,
		SHA256:     hex.EncodeToString(h.Sum(nil)),
		UploadedAt: s.nowLocked(),
	})
	sess.totalBytes += size
	out := s.renderLocked(x, rt, sess, true)
	s.mu.Unlock()
	x.writeJSON(http.StatusOK, out)
}
