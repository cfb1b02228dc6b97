package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Object names one version of an S3 object.
type Object struct {
	Bucket, Key, VersionID, ETag string
	Size                         int64
}

// PlainCopy is the baseline ingest is measured against: the object read
// from S3 and streamed into an uploadFile URL as the one multipart part,
// with the framing byodrop uses and nothing else in between (no
// validation, no ledger). It returns the bytes of the file sent.
func PlainCopy(ctx context.Context, s3c *s3.Client, obj Object, hc *http.Client, uploadURL, token, name string) (int64, error) {
	in := &s3.GetObjectInput{Bucket: &obj.Bucket, Key: &obj.Key}
	if obj.VersionID != "" {
		in.VersionId = aws.String(obj.VersionID)
	}
	out, err := s3c.GetObject(ctx, in)
	if err != nil {
		return 0, fmt.Errorf("plain copy: get s3://%s/%s: %w", obj.Bucket, obj.Key, err)
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	boundary := "bench-" + hex.EncodeToString(rnd[:])
	prefix := "--" + boundary + "\r\n" +
		"Content-Disposition: " + multipart.FileContentDisposition("file", name) + "\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
	suffix := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(prefix), out.Body, strings.NewReader(suffix))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uploadURL, body)
	if err != nil {
		return 0, fmt.Errorf("plain copy: %w", err)
	}
	req.ContentLength = int64(len(prefix)) + size + int64(len(suffix))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("plain copy: upload: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("plain copy: upload answered %d: %s", resp.StatusCode, answer)
	}
	return size, nil
}
