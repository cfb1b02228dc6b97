// Command byodrop-local runs byodrop on this machine with no AWS account:
// an S3-compatible server, the Graph emulator, and both functions as Lambda
// bootstraps under the runtime interface emulator.
//
//	byodrop-local run [-v] [-keep FILE]
//	byodrop-local invoke -function ingest|finalize|discover -event FILE [-event FILE…] [-env events/env.json]
//
// `run` is `make local`; `invoke` is `make invoke-ingest` and `make
// invoke-finalize`. Several -event flags are invoked in order in one
// environment, so that a repeated event is a real redelivery. The tools
// (versitygw, aws-lambda-rie) come from ./bin, built by `make tools`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/byodrop/byodrop/internal/local"
	"github.com/byodrop/byodrop/internal/testenv"
)

const usage = `usage:
  byodrop-local run [-v] [-keep FILE]
  byodrop-local invoke -function ingest|finalize|discover -event FILE [-event FILE…] [-env events/env.json]
`

func main() {
	// On Ctrl-C or SIGTERM the context ends and everything started is
	// stopped before exiting; a second signal kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted; everything started was stopped (%v)", err)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "byodrop-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no subcommand")
	}
	switch args[0] {
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(stderr)
		verbose := fs.Bool("v", false, "also print what the functions and the runtime emulators log")
		keep := fs.String("keep", "", "after the run, keep the S3 server and its buckets until Ctrl-C, its settings in this file (make local KEEP=1)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if err := checkTools(); err != nil {
			return err
		}
		opts := local.Options{KeepEnvFile: *keep}
		if *verbose {
			opts.FunctionOutput = stderr
		}
		_, err := local.RunWith(ctx, opts, stdout)
		return err
	case "invoke":
		fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
		fs.SetOutput(stderr)
		function := fs.String("function", "", "ingest, finalize or discover")
		var events []string
		fs.Func("event", "an event file, e.g. events/s3-put.json (repeatable)", func(v string) error {
			events = append(events, v)
			return nil
		})
		env := fs.String("env", "events/env.json", "the functions' settings, as sam local invoke --env-vars reads them")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		switch {
		case *function == "" || len(events) == 0 || fs.NArg() > 0:
			fmt.Fprint(stderr, usage)
			return errors.New("invoke needs -function and -event")
		case *function != "ingest" && *function != "finalize" && *function != "discover":
			return fmt.Errorf("-function %q: want ingest, finalize or discover", *function)
		}
		if err := checkTools(); err != nil {
			return err
		}
		return local.InvokeWith(ctx, local.Options{EnvFile: *env}, *function, events, stdout)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}

// checkTools finds the tools before anything starts; their error says to
// run make tools.
func checkTools() error {
	for _, tool := range []string{"versitygw", "aws-lambda-rie"} {
		if _, err := testenv.Tool(tool); err != nil {
			return err
		}
	}
	return nil
}
