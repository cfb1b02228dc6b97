package entra

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/byodrop/byodrop/internal/awsfake"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/graphemu"
)

// startMoto starts moto_server on a free loopback port, or skips: moto is a
// Python package that CI cannot install (no PyPI), so awsfake is the
// emulator every run has, and moto a second opinion where it exists.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Skip("moto_server not on PATH; the awsfake tests cover Secrets Manager")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatalf("moto_server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	u := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer on %s: %v", u, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countingClient counts the Secrets Manager GetSecretValue requests it
// carries.
type countingClient struct {
	next aws.HTTPClient
	n    atomic.Int32
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetSecretValue") {
		c.n.Add(1)
	}
	return c.next.Do(r)
}

func TestSecretModeAgainstMoto(t *testing.T) {
	moto := startMoto(t)
	w := newWorld(t, graphemu.Options{ClientSecret: "moto-old-secret-1"}, awsfake.Options{}, nil)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto)
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingClient{next: awshttp.NewBuildableClient()}
	cfg.HTTPClient = counter
	ctx := testContext(t)
	sm := secretsmanager.NewFromConfig(cfg)
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("byodrop/graph"), SecretString: aws.String(`{"clientSecret":"moto-old-secret-1"}`),
	})
	if err != nil {
		t.Fatalf("CreateSecret on moto: %v", err)
	}
	arn := aws.ToString(created.ARN)

	src, err := FromSettings(w.settings(t, map[string]string{config.EnvSecretARN: arn}), cfg, w.emu.Client())
	if err != nil {
		t.Fatal(err)
	}
	c := w.graphClient(t, src)
	s, err := c.Create(ctx, newTarget(1))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Get(ctx, newTarget(1), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := counter.n.Load(); n != 1 {
		t.Fatalf("%d GetSecretValue calls, want 1", n)
	}

	// Rotate with PutSecretValue: moto moves AWSCURRENT to the new version.
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(arn), SecretString: aws.String("moto-new-secret-2"),
	}); err != nil {
		t.Fatal(err)
	}
	w.emu.SetClientSecret("moto-new-secret-2")
	w.emu.ExpireTokens()
	if _, err := c.Get(ctx, newTarget(1), s.ID); err != nil {
		t.Fatalf("get after the rotation: %v", err)
	}
	if n := counter.n.Load(); n != 2 {
		t.Fatalf("%d GetSecretValue calls, want 2", n)
	}
	if n := w.emu.Count("get", http.StatusUnauthorized); n != 1 {
		t.Fatalf("%d refused gets, want 1", n)
	}
}
