// Command ingest is the IngestFunction: it handles the drop bucket's S3
// object-created events.
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
		slog.Error("ingest cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(a.Ingest().Handle)
}
