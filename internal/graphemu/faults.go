package graphemu

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Fault is a failure injected on demand. It applies to the next Times
// requests of operation Op (every operation when Op is "") that Match
// accepts (all when Match is nil). What happens, in order:
//   - Delay: wait that long first (stopping early if the client leaves or
//     the server closes; a request abandoned during the delay is not
//     processed at all);
//   - Status: answer that status with Retry-After (when set) and the error
//     body of the service (Graph's, or Entra's for "token");
//   - ResetAfterBytes: read that many bytes of the request body, then reset
//     the connection (TCP RST) without an answer;
//   - DropResponse: process the request normally, then reset the
//     connection instead of answering: the change happened but the client
//     cannot know (a lost response);
//   - none of the three: process normally after the delay.
type Fault struct {
	// Op is the operation: token, discovery, create, get, list, patch,
	// delete, upload; "" for any.
	Op         string
	Status     int
	RetryAfter string // Retry-After header value, e.g. "2" or an HTTP date
	// Code and Message override the error code and message of Status.
	Code, Message   string
	Delay           time.Duration
	ResetAfterBytes int64
	DropResponse    bool
	// Times is how many requests the fault applies to: 0 means 1, a
	// negative value means every request until ClearFaults.
	Times int
	// Match narrows the requests the fault applies to.
	Match func(*http.Request) bool
}

type faultState struct {
	f    Fault
	left int // < 0: unlimited
}

// Inject adds a fault. Faults apply in the order they were injected; a
// request gets at most one.
// It panics on an unknown Op, which would otherwise never match.
func (s *Server) Inject(f Fault) {
	switch f.Op {
	case "", "token", "discovery", "create", "get", "list", "patch", "delete", "upload":
	case OpListInstances, OpGetInstance, OpGetInstanceDefinition, OpListDefinitions,
		OpGetDefinition, OpListDefinitionInstances, OpListResources:
	default:
		panic("graphemu: Inject: unknown Fault.Op " + strconv.Quote(f.Op))
	}
	left := f.Times
	if left == 0 {
		left = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &faultState{f: f, left: left})
	s.mu.Unlock()
}

// ClearFaults removes every pending fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// PendingFaults reports how many injected faults have not been used up.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// takeFault returns the first pending fault matching x and uses it once.
func (s *Server) takeFault(x *exchange) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, fs := range s.faults {
		if fs.f.Op != "" && fs.f.Op != x.op {
			continue
		}
		if fs.f.Match != nil && !fs.f.Match(x.r) {
			continue
		}
		if fs.left > 0 {
			fs.left--
			if fs.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return fs.f, true
	}
	return Fault{}, false
}

// applyFault applies the matching fault, if any; it reports whether the
// request has been fully dealt with.
func (s *Server) applyFault(x *exchange) bool {
	f, ok := s.takeFault(x)
	if !ok {
		return false
	}
	if f.Delay > 0 {
		x.fault = "delay"
	}
	if f.Delay > 0 && x.op != "upload" && x.r.ContentLength >= 0 && x.r.ContentLength <= 1<<20 {
		// Take in a small body before waiting: net/http notices a client
		// that leaves (and cancels the context) only once the body is read.
		b, _ := io.ReadAll(x.r.Body)
		x.r.Body = io.NopCloser(bytes.NewReader(b))
	}
	if f.Delay > 0 && !s.sleep(x.r.Context(), f.Delay) {
		// The client left, or the server is closing: send nothing at
		// all (returning would send an empty 200).
		x.reset()
		return true
	}
	switch {
	case f.Status != 0:
		x.fault = "status"
		// Take in a small body first, as a front end does, so that the
		// client reliably reads the answer instead of a failed write.
		io.Copy(io.Discard, io.LimitReader(x.r.Body, 8<<20))
		if f.RetryAfter != "" {
			x.w.Header().Set("Retry-After", f.RetryAfter)
		}
		code, msg := graphCode(f.Status)
		if x.op == "token" {
			code, msg = entraFaultCode(f.Status)
		}
		if f.Code != "" {
			code = f.Code
		}
		if f.Message != "" {
			msg = f.Message
		}
		if x.op == "token" {
			x.entraError(f.Status, code, msg)
		} else {
			x.graphError(f.Status, code, msg)
		}
		return true
	case f.ResetAfterBytes > 0:
		x.fault = "reset"
		io.CopyN(io.Discard, x.r.Body, f.ResetAfterBytes)
		x.reset()
		return true
	case f.DropResponse:
		x.fault = "drop"
		real := x.w
		x.w = &recorder{ResponseWriter: &discardWriter{h: real.Header().Clone()}}
		s.process(x)
		x.w = real
		x.reset()
		return true
	}
	return false
}

// process handles x as if no fault applied.
func (s *Server) process(x *exchange) {
	kind, rt := s.classify(x.r)
	switch {
	case kind.handler != nil:
		kind.handler(x)
	case rt != nil:
		s.serveGraph(x, rt)
	default:
		x.graphError(kind.status, kind.code, kind.msg)
	}
}

// reset hard-closes the connection: SO_LINGER 0 makes the close send a TCP
// RST, so the client sees "connection reset by peer", not a clean EOF.
func (x *exchange) reset() {
	x.w.status = 0
	conn, _, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		// Cannot hijack (should not happen on HTTP/1.1): abort the
		// response the only other way net/http offers.
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	raw.Close()
}

// discardWriter swallows a response that a DropResponse fault loses.
type discardWriter struct {
	h http.Header
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
