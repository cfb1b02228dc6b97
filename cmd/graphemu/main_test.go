package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The command prints the settings a client needs, serves with the CA it
// wrote to -ca-out, and stops cleanly when its context ends (as on SIGINT).
func TestRunServesUntilStopped(t *testing.T) {
	caOut := filepath.Join(t.TempDir(), "ca.pem")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-ca-out", caOut, "-tenant", "11111111-2222-4333-8444-555555555555", "-client-id", "app", "-client-secret", "s3cret", "-window", "30m"}, pw, io.Discard)
		pw.Close()
	}()

	env := map[string]string{}
	sc := bufio.NewScanner(pr)
	for len(env) < 5 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		env[k] = v
	}
	go io.Copy(io.Discard, pr)
	if env["SSL_CERT_FILE"] != caOut || env["AZURE_TENANT_ID"] != "11111111-2222-4333-8444-555555555555" || !strings.HasPrefix(env["GRAPH_ENDPOINT"], "https://127.0.0.1:") || env["AZURE_AUTHORITY_HOST"] != env["GRAPH_ENDPOINT"]+"/" {
		t.Fatalf("printed settings: %v", env)
	}
	pem, err := os.ReadFile(caOut)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("-ca-out holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"s3cret"}, "scope": {"https://graph.microsoft.com/.default"}}
	res, err := client.PostForm(env["AZURE_AUTHORITY_HOST"]+env["AZURE_TENANT_ID"]+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("token with the flags' credentials: %d", res.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	if _, err := client.PostForm(env["AZURE_AUTHORITY_HOST"]+env["AZURE_TENANT_ID"]+"/oauth2/v2.0/token", form); err == nil {
		t.Error("still serving after stop")
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"non-loopback address", []string{"-addr", "0.0.0.0:0"}, "loopback"},
		{"unknown flag", []string{"-nope"}, "not defined"},
		{"stray argument", []string{"extra"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			err := run(context.Background(), tc.args, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.msg) {
				t.Errorf("err %v, stderr %q; want mention of %q", err, stderr.String(), tc.msg)
			}
		})
	}
}
