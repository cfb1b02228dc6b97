package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RIEOptions configure StartRIE.
type RIEOptions struct {
	// Bootstrap is the function's executable (required).
	Bootstrap string
	// Arch is the bootstrap's GOARCH. When it differs from the host's and is
	// arm64, the bootstrap runs under qemu-aarch64-static, called explicitly:
	// containers and CI machines often have no binfmt_misc registration.
	Arch string
	// Env holds the function's settings (KEY=VALUE). The function sees only
	// these plus PATH, HOME, TZ and the Lambda variables, like in AWS, not
	// the caller's whole environment.
	Env []string
	// Timeout is AWS_LAMBDA_FUNCTION_TIMEOUT (default 60s, whole seconds).
	Timeout time.Duration
	// FunctionName is AWS_LAMBDA_FUNCTION_NAME (default "function").
	FunctionName string
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 256).
	MemoryMB int
	// Binary is the emulator; empty means Tool("aws-lambda-rie").
	Binary string
	// LogLevel is the emulator's own log level (default "warn"); the
	// function's output and the REPORT lines are kept whatever it is.
	LogLevel string
	// Output, if set, also receives everything the emulator and the function
	// print (it is always kept for Logs).
	Output io.Writer
	// StartTimeout bounds the wait for the emulator to listen (default 15s).
	StartTimeout time.Duration
}

// RIE is a running aws-lambda-rie with one function. The emulator starts the
// bootstrap on the first invocation (that is the cold start it reports as
// Init Duration) and serves one invocation at a time; start several for
// concurrency.
//
// Command line, for reference (from the emulator's source): every argument
// after the options is the bootstrap command, and when there are two or more
// the last is also passed as the handler name:
//
//	aws-lambda-rie --log-level warn \
//	  --runtime-interface-emulator-address 127.0.0.1:PORT \
//	  --runtime-api-address 127.0.0.1:PORT2 \
//	  [/usr/bin/qemu-aarch64-static] /path/to/bootstrap
//
// Both addresses must be set: the defaults (0.0.0.0:8080 and 127.0.0.1:9001)
// would collide between two emulators and listen beyond loopback.
type RIE struct {
	// Endpoint is the invoke URL (POST the event to it).
	Endpoint string

	proc      *process
	mu        sync.Mutex // one invocation at a time, as Lambda gives one execution environment
	client    *http.Client
	closeOnce sync.Once
}

// InvokePath is the emulator's invoke route.
const InvokePath = "/2015-03-31/functions/function/invocations"

// InvokeResult is one invocation's outcome.
type InvokeResult struct {
	RequestID  string
	StatusCode int    // HTTP status from the emulator: 200 even for function errors
	Payload    []byte // the function's response, or its error document
	// FunctionError is true when the function returned an error, panicked,
	// exited, or timed out. ErrorType and ErrorMessage come from the error
	// document the runtime reported.
	FunctionError bool
	ErrorType     string
	ErrorMessage  string
	// ColdStart is true for the invocation that started the bootstrap; its
	// REPORT line carries InitDuration. The emulator starts the process
	// without waiting for the runtime to ask for work, so InitDuration is
	// near zero and the runtime's own start-up shows in this invocation's
	// Duration and Elapsed instead. Duration is the emulator's measure of
	// the invocation. All three come from the REPORT line (zero if it did
	// not appear).
	ColdStart    bool
	InitDuration time.Duration
	Duration     time.Duration
	// Elapsed is the round trip as the caller saw it.
	Elapsed time.Duration
}

// StartRIE starts the emulator for opts.Bootstrap on free loopback ports and
// waits until it accepts invocations.
func StartRIE(ctx context.Context, opts RIEOptions) (*RIE, error) {
	if opts.Bootstrap == "" {
		return nil, fmt.Errorf("start runtime emulator: no bootstrap given")
	}
	bootstrap, err := filepath.Abs(opts.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("start runtime emulator: %w", err)
	}
	if _, err := os.Stat(bootstrap); err != nil {
		return nil, fmt.Errorf("start runtime emulator: bootstrap: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.FunctionName == "" {
		opts.FunctionName = "function"
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 256
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 15 * time.Second
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = Tool("aws-lambda-rie"); err != nil {
			return nil, fmt.Errorf("start runtime emulator: %w", err)
		}
	}
	command := []string{bootstrap}
	if opts.Arch != "" && opts.Arch != runtime.GOARCH {
		if opts.Arch != "arm64" {
			return nil, fmt.Errorf("start runtime emulator: cannot run a %s bootstrap on %s", opts.Arch, runtime.GOARCH)
		}
		qemu, err := Tool("qemu-aarch64-static")
		if err != nil {
			return nil, fmt.Errorf("start runtime emulator for an arm64 bootstrap: %w", err)
		}
		command = []string{qemu, bootstrap}
	}
	timeoutSecs := int((opts.Timeout + time.Second - 1) / time.Second)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Dir(bootstrap),
		"TZ=:UTC",
		"LAMBDA_TASK_ROOT=" + filepath.Dir(bootstrap),
		"AWS_LAMBDA_FUNCTION_NAME=" + opts.FunctionName,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(opts.MemoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(timeoutSecs),
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
	}
	for _, kv := range opts.Env {
		// This variable switches the emulator into its managed-instances mode,
		// a different program; never let a caller's setting do that.
		if strings.HasPrefix(kv, "AWS_LAMBDA_MAX_CONCURRENCY=") {
			continue
		}
		env = append(env, kv)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports := [2]int{}
		for i := range ports {
			if ports[i], err = FreePort(); err != nil {
				return nil, fmt.Errorf("start runtime emulator: %w", err)
			}
		}
		if ports[0] == ports[1] {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(ports[0])
		args := append([]string{
			"--log-level", opts.LogLevel,
			"--runtime-interface-emulator-address", addr,
			"--runtime-api-address", "127.0.0.1:" + strconv.Itoa(ports[1]),
		}, command...)
		cmd := exec.Command(bin, args...)
		cmd.Dir = filepath.Dir(bootstrap)
		cmd.Env = env
		proc, err := startProcess(cmd, opts.Output)
		if err != nil {
			return nil, fmt.Errorf("start runtime emulator: %w", err)
		}
		r := &RIE{
			Endpoint: "http://" + addr + InvokePath,
			proc:     proc,
			// No client timeout: the function's own timeout bounds an
			// invocation, and the caller's context bounds the wait.
			client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		}
		wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
		err = proc.waitHTTP(wctx, "http://"+addr+"/")
		cancel()
		if err == nil {
			return r, nil
		}
		proc.stop()
		lastErr = err
		if !lostPortRace(proc.logs.String()) {
			break
		}
	}
	return nil, fmt.Errorf("start runtime emulator: %w", lastErr)
}

// Invoke sends one event and waits for the function's answer. Function errors
// are not Go errors: they are in the result. An error means the invocation
// could not be made or the emulator died.
func (r *RIE) Invoke(ctx context.Context, payload []byte) (InvokeResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc.exited() {
		return InvokeResult{}, fmt.Errorf("invoke: runtime emulator has exited (%v): %s", r.proc.err, tail(r.Logs(), 2000))
	}
	id := newRequestID()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Endpoint, bytes.NewReader(payload))
	if err != nil {
		return InvokeResult{}, fmt.Errorf("invoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amzn-RequestId", id)
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return InvokeResult{}, fmt.Errorf("invoke %s: %w; emulator output: %s", id, err, tail(r.Logs(), 2000))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return InvokeResult{}, fmt.Errorf("invoke %s: read response: %w", id, err)
	}
	res := InvokeResult{RequestID: id, StatusCode: resp.StatusCode, Payload: body, Elapsed: time.Since(start)}
	classify(&res)
	r.readReport(ctx, &res)
	return res, nil
}

// classify fills the error fields. The emulator answers 200 for a function
// error with the runtime's error document ({"errorMessage","errorType"}) as
// the body, a timeout as plain text, and 502 when the runtime exited.
func classify(res *InvokeResult) {
	var doc struct {
		ErrorType    *string `json:"errorType"`
		ErrorMessage *string `json:"errorMessage"`
	}
	isDoc := json.Unmarshal(res.Payload, &doc) == nil && doc.ErrorMessage != nil && doc.ErrorType != nil
	switch {
	case isDoc:
		res.FunctionError, res.ErrorType, res.ErrorMessage = true, *doc.ErrorType, *doc.ErrorMessage
	case res.StatusCode == http.StatusOK && bytes.HasPrefix(res.Payload, []byte("Task timed out after")):
		// The name AWS reports for a timeout.
		res.FunctionError, res.ErrorType, res.ErrorMessage = true, "Sandbox.Timedout", string(res.Payload)
	case res.StatusCode != http.StatusOK:
		res.FunctionError, res.ErrorType = true, "Runtime.Unknown"
		res.ErrorMessage = fmt.Sprintf("emulator answered HTTP %d: %s", res.StatusCode, tail(string(res.Payload), 500))
	}
}

var reportLine = regexp.MustCompile(`REPORT RequestId: (\S+)\t(?:Init Duration: ([0-9.]+) ms\t)?Duration: ([0-9.]+) ms`)

// readReport waits briefly for the emulator's REPORT line of this request: it
// is printed before the response is written, but reaches the log pipe on its
// own schedule.
func (r *RIE) readReport(ctx context.Context, res *InvokeResult) {
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	for {
		logs, changed := r.proc.logs.snapshot()
		for _, m := range reportLine.FindAllStringSubmatch(logs, -1) {
			if m[1] != res.RequestID {
				continue
			}
			if m[2] != "" {
				res.ColdStart, res.InitDuration = true, msDuration(m[2])
			}
			res.Duration = msDuration(m[3])
			return
		}
		select {
		case <-changed:
		case <-r.proc.done:
			return
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

func msDuration(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// KillFunction kills the function's process (the bootstrap, or qemu
// running it) with SIGKILL, as a crash or an out-of-memory kill does, while
// the emulator stays up: the invocation in flight ends with an error, and
// the next one starts the bootstrap again. It returns how many processes
// it killed (0 where /proc is not available). It does not take the
// invocation lock, so that it can strike mid-invocation.
func (r *RIE) KillFunction() int { return r.proc.killChildren() }

// Logs returns what the emulator and the function printed so far.
func (r *RIE) Logs() string { return r.proc.logs.String() }

// Close stops the emulator and the function with it.
func (r *RIE) Close() error {
	r.closeOnce.Do(r.proc.stop)
	return nil
}
