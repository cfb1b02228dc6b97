package local_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/local"
	"github.com/byodrop/byodrop/internal/review"
)

func TestPutEventHasTheShapeS3Sends(t *testing.T) {
	tests := []struct {
		name        string
		obj         local.Object
		wantEncoded string
	}{
		{
			name:        "versioned bucket, plain key",
			obj:         local.Object{Bucket: "b", Key: "incoming/r/a.csv", Size: 12, ETag: "e1", VersionID: "v1"},
			wantEncoded: "incoming/r/a.csv",
		},
		{
			name:        "spaces, plus and parentheses are form-encoded per segment",
			obj:         local.Object{Bucket: "b", Key: "incoming/r/Badge access (2026) + extra.csv", Size: 3, ETag: "e2"},
			wantEncoded: "incoming/r/Badge+access+%282026%29+%2B+extra.csv",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := local.PutEvent(tt.obj)
			var raw struct {
				Records []struct {
					EventName string `json:"eventName"`
					S3        struct {
						Object map[string]any `json:"object"`
					} `json:"s3"`
				}
			}
			if err := json.Unmarshal(data, &raw); err != nil || len(raw.Records) != 1 {
				t.Fatalf("event %s: %v", data, err)
			}
			obj := raw.Records[0].S3.Object
			if obj["key"] != tt.wantEncoded {
				t.Errorf("key %q, want %q", obj["key"], tt.wantEncoded)
			}
			if _, ok := obj["urlDecodedKey"]; ok {
				t.Error("the record has urlDecodedKey, which S3 never sends")
			}
			if _, ok := obj["versionId"]; ok != (tt.obj.VersionID != "") {
				t.Errorf("versionId present: %t, want it only for a versioned object", ok)
			}
			var ev events.S3Event
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			r := ev.Records[0]
			if r.EventName != "ObjectCreated:Put" || r.EventSource != "aws:s3" || r.S3.Bucket.Name != tt.obj.Bucket {
				t.Errorf("record %+v", r)
			}
			o := r.S3.Object
			if o.URLDecodedKey != tt.obj.Key || o.Size != tt.obj.Size || o.ETag != tt.obj.ETag || o.VersionID != tt.obj.VersionID {
				t.Errorf("object %+v, want the key decoded back to %q and size, eTag, version of %+v", o, tt.obj.Key, tt.obj)
			}
		})
	}
}

func TestEnvFileLayersParametersFunctionLiveAndOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env.json")
	content := `{
		"Parameters": {"GRAPH_API": "beta", "QUIET_PERIOD": "5m", "UPLOAD_WINDOW": "1h"},
		"IngestFunction": {"QUIET_PERIOD": "10m", "GRAPH_ENDPOINT": "https://127.0.0.1:8443", "S3_USE_PATH_STYLE": true, "MAX": 3},
		"FinalizeFunction": {}
	}`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := local.ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]string{"GRAPH_ENDPOINT": "https://127.0.0.1:4000"}
	tests := []struct {
		function  string
		overrides []string
		want      map[string]string
	}{
		{local.IngestFunction, nil, map[string]string{
			"GRAPH_API": "beta", "QUIET_PERIOD": "10m", "UPLOAD_WINDOW": "1h",
			"GRAPH_ENDPOINT": "https://127.0.0.1:4000", "S3_USE_PATH_STYLE": "true", "MAX": "3",
		}},
		{local.FinalizeFunction, []string{"QUIET_PERIOD=2s"}, map[string]string{
			"GRAPH_API": "beta", "QUIET_PERIOD": "2s", "UPLOAD_WINDOW": "1h", "GRAPH_ENDPOINT": "https://127.0.0.1:4000",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			if got := f.For(tt.function, live, tt.overrides); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("settings %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadEnvFileRefusesWhatSAMWouldNotRead(t *testing.T) {
	tests := map[string]string{
		"not JSON":             `{"IngestFunction": `,
		"a function is a list": `{"IngestFunction": ["A=1"]}`,
		"an object value":      `{"IngestFunction": {"ROUTES": {"badges": {}}}}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "env.json")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := local.ReadEnvFile(path); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestSummaryCheckNeedsAClosedSessionAndARejectionWithItsReason(t *testing.T) {
	closed := graphemu.SessionView{ID: "s1", Status: "complete", IsUploadDone: true}
	open := graphemu.SessionView{ID: "s2", Status: "active"}
	withReason := review.Report{Key: "incoming/x.csv", Status: review.Rejected, Errors: []review.FieldError{{Line: 4, Column: "PrincipalId", Message: "not a GUID"}}}
	noReason := review.Report{Key: "incoming/y.csv", Status: review.Rejected}
	reviews := []ledger.Review{{Status: ledger.ReviewComplete}, {Status: ledger.ReviewNoData}}
	tests := []struct {
		name    string
		sum     local.Summary
		wantErr []string // each must appear in the error; nil means no error
	}{
		{"all", local.Summary{Sessions: []graphemu.SessionView{open, closed}, Reports: []review.Report{withReason}, Reviews: reviews}, nil},
		{"nothing", local.Summary{}, []string{"no session was closed", "no file was rejected", "no review from standing data", "no review without data"}},
		{"no review without data", local.Summary{Sessions: []graphemu.SessionView{closed}, Reports: []review.Report{withReason}, Reviews: reviews[:1]}, []string{"discovery recorded no review without data"}},
		{"only open sessions", local.Summary{Sessions: []graphemu.SessionView{open}, Reports: []review.Report{withReason}, Reviews: reviews}, []string{"no session was closed"}},
		{"a rejection without a reason", local.Summary{Sessions: []graphemu.SessionView{closed}, Reports: []review.Report{noReason}, Reviews: reviews}, []string{"no file was rejected with a reason"}},
		{"a function error", local.Summary{Sessions: []graphemu.SessionView{closed}, Reports: []review.Report{withReason}, Reviews: reviews, FunctionErrors: []string{"x"}}, []string{"1 invocation(s) returned an error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sum.Check()
			if (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("error %v, want one: %t", err, tt.wantErr != nil)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
