package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/local"
	"github.com/byodrop/byodrop/internal/replay"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	if ingestBuild.dir != "" {
		os.RemoveAll(ingestBuild.dir)
	}
	os.Exit(code)
}

var ingestBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

// ingestBootstrap builds the ingest function for the host once per test
// binary, as make local does.
func ingestBootstrap(t *testing.T) string {
	t.Helper()
	testenv.RequireTool(t, "aws-lambda-rie")
	b := &ingestBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "byodrop-replay-test-"); b.err != nil {
			return
		}
		start := time.Now()
		var bs local.Bootstraps
		bs, b.err = local.BuildBootstraps(context.Background(), b.dir, "ingest")
		b.path = bs.Ingest
		t.Logf("built the ingest bootstrap in %v", time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// startIngest runs the real ingest bootstrap under the runtime interface
// emulator, with w's S3 server, state bucket and Graph emulator.
func startIngest(t *testing.T, w *harness.World) *testenv.RIE {
	t.Helper()
	bootstrap := ingestBootstrap(t)
	env := w.FunctionEnv()
	r, err := testenv.StartRIE(context.Background(), testenv.RIEOptions{
		Bootstrap: bootstrap, Env: env, FunctionName: "byodrop-IngestFunction-replay", Timeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("function output:\n%s", r.Logs())
		}
		r.Close()
	})
	return r
}

// startMoto starts moto's server on a free loopback port and returns its
// URL; the test is skipped when moto_server is not installed.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		// Not a pinned tool: it comes from PyPI, which CI cannot reach, so
		// BYODROP_REQUIRE_TOOLS does not make it mandatory. The in-process
		// SQS covers the same ground.
		t.Skip("skipping the moto run: moto_server is not on PATH (pip install 'moto[server]'); the in-process SQS run covers replay")
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// Its own process group: the shim and the Python process go together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server does not answer on %s: %v\n%s", addr, err, logs.String())
		}
		select {
		case <-done:
			t.Fatalf("moto_server exited: %s", logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const sampleCSV = "PrincipalId,PrincipalType,PermissionId,PermissionName,PermissionDescription,PermissionType,ScopeId,ScopeDisplayName,EntitlementOwners_Users,EntitlementOwners_Groups,CustomData\r\n" +
	"3f2504e0-4f89-41d3-9a0c-0305e82c3301,EntraIdUser,badge-hq-main,HQ main entrance,Badge access,Door,site-hq,Headquarters,5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e,,\r\n" +
	"8d7c6b5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d,EntraIdUser,badge-lab-2,Lab 2,\"Wet lab, second floor\",Door,site-hq,Headquarters,,,\r\n"

// A file whose ingest failed (Graph kept answering 503 until the retries
// ran out) is re-driven from the failure queue by the real ingest function
// under the runtime emulator: the replay uploads it and deletes the
// message; replaying the same record again is a duplicate, and Graph still
// holds the file once. Run against the in-process SQS, and against moto's
// when it is installed.
func TestReplayReDrivesAFailedIngest(t *testing.T) {
	for _, backend := range []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"in-process SQS", func(t *testing.T) string { return startFakeSQS(t).URL }},
		{"moto", startMoto},
	} {
		t.Run(backend.name, func(t *testing.T) {
			start := time.Now()
			endpoint := backend.start(t)
			t.Logf("%s ready in %v", backend.name, time.Since(start).Round(time.Millisecond))
			testReplayAgainstIngest(t, endpoint)
		})
	}
}

func testReplayAgainstIngest(t *testing.T, sqsEndpoint string) {
	ctx := context.Background()
	w := harness.New(t, harness.Options{})
	fn := startIngest(t, w)
	client := sqsClient(sqsEndpoint)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("byodrop-FailureQueue")})
	if err != nil {
		t.Fatal(err)
	}
	queue := aws.ToString(q.QueueUrl)

	key := harness.Key("badge access.csv")
	rec := w.Put(key, []byte(sampleCSV))

	// The first delivery: every upload answered 503, as each of Lambda's
	// attempts would have seen it.
	w.Emu.Inject(graphemu.Fault{Op: "upload", Status: http.StatusServiceUnavailable, Times: -1})
	first, err := fn.Invoke(ctx, harness.Payload(rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first ingest (cold start, Graph retries until given up) in %v", first.Elapsed.Round(time.Millisecond))
	if !first.FunctionError {
		t.Fatalf("the first ingest did not fail: %s", first.Payload)
	}
	if got := w.Report(key).Status; got != review.Failed {
		t.Fatalf("report after the failed ingest: %s, want failed", got)
	}
	w.Emu.ClearFaults()
	// What the OnFailure destination puts in the queue after the retries:
	// the original event, and the function's last error.
	body := destinationRecordWith(t, harness.Payload(rec), first.Payload)

	replayOnce := func(t *testing.T) (replay.Summary, string) {
		t.Helper()
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		r := &replay.Replayer{
			Queue: client,
			// The emulator serves the Invoke API's path for the function
			// named "function".
			Lambda:  lambdaClient(strings.TrimSuffix(fn.Endpoint, testenv.InvokePath)),
			Options: replay.Options{QueueURL: queue, Function: "function", Wait: time.Second, Out: &out},
		}
		start := time.Now()
		s, err := r.Run(ctx)
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out.String())
		}
		t.Logf("replay in %v:\n%s%s", time.Since(start).Round(time.Millisecond), out.String(), s)
		if want := (replay.Summary{Messages: 1, Deleted: 1, Records: 1, Replayed: 1}); s != want {
			t.Errorf("summary %+v, want %+v", s, want)
		}
		// The queue is empty: nothing visible, nothing in flight.
		left, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, VisibilityTimeout: 0})
		if err != nil {
			t.Fatal(err)
		}
		if len(left.Messages) != 0 {
			t.Errorf("%d messages left in the queue after the replay", len(left.Messages))
		}
		return s, out.String()
	}

	t.Run("replayed once: uploaded", func(t *testing.T) {
		_, out := replayOnce(t)
		if !strings.Contains(out, "s3://"+w.Drop+"/"+key) || !strings.Contains(out, "last error: ") {
			t.Errorf("the output does not name the object and its first failure")
		}
		if got := w.Report(key); got.Status != review.Uploaded || got.Rows != 2 {
			t.Errorf("report %s with %d rows, want uploaded with 2", got.Status, got.Rows)
		}
	})
	t.Run("replayed again: duplicate", func(t *testing.T) {
		replayOnce(t)
		if got := w.Report(key).Status; got != review.Duplicate {
			t.Errorf("report %s, want duplicate", got)
		}
	})

	if n := w.Uploads(); n != 1 {
		t.Errorf("Graph accepted %d uploads, want 1", n)
	}
	sessions := w.Emu.Sessions()
	if len(sessions) != 1 || len(sessions[0].Files) != 1 || sessions[0].Files[0].Name != "badge access.csv" {
		t.Errorf("Graph holds %+v; want one session with the file once", sessions)
	}

	// The function wrote one metrics document per invocation: the failure,
	// the upload, the duplicate.
	got := map[string]float64{}
	for _, d := range emfDocuments(t, fn.Logs()) {
		if d["Function"] != "byodrop-IngestFunction-replay" {
			t.Errorf("metrics for Function %v", d["Function"])
		}
		for _, m := range []string{"FilesFailed", "FilesUploaded", "FilesDuplicate", "GraphRetries"} {
			if v, ok := d[m].(float64); ok {
				got[m] += v
			}
		}
	}
	if got["FilesFailed"] != 1 || got["FilesUploaded"] != 1 || got["FilesDuplicate"] != 1 || got["GraphRetries"] < 1 {
		t.Errorf("metrics over the three invocations: %v; want one failed (after retries), one uploaded, one duplicate", got)
	}
}

// emfDocuments returns the embedded-metric-format lines of a function's
// output, decoded.
func emfDocuments(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, `"_aws"`) {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Errorf("metrics line is not JSON on its own: %v: %q", err, line)
			continue
		}
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		t.Errorf("the function wrote no metrics")
	}
	return docs
}
