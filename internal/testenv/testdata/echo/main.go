// Command echo is a minimal Lambda function for testing the runtime emulator
// helpers: it returns its payload, or fails, sleeps, or reports its
// environment when the payload asks.
package main

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

type request struct {
	Fail  string `json:"fail"`  // return an error with this message
	Panic bool   `json:"panic"` // panic inside the handler
	Exit  bool   `json:"exit"`  // exit the process mid-invocation
	Sleep string `json:"sleep"` // a Go duration to sleep first, whatever the deadline
	Env   string `json:"env"`   // report this environment variable
	Arch  bool   `json:"arch"`  // report GOOS/GOARCH
}

type echoError struct{ msg string }

func (e *echoError) Error() string { return e.msg }

func handle(_ context.Context, payload json.RawMessage) (any, error) {
	var req request
	_ = json.Unmarshal(payload, &req) // any payload is echoed
	if req.Sleep != "" {
		// Deaf to the deadline, as a handler stuck in a call is: one that
		// returned at its context's deadline would race the emulator's
		// own timeout, and under load win it.
		if d, err := time.ParseDuration(req.Sleep); err == nil {
			time.Sleep(d)
		}
	}
	switch {
	case req.Fail != "":
		return nil, &echoError{msg: req.Fail}
	case req.Panic:
		panic("echo asked to panic")
	case req.Exit:
		os.Exit(3)
	case req.Env != "":
		return map[string]string{"env": os.Getenv(req.Env)}, nil
	case req.Arch:
		return map[string]string{"goos": runtime.GOOS, "goarch": runtime.GOARCH}, nil
	}
	return payload, nil
}

func main() { lambda.Start(handle) }
