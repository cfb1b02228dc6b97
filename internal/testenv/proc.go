package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxLogBytes bounds the output kept per process; a long bench run logs a lot
// and only the recent part helps when something goes wrong.
const maxLogBytes = 4 << 20

// logBuffer collects a child's stdout and stderr, keeps the tail, and wakes
// waiters on every write so callers can wait for a line to appear.
type logBuffer struct {
	mu      sync.Mutex
	buf     []byte
	tee     io.Writer
	changed chan struct{}
}

func newLogBuffer(tee io.Writer) *logBuffer {
	return &logBuffer{tee: tee, changed: make(chan struct{})}
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > maxLogBytes {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-maxLogBytes/2:]...)
	}
	close(b.changed)
	b.changed = make(chan struct{})
	tee := b.tee
	b.mu.Unlock()
	if tee != nil {
		_, _ = tee.Write(p) // a failing tee must not break the child's pipe
	}
	return len(p), nil
}

// snapshot returns the current text and a channel closed on the next write.
func (b *logBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf), b.changed
}

func (b *logBuffer) String() string {
	s, _ := b.snapshot()
	return s
}

// process is a started child in its own process group.
type process struct {
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

func startProcess(cmd *exec.Cmd, tee io.Writer) (*process, error) {
	logs := newLogBuffer(tee)
	cmd.Stdout = logs
	cmd.Stderr = logs
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &process{cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the whole group (RIE's runtime, qemu and the
// bootstrap are its children), then SIGKILL if it lingers.
func (p *process) stop() {
	if p.exited() {
		return
	}
	signalGroup(p.cmd, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		signalGroup(p.cmd, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM after the leader exited.
	signalGroup(p.cmd, syscall.SIGKILL)
}

// waitHTTP polls url until any HTTP response arrives, the process exits, or
// the context ends. Any status counts: versitygw answers 403 to an anonymous
// request and RIE 404 outside its invoke path, and both mean "listening".
func (p *process) waitHTTP(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before answering (%v): %s", p.cmd.Path, p.err, tail(p.logs.String(), 2000))
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer at %s: %w; output: %s", p.cmd.Path, url, ctx.Err(), tail(p.logs.String(), 2000))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// lostPortRace reports whether a child's output says another listener took
// the port picked for it between FreePort and its own bind.
func lostPortRace(output string) bool {
	return strings.Contains(output, "address already in use")
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
