// Command csvcheck checks access-data CSV files with the validator the
// ingest function runs before an upload, so that a data owner can fix a
// file before dropping it: same rules, same messages.
//
//	csvcheck [-json] FILE...
//
// For each file it prints "FILE: ok: N rows (format F)" or the first
// problem as "FILE:LINE: COLUMN: MESSAGE"; with -json, a JSON array with
// one object per file whose errors have the shape of a report's errors.
// The exit status is 1 when any file is invalid or unreadable, 2 on a usage
// error.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/byodrop/byodrop/internal/csvcheck"
	"github.com/byodrop/byodrop/internal/review"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// fileResult is one file's outcome in -json output.
type fileResult struct {
	File   string              `json:"file"`
	OK     bool                `json:"ok"`
	Format string              `json:"format,omitempty"`
	Rows   int64               `json:"rows"`
	Bytes  int64               `json:"bytes"`
	Errors []review.FieldError `json:"errors,omitempty"`
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("csvcheck", flag.ContinueOnError)
	flags.SetOutput(stderr)
	asJSON := flags.Bool("json", false, "print a JSON array, one object per file")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: csvcheck [-json] FILE...")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return 2
	}
	status := 0
	var results []fileResult
	for _, path := range flags.Args() {
		res, err := checkFile(path)
		out := fileResult{File: path, OK: err == nil, Rows: res.Rows, Bytes: res.Bytes}
		if res.Format != nil {
			out.Format = res.Format.Name
		}
		var cerr *csvcheck.Error
		switch {
		case err == nil:
			if !*asJSON {
				fmt.Fprintf(stdout, "%s: ok: %d rows (format %s)\n", path, res.Rows, out.Format)
			}
		case errors.As(err, &cerr):
			status = 1
			out.Errors = []review.FieldError{cerr.FieldError()}
			if !*asJSON {
				fmt.Fprintln(stdout, cerr.Error())
			}
		default:
			status = 1
			var perr *fs.PathError
			if errors.As(err, &perr) {
				err = fmt.Errorf("%s: %w", perr.Op, perr.Err)
			}
			out.Errors = []review.FieldError{{Message: err.Error()}}
			if !*asJSON {
				fmt.Fprintf(stdout, "%s: %v\n", path, err)
			}
		}
		results = append(results, out)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintln(stderr, "csvcheck:", err)
			return 1
		}
	}
	return status
}

// checkFile validates one file; the file is named in errors as given.
func checkFile(path string) (csvcheck.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return csvcheck.Result{}, err
	}
	defer f.Close()
	return csvcheck.Validate(f, path)
}
