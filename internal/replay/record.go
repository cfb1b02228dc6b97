package replay

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/byodrop/byodrop/internal/dropkey"
)

// Record is Lambda's asynchronous invocation record: the body of each
// message that the function's OnFailure destination puts in the queue.
// Only the members replay uses or shows are decoded.
type Record struct {
	Version   string `json:"version"`
	Timestamp string `json:"timestamp"`
	// RequestContext says which invocation failed and why.
	RequestContext RequestContext `json:"requestContext"`
	// RequestPayload is the original event, as the function received it.
	RequestPayload json.RawMessage `json:"requestPayload"`
	// ResponseContext and ResponsePayload are the last attempt's answer:
	// for a function error, {"errorMessage", "errorType"}.
	ResponseContext ResponseContext `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload"`
}

// RequestContext identifies the failed invocation.
type RequestContext struct {
	RequestID   string `json:"requestId"`
	FunctionARN string `json:"functionArn"`
	// Condition is why Lambda gave up: RetriesExhausted, EventAgeExceeded
	// (the event waited longer than MaximumEventAgeInSeconds, for example
	// while throttled), …
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// ResponseContext is the last attempt's outcome.
type ResponseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError"`
}

// Event is one S3 record of a failed event, ready to be sent alone.
type Event struct {
	// Bucket, Key (decoded) and VersionID name the object, for the output.
	Bucket, Key, VersionID string
	// Payload is an S3 event holding only this record, byte for byte as
	// Lambda delivered it.
	Payload []byte
}

// ParseRecord decodes a queue message's body.
func ParseRecord(body []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not an asynchronous invocation record: %w", err)
	}
	if len(r.RequestPayload) == 0 || r.RequestContext.RequestID == "" {
		return nil, fmt.Errorf("not an asynchronous invocation record: no requestPayload or requestContext.requestId")
	}
	return &r, nil
}

// Events splits the original event into one event per S3 record, so that
// each is replayed in its own invocation: one record that still fails does
// not hold back the others.
func (r *Record) Events() ([]Event, error) {
	var ev struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(r.RequestPayload, &ev); err != nil {
		return nil, fmt.Errorf("requestPayload is not an S3 event: %w", err)
	}
	if len(ev.Records) == 0 {
		return nil, fmt.Errorf("requestPayload has no S3 records")
	}
	out := make([]Event, 0, len(ev.Records))
	for i, raw := range ev.Records {
		var rec struct {
			S3 struct {
				Bucket struct {
					Name string `json:"name"`
				} `json:"bucket"`
				Object struct {
					Key       string `json:"key"`
					VersionID string `json:"versionId"`
				} `json:"object"`
			} `json:"s3"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil || rec.S3.Object.Key == "" {
			return nil, fmt.Errorf("requestPayload record %d is not an S3 record", i+1)
		}
		key, err := dropkey.DecodeEventKey(rec.S3.Object.Key)
		if err != nil {
			key = rec.S3.Object.Key
		}
		var p bytes.Buffer
		p.WriteString(`{"Records":[`)
		p.Write(raw)
		p.WriteString(`]}`)
		out = append(out, Event{Bucket: rec.S3.Bucket.Name, Key: key, VersionID: rec.S3.Object.VersionID, Payload: p.Bytes()})
	}
	return out, nil
}

// LastError is the error of the last attempt before Lambda gave up ("" if
// the record carries none).
func (r *Record) LastError() string {
	var doc struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(r.ResponsePayload, &doc) != nil || doc.ErrorMessage == "" {
		return r.ResponseContext.FunctionError
	}
	if doc.ErrorType == "" {
		return doc.ErrorMessage
	}
	return doc.ErrorType + ": " + doc.ErrorMessage
}

func (e Event) String() string {
	s := "s3://" + e.Bucket + "/" + e.Key
	if e.VersionID != "" {
		s += " (version " + e.VersionID + ")"
	}
	return s
}
