package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestUsageErrorsNameWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no subcommand", nil, nil, "subcommand"},
		{"unknown subcommand", []string{"stats"}, nil, "subcommand"},
		{"no bucket", []string{"status"}, nil, "-bucket"},
		{"bad QUIET_PERIOD", []string{"status", "-bucket", "b"}, map[string]string{"QUIET_PERIOD": "ten minutes"}, "QUIET_PERIOD"},
		{"stray argument", []string{"status", "-bucket", "b", "extra"}, nil, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &errOut)
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a usage error naming %q", err, tc.want)
			}
		})
	}
}
