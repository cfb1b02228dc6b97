// Command graphemu runs the Microsoft Graph and Entra emulator of
// internal/graphemu as a standalone server, for `make local` and manual
// runs. It prints the settings a client needs (as KEY=value lines) and runs
// until SIGINT or SIGTERM.
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
	"time"

	"github.com/byodrop/byodrop/internal/graphemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "graphemu:", err)
		}
		os.Exit(2)
	}
}

// run starts the emulator with the flags in args, prints where it listens
// and serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d := graphemu.DefaultOptions()
	fs := flag.NewFlagSet("graphemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	tenant := fs.String("tenant", d.TenantID, "the tenant id the token endpoint accepts")
	clientID := fs.String("client-id", d.ClientID, "the application (client) id the token endpoint accepts")
	secret := fs.String("client-secret", d.ClientSecret, "the client secret the token endpoint accepts")
	caOut := fs.String("ca-out", "", "also write the CA certificate (PEM) to this path, for SSL_CERT_FILE")
	window := fs.Duration("window", d.UploadWindow, "upload window: how long a session accepts data")
	ttl := fs.Duration("token-ttl", d.TokenTTL, "lifetime of issued access tokens")
	verbose := fs.Bool("v", false, "log every request to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	opts := graphemu.Options{
		TenantID:     *tenant,
		ClientID:     *clientID,
		ClientSecret: *secret,
		TokenTTL:     *ttl,
		UploadWindow: *window,
		Addr:         *addr,
	}
	if *verbose {
		opts.OnRequest = func(r graphemu.Request) {
			fmt.Fprintf(stderr, "%s %s %s?%s op=%s status=%d code=%s fault=%s bytes=%d %s\n",
				r.At.UTC().Format(time.RFC3339), r.Method, r.Path, r.Query, r.Op, r.Status, r.Code, r.Fault, r.BodyBytes, r.Duration.Round(time.Microsecond))
		}
	}
	s, err := graphemu.Start(opts)
	if err != nil {
		return err
	}
	defer s.Close()
	caPath := s.CAFile()
	if *caOut != "" {
		if err := os.WriteFile(*caOut, s.CAPEM(), 0o644); err != nil {
			return fmt.Errorf("-ca-out: %w", err)
		}
		caPath = *caOut
	}
	fmt.Fprintf(stdout, "GRAPH_ENDPOINT=%s\nAZURE_AUTHORITY_HOST=%s\nAZURE_TENANT_ID=%s\nAZURE_CLIENT_ID=%s\nSSL_CERT_FILE=%s\n",
		s.URL(), s.AuthorityHost(), *tenant, *clientID, caPath)
	fmt.Fprintf(stderr, "graphemu: serving Graph at %s and tokens at %s (CA: %s); stop with Ctrl-C\n", s.URL(), s.TokenURL(), caPath)
	<-ctx.Done()
	fmt.Fprintln(stderr, "graphemu: stopping")
	return nil
}
