package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCommandLineMistakesAreRefusedBeforeAnythingStarts(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no subcommand", nil, "no subcommand"},
		{"unknown subcommand", []string{"deploy"}, `unknown subcommand "deploy"`},
		{"invoke without an event", []string{"invoke", "-function", "ingest"}, "invoke needs -function and -event"},
		{"invoke without a function", []string{"invoke", "-event", "events/s3-put.json"}, "invoke needs -function and -event"},
		{"invoke of an unknown function", []string{"invoke", "-function", "replay", "-event", "events/s3-put.json"}, `-function "replay": want ingest, finalize or discover`},
		{"a stray argument", []string{"invoke", "-function", "ingest", "-event", "a.json", "b.json"}, "invoke needs -function and -event"},
		{"an unknown flag", []string{"run", "-fast"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed %q on stdout; nothing should have started", stdout.String())
			}
		})
	}
}
