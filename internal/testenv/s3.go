package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Defaults of S3Options.
const (
	DefaultS3AccessKey = "byodroplocal"
	DefaultS3SecretKey = "byodroplocalsecret"
	DefaultS3Region    = "us-east-1"
)

// S3Options configure StartS3. The zero value is ready to use.
type S3Options struct {
	AccessKey, SecretKey, Region string // defaults: the DefaultS3 constants
	// Dir holds the buckets (one directory each) and the versions. Empty means
	// a new temporary directory, removed by Close.
	Dir string
	// Binary is the versitygw executable; empty means Tool("versitygw").
	Binary string
	// Output, if set, also receives the gateway's output (it is always kept
	// for Logs).
	Output io.Writer
	// StartTimeout bounds the wait for the gateway to answer (default 30s).
	StartTimeout time.Duration
}

// S3Server is a running versitygw gateway on a loopback port with the posix
// backend. It serves the S3 API the ledger relies on with real semantics:
// conditional writes (If-None-Match: * and If-Match on PutObject, IfMatch on
// GetObject), versioning (per bucket, see CreateBucket), tagging, and
// ListObjectsV2 by prefix; s3_test.go proves each of them.
//
// Known difference from AWS: in a versioned bucket, PutObject with
// If-None-Match: * keeps failing with 412 after the object was deleted (the
// delete marker still counts as "exists"), where AWS S3 accepts it. The
// ledger's create-only objects therefore live in an unversioned state bucket
// locally; the drop bucket itself is versioned, as in the template.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string

	proc      *process
	dir       string
	removeDir bool
	closeOnce sync.Once
}

// StartS3 starts versitygw on a free loopback port and waits until it answers.
func StartS3(ctx context.Context, opts S3Options) (*S3Server, error) {
	if opts.AccessKey == "" {
		opts.AccessKey = DefaultS3AccessKey
	}
	if opts.SecretKey == "" {
		opts.SecretKey = DefaultS3SecretKey
	}
	if opts.Region == "" {
		opts.Region = DefaultS3Region
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Tool("versitygw"); err != nil {
			return nil, fmt.Errorf("start S3 server: %w", err)
		}
	}
	dir, removeDir := opts.Dir, false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "byodrop-s3-"); err != nil {
			return nil, fmt.Errorf("start S3 server: %w", err)
		}
		removeDir = true
	}
	root, versions := filepath.Join(dir, "buckets"), filepath.Join(dir, "versions")
	for _, d := range []string{root, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("start S3 server: %w", err)
		}
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("start S3 server: %w", err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		// --keep-alive: S3 keeps a client's connections open between
		// requests; without it the gateway closes every one, and each
		// request would pay for a new connection as it never does in AWS.
		cmd := exec.Command(bin,
			"--access", opts.AccessKey, "--secret", opts.SecretKey,
			"--region", opts.Region, "--port", addr, "--quiet", "--keep-alive",
			"posix", "--versioning-dir", versions, root)
		// The gateway also reads ROOT_ACCESS_KEY and VGW_* variables; a clean
		// environment keeps a developer's shell from changing it.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		proc, err := startProcess(cmd, opts.Output)
		if err != nil {
			return nil, fmt.Errorf("start S3 server: %w", err)
		}
		s := &S3Server{
			Endpoint: "http://" + addr, AccessKey: opts.AccessKey, SecretKey: opts.SecretKey,
			Region: opts.Region, proc: proc, dir: dir, removeDir: removeDir,
		}
		wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
		err = proc.waitHTTP(wctx, s.Endpoint+"/")
		cancel()
		if err == nil {
			return s, nil
		}
		proc.stop()
		lastErr = err
		if !lostPortRace(proc.logs.String()) {
			break
		}
	}
	if removeDir {
		os.RemoveAll(dir)
	}
	return nil, fmt.Errorf("start S3 server (versitygw): %w", lastErr)
}

// Client returns an S3 client for the server: path-style addressing, static
// credentials, and checksums only where the API requires them (the SDK's
// default CRC trailers are not something the ledger needs to depend on).
func (s *S3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Env returns the settings a child process (a bootstrap under RIE, a
// command) needs to reach this server through the AWS SDK's own variables.
func (s *S3Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"S3_USE_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required",
		"AWS_RESPONSE_CHECKSUM_VALIDATION=when_required",
		// No instance metadata service here: fail fast instead of timing out.
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// CreateBucket creates a bucket, with versioning enabled when asked.
func (s *S3Server) CreateBucket(ctx context.Context, name string, versioned bool) error {
	c := s.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	if !versioned {
		return nil
	}
	_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	})
	if err != nil {
		return fmt.Errorf("enable versioning on bucket %s: %w", name, err)
	}
	return nil
}

// Logs returns what the gateway printed so far.
func (s *S3Server) Logs() string { return s.proc.logs.String() }

// Dir returns the directory holding the buckets and versions.
func (s *S3Server) Dir() string { return s.dir }

// Close stops the gateway and removes its directory if StartS3 created it.
func (s *S3Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.proc.stop()
		if s.removeDir {
			err = os.RemoveAll(s.dir)
		}
	})
	return err
}

// S3 starts a server for one test and stops it when the test ends.
func S3(t testing.TB) *S3Server {
	t.Helper()
	bin := RequireTool(t, "versitygw")
	s, err := StartS3(context.Background(), S3Options{Binary: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop S3 server: %v", err)
		}
	})
	return s
}

var shared struct {
	once sync.Once
	srv  *S3Server
	err  error
}

// SharedS3 returns one server for the whole test binary, started on first
// use; it saves a start per test. Give each test its own bucket (NewBucket).
// Call CloseShared from TestMain after m.Run to stop it; if a binary forgets,
// the kernel still kills the gateway when the test binary exits.
func SharedS3(t testing.TB) *S3Server {
	t.Helper()
	bin := RequireTool(t, "versitygw")
	shared.once.Do(func() {
		shared.srv, shared.err = StartS3(context.Background(), S3Options{Binary: bin})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// CloseShared stops the server started by SharedS3, if any.
func CloseShared() {
	if shared.srv != nil {
		_ = shared.srv.Close() // the process is ending; nothing to report to
	}
}

var bucketUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// NewBucket creates a bucket with a unique valid name derived from the test's
// name and returns that name.
func (s *S3Server) NewBucket(t testing.TB, versioned bool) string {
	t.Helper()
	base := strings.Trim(bucketUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatal(err)
	}
	name := "t-" + base + "-" + hex.EncodeToString(suffix[:])
	if err := s.CreateBucket(context.Background(), name, versioned); err != nil {
		t.Fatal(err)
	}
	return name
}
