// Command replay re-drives the ingest function's failed events: it reads
// the failure queue (stack output FailureQueueUrl), invokes the function
// again with each original S3 record, one record per invocation, and
// deletes a message once all its records went through. Replaying twice is
// harmless: an object version already uploaded reports "duplicate".
//
//	replay -queue-url URL -function NAME [-dry-run] [-max N] [-wait 5s] [-visibility 15m]
//
// Credentials, region and endpoints come from the AWS SDK's own settings
// (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_LAMBDA),
// so it runs as well against local emulators; without a region setting, the
// queue URL's region is used. The exit status is 1 when a message was kept
// (a record failed, or the message could not be read), 2 on a usage or
// queue error.
//
// The caller needs sqs:ReceiveMessage, sqs:DeleteMessage and
// sqs:ChangeMessageVisibility on the queue, and lambda:InvokeFunction on the
// function.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/byodrop/byodrop/internal/replay"
)

func main() {
	var opts replay.Options
	flag.StringVar(&opts.QueueURL, "queue-url", "", "the failure queue's URL (stack output FailureQueueUrl)")
	flag.StringVar(&opts.Function, "function", "", "the ingest function's name or ARN")
	flag.BoolVar(&opts.DryRun, "dry-run", false, "show what would be replayed; invoke and delete nothing")
	flag.IntVar(&opts.Max, "max", 0, "handle at most this many messages (0: all)")
	flag.DurationVar(&opts.Wait, "wait", 0, "long-polling wait per receive; an empty one ends the run (default 5s, at most 20s)")
	flag.DurationVar(&opts.Visibility, "visibility", 0, "how long a message being replayed stays hidden from other readers (default 15m)")
	flag.Parse()
	if opts.QueueURL == "" || opts.Function == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: replay -queue-url URL -function NAME [-dry-run] [-max N]")
		flag.PrintDefaults()
		os.Exit(2)
	}
	opts.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "replay: AWS configuration: %v\n", err)
		os.Exit(2)
	}
	if cfg.Region == "" {
		cfg.Region = replay.RegionOfQueue(opts.QueueURL)
	}
	s, err := replay.New(cfg, opts).Run(ctx)
	fmt.Println(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "replay: %v\n", err)
		os.Exit(2)
	}
	if s.Kept > 0 && !opts.DryRun {
		os.Exit(1)
	}
}
