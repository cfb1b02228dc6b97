// Package harness assembles a whole byodrop world for tests and tools: a
// real S3-compatible server (versitygw) with a drop bucket and a state
// bucket, the Graph emulator, a Graph client with Entra tokens from the
// emulator, and the ingest and finalize handlers wired as in production.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/discover"
	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/entra"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/ingest"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/standing"
	"github.com/byodrop/byodrop/internal/testenv"
)

// Sample ids used by tests and examples.
const (
	Catalog    = "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c"
	Resource   = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	Definition = "11111111-2222-4333-8444-555555555555"
	Instance   = "99999999-8888-4777-8666-555555555555"
)

// Options shape a World.
type Options struct {
	// Profile is the GRAPH_API profile (default v1.0).
	Profile string
	// Unversioned makes the drop bucket unversioned (default versioned, as
	// in the template), so objects are pinned by ETag instead of VersionId.
	Unversioned bool
	// Emulator options; zero means graphemu defaults.
	Emulator graphemu.Options
	// Log receives the handlers' logs (default: discarded).
	Log io.Writer
	// Retry overrides the Graph client's retry policy (default: fast).
	Retry graph.RetryPolicy
	// Routes is the ROUTES setting.
	Routes string
}

// World is one assembled byodrop.
type World struct {
	T        testing.TB
	S3       *testenv.S3Server
	S3Client *s3.Client
	Emu      *graphemu.Server
	Drop     string // the drop bucket
	State    string // the state bucket
	Settings config.Settings
	Graph    *graph.Client
	Ledger   *ledger.Ledger
	Ingest   *ingest.Handler
	Log      *slog.Logger
}

// New assembles a world for t; everything stops when t ends.
func New(t testing.TB, opts Options) *World {
	t.Helper()
	srv := testenv.SharedS3(t)
	w := &World{T: t, S3: srv, S3Client: srv.Client()}
	w.Drop = srv.NewBucket(t, !opts.Unversioned)
	w.State = srv.NewBucket(t, false)

	eo := opts.Emulator
	if eo.TenantID == "" {
		def := graphemu.DefaultOptions()
		eo.TenantID, eo.ClientID, eo.ClientSecret = def.TenantID, def.ClientID, def.ClientSecret
	}
	emu, err := graphemu.Start(eo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	w.Emu = emu

	profile := opts.Profile
	if profile == "" {
		profile = "v1.0"
	}
	env := map[string]string{
		"AZURE_TENANT_ID":      eo.TenantID,
		"AZURE_CLIENT_ID":      eo.ClientID,
		"AZURE_CLIENT_SECRET":  eo.ClientSecret,
		"AZURE_AUTHORITY_HOST": emu.AuthorityHost(),
		"GRAPH_ENDPOINT":       emu.URL(),
		"GRAPH_API":            profile,
		"STATE_BUCKET":         w.State,
		"DROP_BUCKET":          w.Drop,
		"ROUTES":               opts.Routes,
	}
	w.Settings, err = config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	p, err := graph.ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := entra.NewSecretSource(entra.Options{
		TenantID: eo.TenantID, ClientID: eo.ClientID, ClientSecret: eo.ClientSecret,
		AuthorityHost: emu.AuthorityHost(), HTTPClient: emu.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	retry := opts.Retry
	if retry.MaxAttempts == 0 {
		retry = graph.RetryPolicy{MaxAttempts: 5, BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	}
	w.Graph, err = graph.New(graph.Config{Endpoint: emu.URL(), Profile: p, Tokens: tokens, HTTPClient: emu.Client(), Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	out := opts.Log
	if out == nil {
		out = io.Discard
	}
	w.Log = slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.Ledger = ledger.New(&blob.S3{Client: w.S3Client, Bucket: w.State}, w.Settings.StatePrefix)
	w.Ingest = ingest.New(w.Settings, w.Graph, w.S3Client, w.Log)
	return w
}

// Target is the review the sample ids name.
func Target() review.Target {
	return review.Target{CatalogID: Catalog, ResourceID: Resource, ReviewDefinitionID: Definition, ReviewInstanceID: Instance}
}

// Key returns the canonical drop key of file for the sample review.
func Key(file string) string {
	return KeyFor(Target(), file)
}

// KeyFor returns the canonical drop key of file for review t.
func KeyFor(t review.Target, file string) string {
	return "incoming/" + t.CatalogID + "/" + t.ResourceID + "/" + t.ReviewDefinitionID + "/" + t.ReviewInstanceID + "/" + file
}

// Put stores body at key in the drop bucket and returns the S3 event record
// that the bucket's notification would carry (key URL-encoded as S3 does).
func (w *World) Put(key string, body []byte) events.S3EventRecord {
	w.T.Helper()
	out, err := w.S3Client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &w.Drop, Key: &key, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		w.T.Fatalf("put %s: %v", key, err)
	}
	return Record(w.Drop, key, int64(len(body)), strings.Trim(aws.ToString(out.ETag), `"`), aws.ToString(out.VersionId))
}

// PutStream stores size bytes from r at key (for large generated files).
func (w *World) PutStream(key string, r io.Reader, size int64) events.S3EventRecord {
	w.T.Helper()
	out, err := w.S3Client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &w.Drop, Key: &key, Body: r, ContentLength: aws.Int64(size),
	})
	if err != nil {
		w.T.Fatalf("put %s: %v", key, err)
	}
	return Record(w.Drop, key, size, strings.Trim(aws.ToString(out.ETag), `"`), aws.ToString(out.VersionId))
}

// Record builds an ObjectCreated:Put record in the shape S3 sends.
func Record(bucket, key string, size int64, etag, version string) events.S3EventRecord {
	return events.S3EventRecord{
		EventVersion: "2.1", EventSource: "aws:s3", AWSRegion: "us-east-1",
		EventTime: time.Now().UTC(), EventName: "ObjectCreated:Put",
		S3: events.S3Entity{
			SchemaVersion: "1.0", ConfigurationID: "byodrop-ingest",
			Bucket: events.S3Bucket{Name: bucket, Arn: "arn:aws:s3:::" + bucket},
			Object: events.S3Object{Key: EncodeKey(key), Size: size, ETag: etag, VersionID: version, Sequencer: fmt.Sprintf("%016X", time.Now().UnixNano())},
		},
	}
}

// EncodeKey encodes a key the way S3 event notifications do: like a form
// value, so a space becomes '+' and '+' becomes %2B; '/' stays.
func EncodeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.QueryEscape(p)
	}
	return strings.Join(parts, "/")
}

// Payload wraps records in an S3 event, as Lambda receives it.
func Payload(recs ...events.S3EventRecord) json.RawMessage {
	data, err := json.Marshal(events.S3Event{Records: recs})
	if err != nil {
		panic(err)
	}
	return data
}

// IngestRecords invokes the ingest handler with one event of recs.
func (w *World) IngestRecords(ctx context.Context, recs ...events.S3EventRecord) error {
	return w.Ingest.Handle(ctx, Payload(recs...))
}

// Report reads the report of key; it fails the test if there is none.
func (w *World) Report(key string) review.Report {
	w.T.Helper()
	r, err := w.Ledger.Report(context.Background(), key)
	if err != nil {
		w.T.Fatalf("report of %s: %v", key, err)
	}
	return *r
}

// Closer returns a finalizer for this world, named owner.
func (w *World) Closer(owner string) *finalize.Closer {
	p := w.Graph.Profile()
	return &finalize.Closer{Sessions: lifecycle.Sessions{
		Graph: w.Graph, Ledger: w.Ledger, Log: w.Log, Owner: owner,
		Policy:       review.Policy{QuietPeriod: w.Settings.QuietPeriod, CloseMargin: w.Settings.CloseMargin},
		UploadWindow: w.Settings.UploadWindow, Profile: p.Name, CanList: p.CanList,
	}}
}

// Uploads counts the emulator's uploadFile requests that were answered 200.
func (w *World) Uploads() int {
	n := 0
	for _, r := range w.Emu.Journal() {
		if r.Op == "upload" && r.Status == 200 {
			n++
		}
	}
	return n
}

// Opener returns an UploadFile body factory over data.
func Opener(data []byte) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// RefOf is the claim reference of an event's object version, as ingest
// makes it (for a key that parses; the canonical layout is assumed).
func RefOf(rec events.S3EventRecord) claim.Ref {
	key, err := dropkey.DecodeEventKey(rec.S3.Object.Key)
	if err != nil {
		key = rec.S3.Object.Key
	}
	ref := claim.Ref{Key: key, VersionID: rec.S3.Object.VersionID, ETag: strings.Trim(rec.S3.Object.ETag, `"`)}
	if parsed, err := dropkey.Parse(key, "incoming/", nil); err == nil {
		ref.Session = parsed.Target.SessionKey()
	}
	return ref
}

// FunctionEnv is the environment of a real bootstrap (under the runtime
// interface emulator) wired to this world: its S3 server, state bucket,
// Graph emulator and Entra app, on the v1.0 profile.
func (w *World) FunctionEnv() []string {
	o := w.Emu.Options()
	return append(w.S3.Env(),
		"AZURE_TENANT_ID="+o.TenantID, "AZURE_CLIENT_ID="+o.ClientID, "AZURE_CLIENT_SECRET="+o.ClientSecret,
		"AZURE_AUTHORITY_HOST="+w.Emu.AuthorityHost(), "GRAPH_ENDPOINT="+w.Emu.URL(), "GRAPH_API=v1.0",
		"STATE_BUCKET="+w.State, "SSL_CERT_FILE="+w.Emu.CAFile(),
	)
}

// Standing returns the standing data store of this world, reading the drop
// bucket through s3c (nil: the world's client).
func (w *World) Standing(s3c *s3.Client) *standing.Store {
	if s3c == nil {
		s3c = w.S3Client
	}
	return standing.New(standing.Config{S3: s3c, Ledger: w.ledgerOn(s3c), Prefix: w.Settings.StandingPrefix,
		Routes: w.Settings.Routes, Log: w.Log})
}

func (w *World) ledgerOn(s3c *s3.Client) *ledger.Ledger {
	if s3c == nil || s3c == w.S3Client {
		return w.Ledger
	}
	return ledger.New(&blob.S3{Client: s3c, Bucket: w.State}, w.Settings.StatePrefix)
}

// Discoverer returns the discover function of this world, wired as in
// production, on the Graph client g (nil: the world's) and the S3 client
// s3c (nil: the world's).
func (w *World) Discoverer(g *graph.Client, s3c *s3.Client) *discover.Runner {
	w.T.Helper()
	if g == nil {
		g = w.Graph
	}
	rv, err := g.Reviews(w.Settings.ReviewsAPI)
	if err != nil {
		w.T.Fatal(err)
	}
	p := g.Profile()
	return &discover.Runner{
		Reviews: rv, Graph: g, Standing: w.Standing(s3c), Ledger: w.ledgerOn(s3c), Bucket: w.Settings.DropBucket,
		Policy:       review.Policy{QuietPeriod: w.Settings.QuietPeriod, CloseMargin: w.Settings.CloseMargin},
		UploadWindow: w.Settings.UploadWindow, Profile: p.Name, CanList: p.CanList, NeedsSource: p.NeedsSource,
		Log: w.Log,
	}
}

// PutStanding stores body at key (under standing/) in the drop bucket and
// hands the object's event to the ingest handler, as the bucket's
// notification would; it returns the event record.
func (w *World) PutStanding(key string, body []byte) events.S3EventRecord {
	w.T.Helper()
	rec := w.Put(key, body)
	if err := w.IngestRecords(context.Background(), rec); err != nil {
		w.T.Fatalf("standing drop %s: %v", key, err)
	}
	return rec
}
