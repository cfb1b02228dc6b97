package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/byodrop/byodrop/internal/review"
)

// maxDocument bounds what Get reads: ledger documents are small, and a
// bigger object under the state prefix is not one of ours.
const maxDocument = 16 << 20

// S3 is a Store on one bucket of Amazon S3 (or an S3-compatible server).
type S3 struct {
	Client *s3.Client
	Bucket string
}

// Get implements Store.
func (b *S3) Get(ctx context.Context, key string) (Object, error) {
	out, err := b.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.Bucket, Key: &key})
	if err != nil {
		return Object{}, b.Wrap("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxDocument+1))
	if err != nil {
		return Object{}, b.Wrap("get", key, err)
	}
	if len(data) > maxDocument {
		return Object{}, review.Errorf(review.Invalid, "s3://%s/%s: ledger document larger than %d bytes", b.Bucket, key, maxDocument)
	}
	return Object{Data: data, ETag: aws.ToString(out.ETag)}, nil
}

// Create implements Store.
func (b *S3) Create(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, "create", key, data, func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
}

// Replace implements Store.
func (b *S3) Replace(ctx context.Context, key string, data []byte, etag string) (string, error) {
	return b.put(ctx, "replace", key, data, func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) })
}

// ReplaceTagged implements Tagger.
func (b *S3) ReplaceTagged(ctx context.Context, key string, data []byte, etag, tagging string) (string, error) {
	return b.put(ctx, "replace", key, data, func(in *s3.PutObjectInput) {
		in.IfMatch = aws.String(etag)
		in.Tagging = aws.String(tagging)
	})
}

// Put implements Store.
func (b *S3) Put(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, "put", key, data, nil)
}

func (b *S3) put(ctx context.Context, op, key string, data []byte, cond func(*s3.PutObjectInput)) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:        &b.Bucket,
		Key:           &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/json"),
	}
	if cond != nil {
		cond(in)
	}
	out, err := b.Client.PutObject(ctx, in)
	if err != nil {
		return "", b.Wrap(op, key, err)
	}
	return aws.ToString(out.ETag), nil
}

// Delete implements Store.
func (b *S3) Delete(ctx context.Context, key string) error {
	_, err := b.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.Bucket, Key: &key})
	if err != nil && !errors.Is(b.Wrap("delete", key, err), ErrNotFound) {
		return b.Wrap("delete", key, err)
	}
	return nil
}

// List implements Store.
func (b *S3) List(ctx context.Context, prefix string) ([]string, error) {
	entries, err := b.ListEntries(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys, nil
}

// ListEntries implements Store.
func (b *S3) ListEntries(ctx context.Context, prefix string) ([]Entry, error) {
	var out []Entry
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: &b.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.Wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, Entry{Key: aws.ToString(o.Key), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// Wrap turns an S3 error into ErrNotFound, ErrPrecondition or an error whose
// kind says whether a retry can help, naming the operation and the object.
func (b *S3) Wrap(op, key string, err error) error {
	where := fmt.Sprintf("s3 %s s3://%s/%s", op, b.Bucket, key)
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch {
	case status == http.StatusNotFound || code == "NoSuchKey" || code == "NotFound" || code == "NoSuchVersion":
		return fmt.Errorf("%s: %w", where, ErrNotFound)
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed" || code == "ConditionalRequestConflict":
		return fmt.Errorf("%s: %w", where, ErrPrecondition)
	case status == http.StatusConflict:
		// S3 answers 409 ConditionalRequestConflict when two conditional
		// writes race; the loser re-reads like after a 412.
		return fmt.Errorf("%s: %w", where, ErrPrecondition)
	default:
		// Everything else, a missing bucket or a denied access included, is
		// returned for a retry: a configuration fixed later must find the
		// event in the failure queue, not lost to a rejection.
		return &review.Error{Kind: review.Transient, Msg: where + ": " + err.Error(), Err: err}
	}
}
