package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/entra"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/ingest"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

// The buckets of a bench run: the drop bucket is versioned, as in the
// template; the ledger lives in an unversioned state bucket, as in
// `make local` (see internal/local for why).
const (
	dropBucket  = "byodrop-bench"
	stateBucket = "byodrop-bench-state"
	statePrefix = "state/"
)

// Ids of the reviews the bench uploads into; one session each.
const (
	catalogID    = "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c"
	resourceID   = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	definitionID = "11111111-2222-4333-8444-555555555555"
	// ingestReview receives the files ingest uploads.
	ingestReview = "99999999-8888-4777-8666-000000000001"
	// plainReview's session receives the plain copies.
	plainReview = "99999999-8888-4777-8666-000000000002"
	// steadyReview receives the steady-state files.
	steadyReview = "99999999-8888-4777-8666-000000000003"
	// profileReview receives the in-process profiled upload.
	profileReview = "99999999-8888-4777-8666-000000000004"
)

func target(instance string) review.Target {
	return review.Target{CatalogID: catalogID, ResourceID: resourceID, ReviewDefinitionID: definitionID, ReviewInstanceID: instance}
}

func dropKey(instance, file string) string {
	return "incoming/" + catalogID + "/" + resourceID + "/" + definitionID + "/" + instance + "/" + file
}

// world is the running servers of a bench and the clients that reach them.
type world struct {
	s3     *testenv.S3Server
	s3c    *s3.Client // the bench's own, for setting up and reading reports
	emu    *graphemu.Server
	ledger *ledger.Ledger
}

func startWorld(ctx context.Context) (_ *world, err error) {
	w := &world{}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.s3, err = testenv.StartS3(ctx, testenv.S3Options{}); err != nil {
		return nil, err
	}
	w.s3c = w.s3.Client()
	if err := w.s3.CreateBucket(ctx, dropBucket, true); err != nil {
		return nil, err
	}
	if err := w.s3.CreateBucket(ctx, stateBucket, false); err != nil {
		return nil, err
	}
	if w.emu, err = graphemu.Start(graphemu.Options{}); err != nil {
		return nil, err
	}
	w.ledger = ledger.New(&blob.S3{Client: w.s3c, Bucket: stateBucket}, statePrefix)
	return w, nil
}

func (w *world) close() {
	if w.emu != nil {
		w.emu.Close()
	}
	if w.s3 != nil {
		w.s3.Close()
	}
}

// settings are the ingest function's settings (the names of product.md)
// pointing at this world.
func (w *world) settings() map[string]string {
	o := w.emu.Options()
	m := map[string]string{
		"AZURE_TENANT_ID":      o.TenantID,
		"AZURE_CLIENT_ID":      o.ClientID,
		"AZURE_CLIENT_SECRET":  o.ClientSecret,
		"AZURE_AUTHORITY_HOST": w.emu.AuthorityHost(),
		"GRAPH_ENDPOINT":       w.emu.URL(),
		"GRAPH_API":            "v1.0",
		"STATE_BUCKET":         stateBucket,
		"STATE_PREFIX":         statePrefix,
	}
	for _, kv := range w.s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// functionEnv is the bootstrap's environment under the runtime emulator:
// the settings, plus the emulator's CA as SSL_CERT_FILE. With AWSDefault
// the SDK's checksum settings are those it has in AWS, which app.Load
// keeps even for a local server when they are set.
func (w *world) functionEnv(cs Checksums) []string {
	settings := w.settings()
	if cs == AWSDefault {
		settings["AWS_REQUEST_CHECKSUM_CALCULATION"] = "when_supported"
		settings["AWS_RESPONSE_CHECKSUM_VALIDATION"] = "when_supported"
	}
	var env []string
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	return append(env, "SSL_CERT_FILE="+w.emu.CAFile())
}

// s3Client is an S3 client for the plain copies: the bench's own, or with
// AWSDefault one with the SDK's default checksum settings, which validates
// every object it reads against the checksum S3 stored with it.
func (w *world) s3Client(cs Checksums) *s3.Client {
	if cs != AWSDefault {
		return w.s3c
	}
	return s3.New(s3.Options{
		Region:       w.s3.Region,
		BaseEndpoint: aws.String(w.s3.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(w.s3.AccessKey, w.s3.SecretKey, ""),
		// The defaults that s3.NewFromConfig resolves in AWS.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	})
}

// checkChecksums makes sure the server answers a read with the checksum
// the object was stored with: without one, the SDK would have nothing to
// validate and the figures "as in AWS" would measure nothing more.
func (w *world) checkChecksums(ctx context.Context, o Object) error {
	out, err := w.s3Client(AWSDefault).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Key), VersionId: aws.String(o.VersionID)})
	if err != nil {
		return fmt.Errorf("get s3://%s/%s with its checksum: %w", o.Bucket, o.Key, err)
	}
	defer out.Body.Close()
	if _, err := io.Copy(io.Discard, out.Body); err != nil {
		return fmt.Errorf("get s3://%s/%s with its checksum: %w", o.Bucket, o.Key, err)
	}
	if out.ChecksumCRC64NVME == nil {
		return fmt.Errorf("the S3 server answered s3://%s/%s without its CRC64NVME checksum: the SDK would validate nothing", o.Bucket, o.Key)
	}
	return nil
}

// classifyS3 names what a path-style S3 request is about, from its key.
func classifyS3(r *http.Request) string {
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	for _, k := range []struct{ prefix, what string }{
		{"incoming/", "(the object)"},
		{statePrefix + "claims/", "(claim)"},
		{statePrefix + "sessions/", "(session record)"},
		{statePrefix + "open/", "(open-session index)"},
		{statePrefix + "reports/", "(report)"},
	} {
		if strings.HasPrefix(key, k.prefix) {
			return k.what
		}
	}
	return ""
}

// httpClient is the HTTP client app.Load gives the Graph client and the
// token source (a clone of the default transport), trusting the emulator's
// CA as SSL_CERT_FILE makes the bootstrap do.
func (w *world) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: w.emu.CertPool()}
	return &http.Client{Transport: tr}
}

// inProcess is the ingest handler wired as app.Load wires it, run in this
// process, with an S3 client whose requests are counted.
type inProcess struct {
	handler *ingest.Handler
	graph   *graph.Client
	s3      *Counter
}

func (w *world) inProcess() (*inProcess, error) {
	settings, err := config.FromEnv(func(k string) string { return w.settings()[k] })
	if err != nil {
		return nil, err
	}
	profile, err := graph.ProfileByName(settings.GraphAPI)
	if err != nil {
		return nil, err
	}
	hc := w.httpClient()
	tokens, err := entra.NewSecretSource(entra.Options{
		TenantID: settings.TenantID, ClientID: settings.ClientID, ClientSecret: settings.ClientSecret,
		AuthorityHost: settings.AuthorityHost, HTTPClient: hc,
	})
	if err != nil {
		return nil, err
	}
	gc, err := graph.New(graph.Config{Endpoint: settings.GraphEndpoint, Profile: profile, Tokens: tokens, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	counter := &Counter{Base: http.DefaultTransport.(*http.Transport).Clone(), Classify: classifyS3}
	s3c := s3.New(s3.Options{
		Region:                     w.s3.Region,
		BaseEndpoint:               aws.String(w.s3.Endpoint),
		UsePathStyle:               settings.S3PathStyle,
		Credentials:                credentials.NewStaticCredentialsProvider(w.s3.AccessKey, w.s3.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Transport: counter},
	})
	h := ingest.New(settings, gc, s3c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return &inProcess{handler: h, graph: gc, s3: counter}, nil
}

// put stores a generated CSV of size bytes at key in the drop bucket. The
// body is generated while it is sent (and sent unsigned, so that it is not
// generated once more only to be hashed). It is stored with a CRC64NVME
// checksum, the one S3 computes for every object stored without one.
func (w *world) put(ctx context.Context, key string, size int64) (Object, int64, error) {
	c, err := NewCSV(size)
	if err != nil {
		return Object{}, 0, err
	}
	out, err := w.s3c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(dropBucket), Key: aws.String(key), Body: c, ContentLength: aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if err != nil {
		return Object{}, 0, fmt.Errorf("put s3://%s/%s: %w", dropBucket, key, err)
	}
	return Object{Bucket: dropBucket, Key: key, Size: size, VersionID: aws.ToString(out.VersionId),
		ETag: strings.Trim(aws.ToString(out.ETag), `"`)}, c.Rows(), nil
}

// remove deletes the object version for good, so that the disk is given
// back before the next size.
func (w *world) remove(ctx context.Context, o Object) error {
	in := &s3.DeleteObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Key)}
	if o.VersionID != "" {
		in.VersionId = aws.String(o.VersionID)
	}
	if _, err := w.s3c.DeleteObject(ctx, in); err != nil {
		return fmt.Errorf("delete s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	return nil
}

// checkUploaded reads the object's report and fails unless it says the
// whole file was uploaded: a bench of rejected files would measure nothing.
func (w *world) checkUploaded(ctx context.Context, o Object) error {
	r, err := w.ledger.Report(ctx, o.Key)
	if err != nil {
		return fmt.Errorf("report of %s: %w", o.Key, err)
	}
	if r.Status != review.Uploaded || r.Bytes != o.Size || r.VersionID != o.VersionID {
		data, _ := json.Marshal(r)
		return fmt.Errorf("%s was not uploaded whole: report %s", o.Key, data)
	}
	return nil
}

// uploadURL is the uploadFile URL of session id of t (v1.0).
func (w *world) uploadURL(t review.Target, id string) string {
	p, _ := graph.ProfileByName("v1.0")
	return w.emu.URL() + "/" + p.Version + p.CollectionPath(t.CatalogID, t.ResourceID) + "/" + url.PathEscape(id) + "/uploadFile"
}

// event is the S3 notification of o, as Lambda delivers it.
func event(o Object) []byte {
	rec := events.S3EventRecord{
		EventVersion: "2.1", EventSource: "aws:s3", AWSRegion: "us-east-1",
		EventTime: time.Now().UTC(), EventName: "ObjectCreated:Put",
		S3: events.S3Entity{
			SchemaVersion: "1.0", ConfigurationID: "byodrop-ingest",
			Bucket: events.S3Bucket{Name: o.Bucket, Arn: "arn:aws:s3:::" + o.Bucket},
			Object: events.S3Object{Key: encodeKey(o.Key), Size: o.Size, ETag: o.ETag, VersionID: o.VersionID,
				Sequencer: fmt.Sprintf("%016X", time.Now().UnixNano())},
		},
	}
	data, err := json.Marshal(events.S3Event{Records: []events.S3EventRecord{rec}})
	if err != nil {
		panic(err) // a fixed struct of strings always marshals
	}
	return data
}

// encodeKey encodes a key as S3 notifications do (form encoding per segment).
func encodeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.QueryEscape(p)
	}
	return strings.Join(parts, "/")
}
