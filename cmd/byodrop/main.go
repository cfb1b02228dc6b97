// Command byodrop is the operator's tool. One subcommand so far:
//
//	byodrop status [-bucket B] [-prefix state/] [-days 7] [-queue-url URL] [-json]
//
// status reads the ledger and the reports from the state bucket and the
// failure queue's depth, and prints the open sessions with their windows
// and what will close them when, the sessions closed and expired in the
// last days, and the recent rejected and failed files with their first
// error. It only reads; no Graph token is needed. Credentials, region and
// endpoints come from the AWS SDK's own settings (AWS_PROFILE, AWS_REGION,
// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_SQS); S3_USE_PATH_STYLE=true for a
// local S3 server. Exit status 2 on a usage error, 1 when reading failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/status"
)

const usage = "usage: byodrop status [-bucket B] [-prefix state/] [-days 7] [-queue-url URL] [-json]\n"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var usageErr usageError
	switch {
	case errors.As(err, &usageErr):
		fmt.Fprintf(os.Stderr, "byodrop: %v\n%s", err, usage)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "byodrop:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		return usageError{errors.New("want a subcommand: status")}
	}
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o status.Options
	fs.StringVar(&o.Bucket, "bucket", getenv(config.EnvStateBucket), "the state bucket: the stack output DropBucketName (default $STATE_BUCKET)")
	fs.StringVar(&o.Prefix, "prefix", or(getenv(config.EnvStatePrefix), config.DefaultStatePrefix), "the state prefix (default $STATE_PREFIX, else state/)")
	fs.IntVar(&o.Days, "days", status.DefaultDays, "show the sessions ended and the files reported in the last this many days")
	fs.IntVar(&o.MaxFiles, "max-files", status.DefaultMaxFiles, "list at most this many rejected and failed files")
	fs.StringVar(&o.QueueURL, "queue-url", "", "the failure queue: the stack output FailureQueueUrl (its depth is not read without it)")
	quiet, margin, err := durations(getenv)
	if err != nil {
		return usageError{err}
	}
	fs.DurationVar(&o.Policy.QuietPeriod, "quiet-period", quiet, "the finalizer's QUIET_PERIOD, to say when sessions close")
	fs.DurationVar(&o.Policy.CloseMargin, "close-margin", margin, "the finalizer's CLOSE_MARGIN")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if o.Bucket == "" {
		return usageError{errors.New("-bucket is required (or STATE_BUCKET): the stack output DropBucketName")}
	}

	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	pathStyle, _ := strconv.ParseBool(getenv(config.EnvS3PathStyle))
	c := status.Clients{
		S3:  s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = pathStyle }),
		SQS: sqs.NewFromConfig(cfg),
	}
	st, err := status.Read(ctx, c, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return status.WriteJSON(stdout, st)
	}
	return status.WriteText(stdout, st)
}

// durations reads QUIET_PERIOD and CLOSE_MARGIN from the environment, as
// the finalizer does, for the flags' defaults.
func durations(getenv func(string) string) (quiet, margin time.Duration, err error) {
	quiet, margin = config.DefaultQuietPeriod, config.DefaultCloseMargin
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{config.EnvQuietPeriod, &quiet}, {config.EnvCloseMargin, &margin}} {
		if s := getenv(d.name); s != "" {
			if *d.v, err = time.ParseDuration(s); err != nil {
				return 0, 0, fmt.Errorf("%s: %v", d.name, err)
			}
		}
	}
	return quiet, margin, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
