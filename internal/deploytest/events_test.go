package deploytest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/csvcheck"
	"github.com/byodrop/byodrop/internal/dropkey"
)

// The review target of every sample key (events/README.md).
const (
	sampleCatalog    = "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c"
	sampleResource   = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	sampleDefinition = "11111111-2222-4333-8444-555555555555"
	sampleInstance   = "99999999-8888-4777-8666-555555555555"
)

// s3Events are the S3 put events, the file each key must decode to, and the
// data file whose size and ETag the event carries.
var s3Events = []struct{ event, file, data string }{
	{"s3-put.json", "badge-access.csv", "badge-access.csv"},
	{"s3-put-duplicate.json", "badge-access.csv", "badge-access.csv"},
	{"s3-put-encoded.json", "Badge access (2026) + extra.csv", "badge-access.csv"},
	{"s3-put-bad-principal.json", "bad-principal.csv", "bad-principal.csv"},
	{"s3-put-standing.json", "badge-access.csv", "badge-access.csv"},
}

func readEvent(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, filepath.Join("events", name)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEventsAreKnownAndValidJSON(t *testing.T) {
	files, err := filepath.Glob(repoPath(t, "events/*.json"))
	if err != nil {
		t.Fatal(err)
	}
	known := []string{"env.json", "s3-test-event.json", "scheduled.json"}
	for _, e := range s3Events {
		known = append(known, e.event)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if !slices.Contains(known, name) {
			t.Errorf("events/%s is not covered by a test: add it to this package's tables and to events/README.md", name)
		}
		data, _ := os.ReadFile(f)
		if !json.Valid(data) {
			t.Errorf("events/%s is not valid JSON", name)
		}
	}
	readme, err := os.ReadFile(repoPath(t, "events/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range known {
		if !bytes.Contains(readme, []byte("`"+name+"`")) {
			t.Errorf("events/README.md does not describe %s", name)
		}
	}
}

func TestS3PutEventsHaveTheRealShape(t *testing.T) {
	for _, tt := range s3Events {
		t.Run(tt.event, func(t *testing.T) {
			raw := readEvent(t, tt.event)
			var ev events.S3Event
			dec := json.NewDecoder(bytes.NewReader(raw))
			if err := dec.Decode(&ev); err != nil {
				t.Fatal(err)
			}
			if len(ev.Records) != 1 {
				t.Fatalf("%d records, want 1", len(ev.Records))
			}
			r := ev.Records[0]
			for field, got := range map[string]string{
				"eventVersion": r.EventVersion, "eventSource": r.EventSource, "eventName": r.EventName,
				"s3SchemaVersion": r.S3.SchemaVersion, "bucket.arn": r.S3.Bucket.Arn,
			} {
				want := map[string]string{
					"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
					"s3SchemaVersion": "1.0", "bucket.arn": "arn:aws:s3:::" + r.S3.Bucket.Name,
				}[field]
				if got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			if r.EventTime.IsZero() || r.AWSRegion == "" || r.S3.Object.VersionID == "" || r.S3.Object.Sequencer == "" {
				t.Errorf("record lacks eventTime, awsRegion, versionId or sequencer: %+v", r)
			}

			key, err := dropkey.DecodeEventKey(r.S3.Object.Key)
			if err != nil {
				t.Fatal(err)
			}
			if key != r.S3.Object.URLDecodedKey && r.S3.Object.URLDecodedKey != "" {
				t.Errorf("decoded key %q differs from aws-lambda-go's URLDecodedKey %q", key, r.S3.Object.URLDecodedKey)
			}
			if strings.HasPrefix(key, "standing/") {
				// A standing file under the route badges of env.json.
				routes := dropkey.Routes{"badges": {CatalogID: sampleCatalog, ResourceID: sampleResource, Source: "Badge system"}}
				st, err := dropkey.ParseStanding(key, "standing/", routes)
				if err != nil {
					t.Fatalf("key %q: %v", key, err)
				}
				if st.File != tt.file || st.CatalogID != sampleCatalog || st.ResourceID != sampleResource {
					t.Errorf("standing key %+v, want %s of the sample catalog and resource", st, tt.file)
				}
			} else {
				parsed, err := dropkey.Parse(key, "incoming/", nil)
				if err != nil {
					t.Fatalf("key %q: %v", key, err)
				}
				if parsed.File != tt.file {
					t.Errorf("file %q, want %q", parsed.File, tt.file)
				}
				tg := parsed.Target
				if got := []string{tg.CatalogID, tg.ResourceID, tg.ReviewDefinitionID, tg.ReviewInstanceID}; !slices.Equal(got, []string{sampleCatalog, sampleResource, sampleDefinition, sampleInstance}) {
					t.Errorf("target %v, want the sample ids", got)
				}
			}

			data, err := os.ReadFile(repoPath(t, filepath.Join("events", "data", tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			sum := md5.Sum(data)
			if r.S3.Object.Size != int64(len(data)) || r.S3.Object.ETag != hex.EncodeToString(sum[:]) {
				t.Errorf("size %d etag %s, want %d and %x (the MD5 of events/data/%s)", r.S3.Object.Size, r.S3.Object.ETag, len(data), sum, tt.data)
			}
		})
	}
}

func TestDuplicateEventRepeatsThePutEvent(t *testing.T) {
	var a, b any
	if err := json.Unmarshal(readEvent(t, "s3-put.json"), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readEvent(t, "s3-put-duplicate.json"), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("s3-put-duplicate.json differs from s3-put.json; a repeated delivery is the identical record")
	}
}

func TestS3TestEventHasNoRecords(t *testing.T) {
	var ev map[string]any
	if err := json.Unmarshal(readEvent(t, "s3-test-event.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["Event"] != "s3:TestEvent" || ev["Service"] != "Amazon S3" {
		t.Errorf("Service %v Event %v, want Amazon S3 and s3:TestEvent", ev["Service"], ev["Event"])
	}
	for _, k := range []string{"Time", "Bucket", "RequestId", "HostId"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("no %s field", k)
		}
	}
	if _, ok := ev["Records"]; ok {
		t.Error("a test event has no Records")
	}
}

func TestScheduledEventDecodes(t *testing.T) {
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(readEvent(t, "scheduled.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.DetailType != "Scheduled Event" || ev.Time.IsZero() || len(ev.Resources) != 1 {
		t.Errorf("scheduled event %+v: want detail-type Scheduled Event, a time and the schedule ARN", ev)
	}
}

func TestEnvJSONIsValidForEveryFunction(t *testing.T) {
	var env map[string]map[string]string
	if err := json.Unmarshal(readEvent(t, "env.json"), &env); err != nil {
		t.Fatalf("env.json is not {\"Function\": {\"NAME\": \"value\"}} as sam local invoke --env-vars reads: %v", err)
	}
	for _, fn := range functions {
		vars, ok := env[fn]
		if !ok {
			t.Errorf("env.json has no %s section", fn)
			continue
		}
		s, err := config.FromEnv(func(k string) string { return vars[k] })
		if err != nil {
			t.Errorf("%s: settings refused: %v", fn, err)
			continue
		}
		if _, ok := s.Routes["badges"]; !ok {
			t.Errorf("%s: ROUTES has no route badges (events/README.md)", fn)
		}
		// The events' drop bucket is versioned; the ledger needs an
		// unversioned one locally (the testenv package says why).
		if s.StateBucket == "" || s.StateBucket == "byodrop-local" {
			t.Errorf("%s: STATE_BUCKET %q: want its own unversioned bucket locally", fn, s.StateBucket)
		}
		for _, k := range []string{"AWS_ENDPOINT_URL_S3", "GRAPH_ENDPOINT", "AZURE_AUTHORITY_HOST"} {
			if !strings.Contains(vars[k], "127.0.0.1") {
				t.Errorf("%s: %s = %q, want a loopback placeholder", fn, k, vars[k])
			}
		}
	}
}

func TestSampleCSVs(t *testing.T) {
	tests := []struct {
		file     string
		rows     int64
		line     int
		column   string
		contains string
	}{
		{file: "badge-access.csv", rows: 5},
		{file: "bad-principal.csv", line: 4, column: "PrincipalId", contains: "bob"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(repoPath(t, filepath.Join("events", "data", tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := csvcheck.Validate(f, tt.file)
			if tt.line == 0 {
				if err != nil || res.Rows != tt.rows || res.Format == nil || res.Format.Name != "entra-template" {
					t.Fatalf("got %+v, %v; want %d rows of entra-template", res, err, tt.rows)
				}
				return
			}
			var ce *csvcheck.Error
			if !errors.As(err, &ce) || ce.Line != tt.line || ce.Column != tt.column || !strings.Contains(ce.Message, tt.contains) {
				t.Fatalf("got %v, want line %d column %s mentioning %q", err, tt.line, tt.column, tt.contains)
			}
		})
	}
}
