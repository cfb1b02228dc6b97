package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/byodrop/byodrop/internal/testenv"
)

// Invoke runs one function once on a fresh local environment: it starts
// the environment with the settings of envFile, seeds the drop bucket so
// that an S3 event in eventFile refers to real objects (see SeedEvent),
// invokes function ("ingest" or "finalize") under the runtime emulator,
// and prints the function's logs, its response (or its error) and, for
// ingest, the report of every object of the event. It returns an error if
// the invocation failed or the function returned an error.
func Invoke(ctx context.Context, function, eventFile, envFile string, out io.Writer) error {
	return InvokeWith(ctx, Options{EnvFile: envFile}, function, []string{eventFile}, out)
}

// InvokeWith is Invoke with options and several events, invoked one after
// the other in the same environment: an event repeating an earlier one's
// object (events/s3-put-duplicate.json after events/s3-put.json) is then a
// real redelivery.
func InvokeWith(ctx context.Context, opts Options, function string, eventFiles []string, out io.Writer) error {
	if function != "ingest" && function != "finalize" && function != "discover" {
		return fmt.Errorf("unknown function %q: want ingest, finalize or discover", function)
	}
	payloads := make([][]byte, len(eventFiles))
	for i, f := range eventFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("event: %w", err)
		}
		if !json.Valid(data) {
			return fmt.Errorf("event %s is not valid JSON", f)
		}
		payloads[i] = data
	}
	opts.Progress, opts.Only = out, function
	if opts.FunctionOutput == nil {
		opts.FunctionOutput = out
	}
	e, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	defer e.Close()

	var failed []string
	for i, f := range eventFiles {
		res, err := e.invokeFile(ctx, function, f, payloads[i], out)
		if err != nil {
			return err
		}
		if res.FunctionError {
			failed = append(failed, fmt.Sprintf("%s: %s: %s", f, res.ErrorType, res.ErrorMessage))
		}
	}
	fmt.Fprintln(out, "stopping the runtime emulator, the Graph emulator and the S3 server")
	if len(failed) > 0 {
		return fmt.Errorf("%s returned an error: %s", functionName(function), strings.Join(failed, "; "))
	}
	return nil
}

// invokeFile seeds and invokes one event, printing what happens.
func (e *Env) invokeFile(ctx context.Context, function, file string, payload []byte, out io.Writer) (testenv.InvokeResult, error) {
	payload, seeded, err := e.SeedEvent(ctx, payload)
	if err != nil {
		return testenv.InvokeResult{}, fmt.Errorf("event %s: %w", file, err)
	}
	for _, s := range seeded {
		if s.Reused {
			fmt.Fprintf(out, "s3://%s/%s is already in the bucket (eTag %s%s): the event announces it again\n", s.Bucket, s.Key, s.ETag, versionNote(s.VersionID))
			continue
		}
		from := "events/data/" + s.Sample
		if strings.HasPrefix(s.Sample, "(") {
			from = s.Sample
		}
		fmt.Fprintf(out, "seeded s3://%s/%s from %s (%d bytes, eTag %s%s)\n",
			s.Bucket, s.Key, from, s.Size, s.ETag, versionNote(s.VersionID))
		if len(s.Rewrote) > 0 {
			fmt.Fprintf(out, "  the event's %s rewritten to the stored object's, so that ingest reads what the event announces\n", strings.Join(s.Rewrote, ", "))
		}
	}
	fmt.Fprintf(out, "invoking %s with %s…\n", functionName(function), file)
	res, err := e.Invoke(ctx, function, payload)
	if err != nil {
		return res, err
	}
	printResult(out, res)
	if function == "ingest" {
		for _, s := range seeded {
			r, err := e.Report(ctx, s.Key)
			if err != nil {
				fmt.Fprintf(out, "no report for %s: %v\n", s.Key, err)
				continue
			}
			fmt.Fprintf(out, "report s3://%s/%s:\n", StateBucket, e.ReportKey(s.Key))
			printReport(out, "  ", *r)
		}
	}
	return res, nil
}

// Invoke sends payload to function ("ingest", "finalize" or "discover") as it is.
func (e *Env) Invoke(ctx context.Context, function string, payload []byte) (testenv.InvokeResult, error) {
	r, err := e.RIE(function)
	if err != nil {
		return testenv.InvokeResult{}, err
	}
	res, err := r.Invoke(ctx, payload)
	if err != nil {
		return res, fmt.Errorf("%s: %w", functionName(function), err)
	}
	return res, nil
}

func functionName(function string) string {
	switch function {
	case "ingest":
		return IngestFunction
	case "finalize":
		return FinalizeFunction
	case "discover":
		return DiscoverFunction
	}
	return function
}

func versionNote(v string) string {
	if v == "" {
		return ""
	}
	return ", version " + v
}

// printResult prints the function's answer: its response, or its error.
func printResult(out io.Writer, res testenv.InvokeResult) {
	if res.FunctionError {
		fmt.Fprintf(out, "function error (request %s): %s: %s\n", res.RequestID, res.ErrorType, res.ErrorMessage)
		return
	}
	fmt.Fprintf(out, "response (request %s, %s):\n  %s\n", res.RequestID, res.Duration.Round(1e6), indentJSON(res.Payload, "  "))
}

func indentJSON(data []byte, prefix string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(data), prefix, "  "); err != nil {
		return string(data)
	}
	return b.String()
}
