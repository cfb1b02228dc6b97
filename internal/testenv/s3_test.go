package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptrace"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/byodrop/byodrop/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	removeBuildDirs()
	os.Exit(code)
}

// These tests document how faithful versitygw is for what the ledger and the
// ingest function rely on. If an upgrade changes a behaviour, the failing test
// names the assumption that broke.

func put(t *testing.T, c *s3.Client, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
	t.Helper()
	return c.PutObject(context.Background(), in)
}

func mustPut(t *testing.T, c *s3.Client, bucket, key, body string) *s3.PutObjectOutput {
	t.Helper()
	out, err := put(t, c, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return out
}

func mustGet(t *testing.T, c *s3.Client, in *s3.GetObjectInput) string {
	t.Helper()
	out, err := c.GetObject(context.Background(), in)
	if err != nil {
		t.Fatalf("get %s: %v", aws.ToString(in.Key), err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantStatus checks that err is an S3 API error with the HTTP status and code.
func wantStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want HTTP %d %s", status, code)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("got %v, want HTTP %d", err, status)
	}
	var api smithy.APIError
	if code != "" && (!errors.As(err, &api) || api.ErrorCode() != code) {
		t.Fatalf("got %v, want error code %s", err, code)
	}
}

func TestS3PutIfNoneMatchCreatesOnlyOnce(t *testing.T) {
	for _, versioned := range []bool{false, true} {
		name := map[bool]string{false: "unversioned", true: "versioned"}[versioned]
		t.Run(name, func(t *testing.T) {
			s := testenv.SharedS3(t)
			c := s.Client()
			b := s.NewBucket(t, versioned)
			in := func(body string) *s3.PutObjectInput {
				return &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("state/claim.json"),
					Body: strings.NewReader(body), IfNoneMatch: aws.String("*")}
			}
			if _, err := put(t, c, in("first")); err != nil {
				t.Fatalf("create-only put of a new key: %v", err)
			}
			_, err := put(t, c, in("second"))
			wantStatus(t, err, 412, "PreconditionFailed")
			if got := mustGet(t, c, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("state/claim.json")}); got != "first" {
				t.Fatalf("object = %q after refused overwrite, want %q", got, "first")
			}
		})
	}
}

func TestS3PutIfNoneMatchAfterDelete(t *testing.T) {
	// AWS accepts a create-only put once the key is deleted, versioned or not.
	// versitygw agrees for unversioned buckets only: the delete marker of a
	// versioned bucket still counts as an existing object. Hence the ledger's
	// state bucket is unversioned in local runs.
	tests := []struct {
		name      string
		versioned bool
		wantOK    bool
	}{
		{"unversioned bucket accepts", false, true},
		{"versioned bucket still refuses (versitygw quirk)", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testenv.SharedS3(t)
			c := s.Client()
			b := s.NewBucket(t, tt.versioned)
			key := aws.String("state/lease.json")
			mustPut(t, c, b, *key, "v1")
			if _, err := c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(b), Key: key}); err != nil {
				t.Fatal(err)
			}
			_, err := put(t, c, &s3.PutObjectInput{Bucket: aws.String(b), Key: key, Body: strings.NewReader("v2"), IfNoneMatch: aws.String("*")})
			if tt.wantOK && err != nil {
				t.Fatalf("create-only put after delete: %v", err)
			}
			if !tt.wantOK {
				wantStatus(t, err, 412, "PreconditionFailed")
			}
		})
	}
}

func TestS3PutIfMatchReplacesOnlyTheSeenVersion(t *testing.T) {
	s := testenv.SharedS3(t)
	c := s.Client()
	b := s.NewBucket(t, false)
	key := aws.String("state/sessions/x.json")
	first := mustPut(t, c, b, *key, `{"n":1}`)

	second, err := put(t, c, &s3.PutObjectInput{Bucket: aws.String(b), Key: key,
		Body: strings.NewReader(`{"n":2}`), IfMatch: first.ETag})
	if err != nil {
		t.Fatalf("put If-Match current etag: %v", err)
	}
	if aws.ToString(second.ETag) == aws.ToString(first.ETag) {
		t.Fatalf("etag unchanged after a write with different content: %s", aws.ToString(second.ETag))
	}
	// A writer holding the old etag lost the race and must be refused.
	_, err = put(t, c, &s3.PutObjectInput{Bucket: aws.String(b), Key: key,
		Body: strings.NewReader(`{"n":3}`), IfMatch: first.ETag})
	wantStatus(t, err, 412, "PreconditionFailed")
	if got := mustGet(t, c, &s3.GetObjectInput{Bucket: aws.String(b), Key: key}); got != `{"n":2}` {
		t.Fatalf("object = %s, want the second write", got)
	}
	// If-Match on a key that does not exist: AWS answers 404 NoSuchKey.
	_, err = put(t, c, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("state/none.json"),
		Body: strings.NewReader(`{}`), IfMatch: first.ETag})
	wantStatus(t, err, 404, "NoSuchKey")
}

func TestS3GetObjectByVersionID(t *testing.T) {
	s := testenv.SharedS3(t)
	c := s.Client()
	b := s.NewBucket(t, true)
	key := "incoming/a/file.csv"
	v1 := mustPut(t, c, b, key, "one")
	v2 := mustPut(t, c, b, key, "two")
	if aws.ToString(v1.VersionId) == "" || aws.ToString(v1.VersionId) == aws.ToString(v2.VersionId) {
		t.Fatalf("version ids %q and %q: want two distinct ids", aws.ToString(v1.VersionId), aws.ToString(v2.VersionId))
	}
	for _, tt := range []struct {
		version *string
		want    string
	}{{v1.VersionId, "one"}, {v2.VersionId, "two"}, {nil, "two"}} {
		got := mustGet(t, c, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(key), VersionId: tt.version})
		if got != tt.want {
			t.Errorf("get version %q = %q, want %q", aws.ToString(tt.version), got, tt.want)
		}
	}
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key), VersionId: v1.VersionId})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(head.ContentLength) != 3 || aws.ToString(head.ETag) != aws.ToString(v1.ETag) {
		t.Errorf("head of v1: length %d etag %s, want 3 and %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag), aws.ToString(v1.ETag))
	}
}

func TestS3GetObjectIfMatch(t *testing.T) {
	s := testenv.SharedS3(t)
	c := s.Client()
	b := s.NewBucket(t, true)
	key := aws.String("incoming/a/file.csv")
	v1 := mustPut(t, c, b, *key, "one")
	if got := mustGet(t, c, &s3.GetObjectInput{Bucket: aws.String(b), Key: key, IfMatch: v1.ETag}); got != "one" {
		t.Fatalf("get If-Match = %q", got)
	}
	mustPut(t, c, b, *key, "two")
	// The ingest function reads the object it was told about; a newer upload
	// under the same key must not be streamed in its place.
	_, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(b), Key: key, IfMatch: v1.ETag})
	wantStatus(t, err, 412, "PreconditionFailed")
}

func TestS3ListObjectsV2ByPrefixPages(t *testing.T) {
	s := testenv.SharedS3(t)
	c := s.Client()
	b := s.NewBucket(t, false)
	want := []string{"state/open/a.json", "state/open/b.json", "state/open/c.json"}
	for _, k := range append([]string{"state/reports/x.json", "incoming/y.csv"}, want...) {
		mustPut(t, c, b, k, "{}")
	}
	var got []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(b), Prefix: aws.String("state/open/"), MaxKeys: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range out.Contents {
			got = append(got, aws.ToString(o.Key))
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if pages != 2 {
		t.Errorf("listed in %d pages of at most 2 keys, want 2", pages)
	}
}

func TestS3ObjectTagging(t *testing.T) {
	s := testenv.SharedS3(t)
	c := s.Client()
	b := s.NewBucket(t, true)
	key := aws.String("incoming/a/file.csv")
	_, err := put(t, c, &s3.PutObjectInput{Bucket: aws.String(b), Key: key, Body: strings.NewReader("x"), Tagging: aws.String("byodrop=uploaded")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObjectTagging(context.Background(), &s3.GetObjectTaggingInput{Bucket: aws.String(b), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.TagSet) != 1 || aws.ToString(out.TagSet[0].Key) != "byodrop" || aws.ToString(out.TagSet[0].Value) != "uploaded" {
		t.Fatalf("tags = %+v, want byodrop=uploaded", out.TagSet)
	}
}

func TestS3AcceptsSDKDefaultChecksums(t *testing.T) {
	// The functions use the SDK's default configuration in AWS; the local
	// server must accept its default CRC checksums too, not only the relaxed
	// client that Client returns.
	s := testenv.SharedS3(t)
	b := s.NewBucket(t, false)
	c := s3.New(s3.Options{
		Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	body := bytes.Repeat([]byte("a,b\n"), 1000)
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put with default checksums: %v", err)
	}
	if got := mustGet(t, c, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("k")}); got != string(body) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(body))
	}
}

func TestS3EnvNamesEveryClientSetting(t *testing.T) {
	s := testenv.SharedS3(t)
	env := map[string]string{}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, want := range map[string]string{
		"AWS_ENDPOINT_URL_S3": s.Endpoint, "S3_USE_PATH_STYLE": "true",
		"AWS_ACCESS_KEY_ID": s.AccessKey, "AWS_SECRET_ACCESS_KEY": s.SecretKey, "AWS_REGION": s.Region,
	} {
		if env[k] != want {
			t.Errorf("Env()[%s] = %q, want %q", k, env[k], want)
		}
	}
}

func TestS3CloseStopsServerAndRemovesDir(t *testing.T) {
	testenv.RequireTool(t, "versitygw")
	s, err := testenv.StartS3(context.Background(), testenv.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data dir %s still there after Close (stat: %v)", dir, err)
	}
	if _, err := s.Client().ListBuckets(context.Background(), &s3.ListBucketsInput{}); err == nil {
		t.Error("server still answers after Close")
	}
}

// TestS3KeepsConnectionsOpen: S3 keeps a client's connection open between
// requests, refusals included. A gateway that closed each one would make
// every request in the bench and the tests pay for a connection that no
// request pays for in AWS. The request after a 412 sometimes (about one
// run in a hundred) opens a new connection: the refused one is not kept.
// An error answer can end a connection in AWS too, so only the requests
// after a success are held to reusing theirs.
func TestS3KeepsConnectionsOpen(t *testing.T) {
	s := testenv.SharedS3(t)
	c := s.Client()
	b := s.NewBucket(t, false)
	var (
		step            string   // the request about to be sent
		mayDial         bool     // whether it may open a new connection
		requests, reuse int      // all requests, and those on a kept connection
		dialed          []string // requests that opened one when they need not
	)
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		requests++
		switch {
		case i.Reused:
			reuse++
		case !mayDial:
			dialed = append(dialed, step)
		}
	}})
	send := func(name string, afterError bool) {
		step, mayDial = name, requests == 0 || afterError
	}
	for i := range 5 {
		key := aws.String(fmt.Sprintf("k%d", i))
		send(fmt.Sprintf("put %d", i), false)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: key, Body: strings.NewReader("body")}); err != nil {
			t.Fatal(err)
		}
		send(fmt.Sprintf("conditional put %d", i), false)
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: key, Body: strings.NewReader("again"), IfNoneMatch: aws.String("*")})
		wantStatus(t, err, 412, "PreconditionFailed")
		send(fmt.Sprintf("get %d", i), true)
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, out.Body)
		out.Body.Close()
	}
	// Of the 15, the first and the five after a 412 may open a connection.
	if requests != 15 || len(dialed) != 0 || reuse < 9 {
		t.Fatalf("%d of %d requests reused a connection; these opened one after a success: %v", reuse, requests, dialed)
	}
}
