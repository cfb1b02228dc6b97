// Command discover is the DiscoverFunction: on a schedule, it finds the
// catalog access reviews that have started and sends them the standing
// data of their resources.
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
		slog.Error("discover cannot start", "error", err.Error())
		os.Exit(1)
	}
	handler, err := a.Discover()
	if err != nil {
		slog.Error("discover cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler)
}
