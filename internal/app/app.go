// Package app is byodrop's composition root: it reads the settings once at
// start-up and builds the adapters (S3, Graph, Entra tokens, logs) that the
// functions' handlers are made of. A bad setting stops the start-up with a
// message naming it, never an invocation half-way.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/discover"
	"github.com/byodrop/byodrop/internal/entra"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ingest"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/metrics"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/standing"
)

// App holds what both functions are built from.
type App struct {
	Settings config.Settings
	Profile  graph.Profile
	Graph    *graph.Client
	S3       *s3.Client
	AWS      aws.Config
	Log      *slog.Logger
	// Metrics collects an invocation's metrics; each function flushes them
	// to standard output (CloudWatch's embedded metric format) when an
	// invocation ends.
	Metrics *metrics.Recorder
}

// Load reads the settings from the environment and builds the adapters.
func Load(ctx context.Context) (*App, error) {
	log := lambdacontext.NewLogger()
	rec := metrics.New(os.Stdout, lambdacontext.FunctionName)
	settings, err := config.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	profile, err := graph.ProfileByName(settings.GraphAPI)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = settings.S3PathStyle
		if settings.S3Endpoint != "" {
			// Local S3-compatible servers answer without the checksums that
			// newer SDKs ask for by default, unless the SDK's own settings
			// (AWS_REQUEST_CHECKSUM_CALCULATION,
			// AWS_RESPONSE_CHECKSUM_VALIDATION) ask for them: the bench
			// measures the AWS defaults against a local server that way.
			if awsCfg.RequestChecksumCalculation == aws.RequestChecksumCalculationUnset {
				o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			}
			if awsCfg.ResponseChecksumValidation == aws.ResponseChecksumValidationUnset {
				o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
			}
		}
	})
	if err := LoadRoutesObject(ctx, s3c, &settings); err != nil {
		return nil, err
	}
	// GRAPH_CREDENTIAL picks the mode: a client secret (environment or
	// Secrets Manager), a certificate, or secretless AWS federation.
	tokens, err := entra.FromSettings(settings, awsCfg, nil)
	if err != nil {
		return nil, err
	}
	gc, err := graph.New(graph.Config{
		Endpoint: settings.GraphEndpoint,
		Profile:  profile,
		Tokens:   tokens,
		OnRetry: func(op string, attempt int, err error, wait time.Duration) {
			rec.GraphRetry()
			log.Warn("graph call retried", "op", op, "attempt", attempt, "wait_ms", wait.Milliseconds(), "error", err.Error())
		},
	})
	if err != nil {
		return nil, err
	}
	return &App{Settings: settings, Profile: profile, Graph: gc, S3: s3c, AWS: awsCfg, Log: log, Metrics: rec}, nil
}

// maxRoutesObject bounds ROUTES_OBJECT: some 6,000 routes.
const maxRoutesObject = 1 << 20

// LoadRoutesObject reads the ROUTES_OBJECT of s, when it has one, from its
// state bucket and adds its routes to s: once, at start-up, so that a bad
// or missing object stops the function from starting, naming the setting.
func LoadRoutesObject(ctx context.Context, s3c *s3.Client, s *config.Settings) error {
	if s.RoutesObject == "" {
		return nil
	}
	where := "s3://" + s.StateBucket + "/" + s.RoutesObject
	out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.StateBucket, Key: &s.RoutesObject})
	if err != nil {
		return fmt.Errorf("%s: reading %s: %w", config.EnvRoutesObject, where, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxRoutesObject+1))
	if err != nil {
		return fmt.Errorf("%s: reading %s: %w", config.EnvRoutesObject, where, err)
	}
	if len(data) > maxRoutesObject {
		return fmt.Errorf("%s: %s is larger than %d bytes", config.EnvRoutesObject, where, maxRoutesObject)
	}
	return s.AddRoutes(where, data)
}

// Ingest returns the ingest function's handler.
func (a *App) Ingest() *IngestFunction {
	h := ingest.New(a.Settings, a.Graph, a.S3, a.Log)
	h.Metrics = a.Metrics
	return &IngestFunction{Handler: h, metrics: a.Metrics}
}

// IngestFunction is the ingest handler with its metrics flushed at the end
// of every invocation, whatever its outcome.
type IngestFunction struct {
	*ingest.Handler
	metrics *metrics.Recorder
}

// Handle handles one invocation (see ingest.Handler.Invoke) and answers
// the outcome of each record.
func (f *IngestFunction) Handle(ctx context.Context, payload json.RawMessage) (ingest.Result, error) {
	defer flush(ctx, f.metrics, f.Handler.Log)
	return f.Handler.Invoke(ctx, payload)
}

// Finalize returns the finalize function's handler. The finalizer has no
// event to take a bucket from, so STATE_BUCKET is required.
func (a *App) Finalize() (func(ctx context.Context, _ finalize.Input) (finalize.Summary, error), error) {
	if a.Settings.StateBucket == "" {
		return nil, fmt.Errorf("STATE_BUCKET: required by the finalizer (the bucket that holds the ledger)")
	}
	return func(ctx context.Context, _ finalize.Input) (finalize.Summary, error) {
		led := ledger.New(&blob.S3{Client: a.S3, Bucket: a.Settings.StateBucket}, a.Settings.StatePrefix)
		c := &finalize.Closer{Sessions: lifecycle.Sessions{
			Graph: a.Graph, Ledger: led, Log: a.Log, Owner: owner(ctx),
			Policy:       review.Policy{QuietPeriod: a.Settings.QuietPeriod, CloseMargin: a.Settings.CloseMargin},
			UploadWindow: a.Settings.UploadWindow, Profile: a.Profile.Name, CanList: a.Profile.CanList,
		}}
		defer flush(ctx, a.Metrics, a.Log)
		s, err := c.Run(ctx)
		a.Log.InfoContext(ctx, "finalize run", "summary", s)
		a.Metrics.Finalized(s)
		return s, err
	}, nil
}

// Discover returns the discover function's handler. It gets no event
// naming a bucket, so DROP_BUCKET (default STATE_BUCKET) is required.
func (a *App) Discover() (func(ctx context.Context, _ finalize.Input) (discover.Summary, error), error) {
	if a.Settings.DropBucket == "" {
		return nil, fmt.Errorf("DROP_BUCKET: required by discovery (the bucket that holds the standing data), or STATE_BUCKET when it is the same")
	}
	if a.Settings.StateBucket == "" {
		return nil, fmt.Errorf("STATE_BUCKET: required by discovery (the bucket that holds the ledger)")
	}
	reviews, err := a.Graph.Reviews(a.Settings.ReviewsAPI)
	if err != nil {
		return nil, err
	}
	led := ledger.New(&blob.S3{Client: a.S3, Bucket: a.Settings.StateBucket}, a.Settings.StatePrefix)
	r := &discover.Runner{
		Reviews: reviews, Graph: a.Graph, Ledger: led, Bucket: a.Settings.DropBucket,
		Standing: standing.New(standing.Config{S3: a.S3, Ledger: led, Prefix: a.Settings.StandingPrefix,
			Routes: a.Settings.Routes, Log: a.Log}),
		Policy:       review.Policy{QuietPeriod: a.Settings.QuietPeriod, CloseMargin: a.Settings.CloseMargin},
		UploadWindow: a.Settings.UploadWindow, Profile: a.Profile.Name, CanList: a.Profile.CanList,
		NeedsSource: a.Profile.NeedsSource, Log: a.Log, Metrics: a.Metrics,
	}
	return func(ctx context.Context, _ finalize.Input) (discover.Summary, error) {
		defer flush(ctx, a.Metrics, a.Log)
		s, err := r.Run(ctx)
		a.Log.InfoContext(ctx, "discover run", "summary", s)
		a.Metrics.Discovered(s)
		return s, err
	}, nil
}

// flush writes the invocation's metrics; losing them is logged, never an
// invocation's failure.
func flush(ctx context.Context, rec *metrics.Recorder, log *slog.Logger) {
	if err := rec.Flush(); err != nil && log != nil {
		log.WarnContext(ctx, "metrics lost", "error", err.Error())
	}
}

func owner(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	return fmt.Sprintf("local-%d", time.Now().UnixNano())
}
