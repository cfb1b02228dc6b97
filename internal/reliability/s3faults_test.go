package reliability_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/review"
)

type finalizeOutcome = finalize.Outcome

// s3Case is one S3 row of the fault matrix.
type s3Case struct {
	name, expected string
	run            func(t *testing.T, observed *string)
}

const goneMessage = "no longer exists"

var s3Cases = []s3Case{
	{
		name:     "deleted before read (unversioned)",
		expected: "rejected (version no longer exists), nothing sent to Graph",
		run: func(t *testing.T, observed *string) {
			r := newRig(t, rigOptions{Options: harness.Options{Unversioned: true}})
			key := harness.Key("gone.csv")
			rec := r.Put(key, csvRows(3, 1))
			r.deleteObject(t, key, "")
			expectGone(t, r, rec, observed)
		},
	},
	{
		name:     "version deleted before read (versioned)",
		expected: "rejected (version no longer exists), nothing sent to Graph",
		run: func(t *testing.T, observed *string) {
			r := newRig(t, rigOptions{})
			key := harness.Key("gone.csv")
			rec := r.Put(key, csvRows(3, 1))
			r.deleteObject(t, key, rec.S3.Object.VersionID)
			expectGone(t, r, rec, observed)
		},
	},
	{
		// A plain delete in a versioned bucket only adds a delete marker:
		// the event's version is still there, and it is what was dropped.
		name:     "deleted behind a delete marker (versioned)",
		expected: "uploaded: the event's version still exists",
		run: func(t *testing.T, observed *string) {
			r := newRig(t, rigOptions{})
			key := harness.Key("marker.csv")
			body := csvRows(3, 1)
			rec := r.Put(key, body)
			r.deleteObject(t, key, "")
			mustIngest(t, r, rec)
			rep := r.report(key)
			*observed = fmt.Sprintf("%s; %s", rep.Status, r.summary())
			if rep.Status != review.Uploaded {
				t.Fatalf("report = %+v, want uploaded", rep)
			}
			checkExactlyOnce(t, r, "marker.csv", body, false)
		},
	},
	{
		name:     "replaced after the event (versioned)",
		expected: "each event uploads its own version (pinned by VersionId)",
		run: func(t *testing.T, observed *string) {
			r := newRig(t, rigOptions{})
			key := harness.Key("replaced.csv")
			v1, v2 := csvRows(3, 1), csvRows(5, 2)
			ev1 := r.Put(key, v1)
			ev2 := r.Put(key, v2)
			mustIngest(t, r, ev1)
			rep1 := r.report(key)
			mustIngest(t, r, ev2)
			rep2 := r.report(key)
			fs := r.files()
			*observed = fmt.Sprintf("event 1 %s, event 2 %s; %s", rep1.Status, rep2.Status, r.summary())
			if rep1.Status != review.Uploaded || rep1.VersionID != ev1.S3.Object.VersionID || rep2.Status != review.Uploaded {
				t.Fatalf("reports = %+v then %+v, want both uploaded", rep1, rep2)
			}
			if len(fs) != 2 || fs[0].SHA256 != sha(v1) || fs[1].SHA256 != sha(v2) {
				t.Fatalf("files = %+v, want version 1 then version 2, byte for byte", fs)
			}
			*observed += ", bytes of each version as of its event"
		},
	},
	{
		name:     "replaced after the event (unversioned)",
		expected: "old event rejected as replaced (ETag pinned), new event uploads",
		run: func(t *testing.T, observed *string) {
			r := newRig(t, rigOptions{Options: harness.Options{Unversioned: true}})
			key := harness.Key("replaced.csv")
			v1, v2 := csvRows(3, 1), csvRows(5, 2)
			ev1 := r.Put(key, v1)
			ev2 := r.Put(key, v2)
			mustIngest(t, r, ev1)
			rep1 := r.report(key)
			mustIngest(t, r, ev2)
			rep2 := r.report(key)
			*observed = fmt.Sprintf("event 1 %s, event 2 %s; %s", rep1.Status, rep2.Status, r.summary())
			if rep1.Status != review.Rejected || len(rep1.Errors) != 1 || !strings.Contains(rep1.Errors[0].Message, "replaced") {
				t.Errorf("old event's report = %+v, want rejected as replaced", rep1)
			}
			if rep2.Status != review.Uploaded || rep2.ETag != ev2.S3.Object.ETag {
				t.Errorf("new event's report = %+v, want uploaded", rep2)
			}
			fs := r.files()
			if len(fs) != 1 || fs[0].SHA256 != sha(v2) {
				t.Fatalf("files = %+v, want the new version once", fs)
			}
		},
	},
	{
		// Events are not ordered: the old version's event may come last.
		// Its rejection must not overwrite the report of the version that
		// was uploaded, or the user reads that the key was refused.
		name:     "replaced, old event last (unversioned)",
		expected: "new event uploads; the late old event leaves the uploaded report",
		run: func(t *testing.T, observed *string) {
			r := newRig(t, rigOptions{Options: harness.Options{Unversioned: true}})
			key := harness.Key("replaced.csv")
			v1, v2 := csvRows(3, 1), csvRows(5, 2)
			ev1 := r.Put(key, v1)
			ev2 := r.Put(key, v2)
			mustIngest(t, r, ev2)
			mustIngest(t, r, ev1)
			rep := r.report(key)
			*observed = fmt.Sprintf("final report %s (etag of version %d); %s", rep.Status, map[bool]int{true: 2, false: 1}[rep.ETag == ev2.S3.Object.ETag], r.summary())
			if rep.Status != review.Uploaded || rep.ETag != ev2.S3.Object.ETag {
				t.Errorf("final report = %+v, want the new version's uploaded report", rep)
			}
			if fs := r.files(); len(fs) != 1 || fs[0].SHA256 != sha(v2) {
				t.Fatalf("files = %+v, want the new version once", fs)
			}
		},
	},
	{
		name:     "read error mid-stream during the upload",
		expected: "uploaded in 1 invocation: the upload re-reads the object, 1 file",
		run: func(t *testing.T, observed *string) {
			var cutter *getCutter
			r := newRig(t, rigOptions{S3Transport: func(next http.RoundTripper) http.RoundTripper {
				// GET 1 is the precheck, GET 2 the first upload attempt.
				cutter = &getCutter{next: next, nth: 2, after: 1500}
				return cutter
			}})
			cutter.bucket = r.Drop
			key := harness.Key("cut.csv")
			body := csvRows(30, 1)
			rec := r.Put(key, body)
			err := r.ingest(context.Background(), rec)
			rep := r.report(key)
			settle(t, r)
			*observed = fmt.Sprintf("%s; object GETs %d, upload: %s; %s", rep.Status, cutter.gets.Load(), r.statuses("upload"), r.summary())
			if !cutter.cut.Load() {
				t.Fatal("the read error was never injected")
			}
			if err != nil || rep.Status != review.Uploaded {
				t.Fatalf("err %v, report %+v; want uploaded", err, rep)
			}
			if cutter.gets.Load() != 3 {
				t.Errorf("object GETs = %d, want 3 (precheck, cut attempt, retry)", cutter.gets.Load())
			}
			checkExactlyOnce(t, r, "cut.csv", body, false)
		},
	},
	{
		name:     "read error mid-stream during the precheck",
		expected: "failed + claim released, retry uploads",
		run: func(t *testing.T, observed *string) {
			var cutter *getCutter
			r := newRig(t, rigOptions{S3Transport: func(next http.RoundTripper) http.RoundTripper {
				cutter = &getCutter{next: next, nth: 1, after: 1500}
				return cutter
			}})
			cutter.bucket = r.Drop
			key := harness.Key("cut.csv")
			body := csvRows(30, 1)
			rec := r.Put(key, body)
			err := r.ingest(context.Background(), rec)
			rep1 := r.report(key)
			c, cerr := r.claim(rec)
			if err == nil || rep1.Status != review.Failed || cerr != nil || c.State != claim.Released {
				t.Errorf("first invocation: err %v, report %s, claim %+v %v; want an error, failed, released", err, rep1.Status, c, cerr)
			}
			if len(r.files()) != 0 {
				t.Errorf("a file reached Graph from a failed read")
			}
			err = r.ingest(context.Background(), rec)
			rep2 := r.report(key)
			*observed = fmt.Sprintf("%s → %s; %s", rep1.Status, rep2.Status, r.summary())
			if err != nil || rep2.Status != review.Uploaded {
				t.Fatalf("retry: err %v, report %+v; want uploaded", err, rep2)
			}
			checkExactlyOnce(t, r, "cut.csv", body, false)
		},
	},
}

// expectGone ingests rec, whose version is gone, and checks the rejection.
func expectGone(t *testing.T, r *rig, rec eventRecord, observed *string) {
	t.Helper()
	err := r.ingest(context.Background(), rec)
	rep := r.report(refOf(rec).Key)
	*observed = fmt.Sprintf("%s; uploads %d, sessions %d", rep.Status, r.Emu.Count("upload", 0), len(r.Emu.Sessions()))
	if len(rep.Errors) == 1 {
		*observed = fmt.Sprintf("%s %q; uploads %d, sessions %d", rep.Status, rep.Errors[0].Message, r.Emu.Count("upload", 0), len(r.Emu.Sessions()))
	}
	if err != nil {
		t.Errorf("a vanished object is not worth a retry; got %v", err)
	}
	if rep.Status != review.Rejected || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Message, goneMessage) {
		t.Errorf("report = %+v, want rejected saying the version %s", rep, goneMessage)
	}
	if r.Emu.Count("upload", 0) != 0 || len(r.Emu.Sessions()) != 0 {
		t.Errorf("nothing may reach Graph for a vanished object: %s", r.summary())
	}
}

func (r *rig) deleteObject(t *testing.T, key, version string) {
	t.Helper()
	in := &s3.DeleteObjectInput{Bucket: &r.Drop, Key: &key}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	if _, err := r.S3Client.DeleteObject(context.Background(), in); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

func mustIngest(t *testing.T, r *rig, recs ...eventRecord) {
	t.Helper()
	if err := r.ingest(context.Background(), recs...); err != nil {
		t.Fatalf("ingest: %v", err)
	}
}
