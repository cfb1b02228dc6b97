// Command finalize is the FinalizeFunction: on a schedule, it closes the
// upload sessions that are due, or records them as expired.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byodrop/byodrop/internal/app"
)

func main() {
	a, err := app.Load(context.Background())
	if err != nil {
		slog.Error("finalize cannot start", "error", err.Error())
		os.Exit(1)
	}
	handler, err := a.Finalize()
	if err != nil {
		slog.Error("finalize cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler)
}
