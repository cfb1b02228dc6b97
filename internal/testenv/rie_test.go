package testenv_test

import (
	"context"
	"debug/elf"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/testenv"
)

const echoPkg = "./internal/testenv/testdata/echo"

var echoBuilds sync.Map // goarch -> *echoBuild

type echoBuild struct {
	once sync.Once
	path string
	err  error
}

// echoBootstrap builds the echo function once per architecture per test run.
func echoBootstrap(t *testing.T, goarch string) string {
	t.Helper()
	v, _ := echoBuilds.LoadOrStore(goarch, &echoBuild{})
	b := v.(*echoBuild)
	b.once.Do(func() {
		dir, err := tempDirOutsideTest()
		if err != nil {
			b.err = err
			return
		}
		b.path, b.err = testenv.BuildBootstrap(context.Background(), echoPkg, "linux", goarch, dir)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func startEcho(t *testing.T, opts testenv.RIEOptions) *testenv.RIE {
	t.Helper()
	opts.Binary = testenv.RequireTool(t, "aws-lambda-rie")
	if opts.Bootstrap == "" {
		opts.Bootstrap = echoBootstrap(t, runtime.GOARCH)
	}
	r, err := testenv.StartRIE(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if t.Failed() {
			t.Logf("emulator output:\n%s", r.Logs())
		}
	})
	return r
}

func invoke(t *testing.T, r *testenv.RIE, payload string) testenv.InvokeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := r.Invoke(ctx, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRIEInvokeReturnsPayloadAndReportsColdStart(t *testing.T) {
	r := startEcho(t, testenv.RIEOptions{})
	first := invoke(t, r, `{"hello":"world"}`)
	if first.FunctionError || string(first.Payload) != `{"hello":"world"}` {
		t.Fatalf("first invoke = %+v (payload %s), want the payload back", first, first.Payload)
	}
	if !first.ColdStart || first.Duration <= 0 || first.Elapsed < first.Duration {
		t.Errorf("first invoke: cold %v, duration %v, elapsed %v; want a cold start and its duration from the REPORT line", first.ColdStart, first.Duration, first.Elapsed)
	}
	second := invoke(t, r, `[1,2,3]`)
	if second.FunctionError || string(second.Payload) != `[1,2,3]` {
		t.Fatalf("warm invoke = %+v (payload %s)", second, second.Payload)
	}
	if second.ColdStart || second.Duration <= 0 {
		t.Errorf("warm invoke: cold %v, duration %v; want a warm start (the bootstrap is reused) with its REPORT line", second.ColdStart, second.Duration)
	}
	if second.RequestID == first.RequestID || !strings.Contains(r.Logs(), "REPORT RequestId: "+second.RequestID) {
		t.Errorf("request ids %s, %s: want distinct ids with their REPORT lines in the logs", first.RequestID, second.RequestID)
	}
}

func TestRIEReportsFunctionErrors(t *testing.T) {
	tests := []struct {
		name, payload, wantType, wantMessage string
	}{
		{"returned error", `{"fail":"bad input"}`, "echoError", "bad input"},
		{"panic", `{"panic":true}`, "", "echo asked to panic"},
		{"process exit", `{"exit":true}`, "Runtime.ExitError", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startEcho(t, testenv.RIEOptions{})
			res := invoke(t, r, tt.payload)
			t.Logf("HTTP %d, type %q, message %q", res.StatusCode, res.ErrorType, res.ErrorMessage)
			if !res.FunctionError {
				t.Fatalf("result %+v (payload %s): want a function error", res, res.Payload)
			}
			if tt.wantType != "" && res.ErrorType != tt.wantType {
				t.Errorf("error type %q, want %q (payload %s)", res.ErrorType, tt.wantType, res.Payload)
			}
			if !strings.Contains(res.ErrorMessage, tt.wantMessage) {
				t.Errorf("error message %q, want it to contain %q", res.ErrorMessage, tt.wantMessage)
			}
		})
	}
}

func TestRIETimeoutIsAFunctionError(t *testing.T) {
	r := startEcho(t, testenv.RIEOptions{Timeout: time.Second})
	res := invoke(t, r, `{"sleep":"5s"}`)
	if !res.FunctionError || res.ErrorType != "Sandbox.Timedout" {
		t.Fatalf("result %+v (payload %s): want a Sandbox.Timedout function error", res, res.Payload)
	}
}

func TestRIEFunctionSeesOnlyItsOwnEnvironment(t *testing.T) {
	t.Setenv("BYODROP_TEST_LEAK", "from-the-test-process")
	r := startEcho(t, testenv.RIEOptions{Env: []string{"BYODROP_TEST_SETTING=given"}, FunctionName: "IngestFunction", Timeout: 900 * time.Second})
	for name, want := range map[string]string{
		"BYODROP_TEST_SETTING":        "given",
		"BYODROP_TEST_LEAK":           "",
		"AWS_LAMBDA_FUNCTION_NAME":    "IngestFunction",
		"AWS_LAMBDA_FUNCTION_TIMEOUT": "900",
	} {
		res := invoke(t, r, `{"env":"`+name+`"}`)
		var got struct{ Env string }
		if err := json.Unmarshal(res.Payload, &got); err != nil || got.Env != want {
			t.Errorf("function saw %s=%q (payload %s), want %q", name, got.Env, res.Payload, want)
		}
	}
}

func TestRIESerializesConcurrentInvokes(t *testing.T) {
	// The emulator refuses a second invocation while one runs; Invoke waits
	// its turn instead, so callers may share one RIE between goroutines.
	r := startEcho(t, testenv.RIEOptions{})
	invoke(t, r, `{}`) // cold start outside the measurement
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]testenv.InvokeResult, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Invoke(context.Background(), []byte(`{"sleep":"200ms"}`))
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res.FunctionError || res.StatusCode != 200 {
			t.Errorf("invoke %d: %+v (payload %s)", i, res, res.Payload)
		}
	}
	if elapsed := time.Since(start); elapsed < 600*time.Millisecond {
		t.Errorf("3 invocations of 200ms took %v: they overlapped", elapsed)
	}
}

func TestBuildBootstrapArm64IsStaticAarch64ELF(t *testing.T) {
	path := echoBootstrap(t, "arm64")
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("machine %v, want EM_AARCH64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("bootstrap has an ELF interpreter: it is dynamically linked, want CGO_ENABLED=0")
		}
	}
	if s := f.Section(".symtab"); s != nil {
		t.Error("bootstrap has a symbol table, want it stripped (-s -w)")
	}
}

func TestRIERunsArm64BootstrapUnderQemu(t *testing.T) {
	testenv.RequireTool(t, "qemu-aarch64-static")
	r := startEcho(t, testenv.RIEOptions{Bootstrap: echoBootstrap(t, "arm64"), Arch: "arm64"})
	res := invoke(t, r, `{"arch":true}`)
	var got struct{ GOOS, GOARCH string }
	if err := json.Unmarshal(res.Payload, &got); err != nil || res.FunctionError {
		t.Fatalf("result %+v (payload %s)", res, res.Payload)
	}
	if got.GOOS != "linux" || got.GOARCH != "arm64" {
		t.Fatalf("function ran as %s/%s, want linux/arm64", got.GOOS, got.GOARCH)
	}
	if res := invoke(t, r, `{"fail":"arm says no"}`); res.ErrorType != "echoError" {
		t.Errorf("arm64 function error: %+v (payload %s)", res, res.Payload)
	}
}
