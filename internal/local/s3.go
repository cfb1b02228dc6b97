package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byodrop/byodrop/internal/review"
)

// Object is what PutObject answered for one stored object.
type Object struct {
	Bucket, Key string
	Size        int64
	ETag        string // without quotes, as S3 events carry it
	VersionID   string // "" in an unversioned bucket
}

// Put stores body at key in bucket (created, versioned, if missing).
func (e *Env) Put(ctx context.Context, bucket, key string, body []byte) (Object, error) {
	if err := e.ensureBucket(ctx, bucket); err != nil {
		return Object{}, err
	}
	out, err := e.S3Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		return Object{}, fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
	}
	return Object{
		Bucket: bucket, Key: key, Size: int64(len(body)),
		ETag: strings.Trim(aws.ToString(out.ETag), `"`), VersionID: aws.ToString(out.VersionId),
	}, nil
}

// ensureBucket creates bucket, versioned like the drop bucket, unless it
// exists: an event file may name a bucket of its own.
func (e *Env) ensureBucket(ctx context.Context, bucket string) error {
	_, err := e.S3Client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return nil
	}
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	if !errors.As(err, &nf) && !errors.As(err, &nsb) {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	return e.S3.CreateBucket(ctx, bucket, true)
}

// PutEvent returns the S3 notification for o as Lambda receives it: one
// ObjectCreated:Put record in the shape S3 sends, the key URL-encoded.
// (aws-lambda-go's event types would add fields S3 never sends, such as
// urlDecodedKey, so the JSON is written here.)
func PutEvent(objs ...Object) []byte {
	recs := make([]map[string]any, len(objs))
	for i, o := range objs {
		recs[i] = PutRecord(o)
	}
	data, err := json.Marshal(map[string]any{"Records": recs})
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	return data
}

// PutRecord returns the ObjectCreated:Put record S3 would send for o.
func PutRecord(o Object) map[string]any {
	now := time.Now().UTC()
	object := map[string]any{
		"key": EncodeKey(o.Key), "size": o.Size, "eTag": o.ETag,
		"sequencer": fmt.Sprintf("%016X", now.UnixNano()),
	}
	if o.VersionID != "" {
		object["versionId"] = o.VersionID // absent in unversioned buckets
	}
	return map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime":         now.Format("2006-01-02T15:04:05.000Z"),
		"eventName":         "ObjectCreated:Put",
		"userIdentity":      map[string]any{"principalId": "AWS:AIDAEXAMPLELOCALUSER"},
		"requestParameters": map[string]any{"sourceIPAddress": "127.0.0.1"},
		"responseElements": map[string]any{
			"x-amz-request-id": strings.ToUpper(randomHex(8)),
			"x-amz-id-2":       randomHex(32),
		},
		"s3": map[string]any{
			"s3SchemaVersion": "1.0", "configurationId": "byodrop-ingest",
			"bucket": map[string]any{
				"name": o.Bucket, "arn": "arn:aws:s3:::" + o.Bucket,
				"ownerIdentity": map[string]any{"principalId": "A3NL1KOZZKEXAMPLE"},
			},
			"object": object,
		},
	}
}

// EncodeKey encodes a key as S3 notifications do: each segment like a form
// value (a space becomes '+', '+' becomes %2B), '/' kept.
func EncodeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.QueryEscape(p)
	}
	return strings.Join(parts, "/")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// ReportKey is where the report of the dropped object key lives.
func (e *Env) ReportKey(key string) string {
	return e.Settings.StatePrefix + "reports/" + key + ".json"
}

// Report reads the report of the dropped object key from the state bucket.
func (e *Env) Report(ctx context.Context, key string) (*review.Report, error) {
	out, err := e.S3Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(StateBucket), Key: aws.String(e.ReportKey(key))})
	if err != nil {
		return nil, fmt.Errorf("report of %s: %w", key, err)
	}
	defer out.Body.Close()
	var r review.Report
	if err := json.NewDecoder(out.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("report of %s (s3://%s/%s): %w", key, StateBucket, e.ReportKey(key), err)
	}
	return &r, nil
}

// Reports reads every report in the state bucket, in key order.
func (e *Env) Reports(ctx context.Context) ([]review.Report, error) {
	prefix := e.Settings.StatePrefix + "reports/"
	var reports []review.Report
	p := s3.NewListObjectsV2Paginator(e.S3Client, &s3.ListObjectsV2Input{Bucket: aws.String(StateBucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing reports in s3://%s/%s: %w", StateBucket, prefix, err)
		}
		for _, obj := range page.Contents {
			k := aws.ToString(obj.Key)
			dropped, ok := strings.CutSuffix(strings.TrimPrefix(k, prefix), ".json")
			if !ok {
				continue
			}
			r, err := e.Report(ctx, dropped)
			if err != nil {
				return nil, err
			}
			reports = append(reports, *r)
		}
	}
	return reports, nil
}
