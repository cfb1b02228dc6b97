// Package standing keeps byodrop's standing data: the current access data
// of each resource, which an export job keeps under STANDING_PREFIX in the
// versioned drop bucket (product.md, "Standing data and review discovery"):
//
//	standing/<route>/<file>.csv
//	standing/<catalogId>/<resourceId>/<file>.csv
//
// Two things happen to it:
//
//   - On drop (Store.Drop, called by the ingest function for each object
//     created under the prefix), the object version is validated whole,
//     streamed through the same validator as any CSV, and its outcome is
//     recorded; the key's report says ready or rejected, and for a rejected
//     version names the newest earlier ready one (fallbackVersionId).
//     Nothing is sent to Graph.
//   - When a review starts (Store.List, then Store.Choose for each
//     resource), every standing file of the resource is given the version to
//     send: the current one when it is ready, else the newest earlier ready
//     one, else none.
//
// # What is remembered, and why it is safe
//
// One record per standing key, human-readable JSON, at
//
//	<STATE_PREFIX>standing/<key after STANDING_PREFIX>.json
//
// (keys too long for that are under standing/long-keys/<sha256>.json),
// lists the validated versions, oldest first, with their outcome (see
// Record). It is the only state: the report is derived from it. Versions
// are ordered by their place in S3's own history of the key (read with
// ListObjectVersions when a version is validated), not by clocks or by the
// order in which events arrive; a version whose older versions were
// permanently deleted in between may be misplaced (then the newest ready
// version is still chosen for a ready current one).
//
//   - Every change is a conditional write (If-None-Match to create, If-Match
//     with the ETag read), retried on a lost race after reading again, so
//     concurrent drops of several versions (or repeated events of one) all
//     land and none is lost. Merging is commutative and idempotent: the
//     same version twice is one entry, and an object version's outcome
//     never changes, because its bytes never do.
//   - A crash after validating and before the record write leaves nothing:
//     Lambda's retry validates again. A crash after the record write and
//     before the report write leaves a record without its report: the retry
//     finds the version recorded, skips the validation and writes the
//     report; without a retry, Choose does not need the report anyway.
//   - The report is written from the record, for the record's newest
//     version (so a late event of an older version never replaces the
//     report of a newer one), and after writing it the record is read
//     again: if it changed meanwhile, the report is written again. The last
//     report written therefore always describes the last record.
//   - Choose matches S3's current object (by ETag, from the listing) with
//     the record. A current object that was never validated (its event is
//     late, or was lost) is validated there and then, pinned to the listed
//     ETag, and recorded like a drop.
package standing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/csvcheck"
	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// S3 is what the package needs of the S3 client (*s3.Client has it).
type S3 interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

// Config configures a Store.
type Config struct {
	// S3 reads the standing objects.
	S3 S3
	// Ledger holds the records and the reports (its store and prefix).
	Ledger *ledger.Ledger
	// Prefix is STANDING_PREFIX (default "standing/").
	Prefix string
	// Routes resolves route folders (ROUTES).
	Routes dropkey.Routes
	// Now is the clock (default time.Now); Log the logger (default
	// slog.Default()).
	Now func() time.Time
	Log *slog.Logger
}

// Store validates, records and chooses standing data.
type Store struct {
	cfg Config
}

// New returns a Store for cfg.
func New(cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = dropkey.DefaultStandingPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Store{cfg: cfg}
}

// Prefix returns the standing prefix.
func (s *Store) Prefix() string { return s.cfg.Prefix }

// Object is one object version under the standing prefix, as an S3
// object-created event names it (key URL-decoded, ETag without quotes).
type Object struct {
	Bucket, Key, VersionID, ETag string
	// Sequencer is the event's sequencer, when there is one: it orders two
	// versions written in the same second.
	Sequencer string
}

// maxKey is S3's limit on a key, in bytes.
const maxKey = 1024

// RecordKey is where the record of a standing key is kept.
func (s *Store) RecordKey(key string) string {
	rel := strings.TrimPrefix(key, s.cfg.Prefix)
	k := s.cfg.Ledger.Prefix() + "standing/" + rel + ".json"
	if len(k) <= maxKey && !strings.HasPrefix(rel, "long-keys/") {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return s.cfg.Ledger.Prefix() + "standing/long-keys/" + hex.EncodeToString(sum[:]) + ".json"
}

// Record reads the record of a standing key; blob.ErrNotFound if none.
func (s *Store) Record(ctx context.Context, key string) (*Record, error) {
	rec, _, err := s.readRecord(ctx, key)
	return rec, err
}

func (s *Store) readRecord(ctx context.Context, key string) (*Record, string, error) {
	rk := s.RecordKey(key)
	obj, err := s.cfg.Ledger.Store().Get(ctx, rk)
	if err != nil {
		return nil, "", err
	}
	var rec Record
	if err := json.Unmarshal(obj.Data, &rec); err != nil {
		return nil, "", review.Errorf(review.Internal, "standing record %s is not valid JSON: %v", rk, err)
	}
	if rec.Key != key {
		return nil, "", review.Errorf(review.Internal, "standing record %s is for %q, not %q", rk, rec.Key, key)
	}
	return &rec, obj.ETag, nil
}

// Drop validates a standing object version whole and records its outcome,
// then writes the key's report. It is the entry point of the ingest
// function for a key under STANDING_PREFIX, and is idempotent: a repeated
// event of a recorded version only rewrites the report.
//
// The report is returned (for the invocation's answer and metrics). The
// error is nil for every final outcome, a rejection included (an invalid
// key or CSV is a report, not a failure); it is set only when a retry may
// succeed (an S3 read, the record or the report could not be written), so
// that Lambda's retries and the failure queue take over.
func (s *Store) Drop(ctx context.Context, o Object) (review.Report, error) {
	o.ETag = strings.Trim(o.ETag, `"`)
	rep := review.Report{Key: o.Key, VersionID: o.VersionID, ETag: o.ETag}
	parsed, err := dropkey.ParseStanding(o.Key, s.cfg.Prefix, s.cfg.Routes)
	if err != nil {
		rep.Status = review.Rejected
		rep.Errors = []review.FieldError{fieldError(err)}
		rep.At = s.cfg.Now().UTC()
		s.log(ctx, rep, err)
		return rep, s.cfg.Ledger.WriteReport(ctx, rep)
	}
	rec, _, err := s.readRecord(ctx, o.Key)
	switch {
	case err == nil:
		if i := rec.find(&Version{VersionID: o.VersionID, ETag: o.ETag}); i >= 0 {
			s.cfg.Log.InfoContext(ctx, "standing version already validated; rewriting its key's report", "key", o.Key, "version", o.VersionID)
			return s.writeReport(ctx, parsed)
		}
	case !blob.IsNotFound(err):
		return rep, err
	}
	v, err := s.validate(ctx, o)
	if errors.Is(err, errVersionGone) {
		// Deleted or replaced before it could be read: a newer version has
		// its own event. Keep a report about another version as it is.
		if rec != nil && len(rec.Versions) > 0 {
			return s.writeReport(ctx, parsed)
		}
		rep.SetTarget(parsed.Target())
		rep.Status = review.Rejected
		rep.Errors = []review.FieldError{{Message: err.Error()}}
		rep.At = s.cfg.Now().UTC()
		s.log(ctx, rep, err)
		return rep, s.cfg.Ledger.WriteReport(ctx, rep)
	}
	if err != nil {
		return rep, err
	}
	if _, err := s.record(ctx, o.Key, *v); err != nil {
		return rep, err
	}
	return s.writeReport(ctx, parsed)
}

// errVersionGone: the object version no longer exists (or, pinned by
// ETag, was replaced).
var errVersionGone = &review.Error{Kind: review.Gone, Msg: "the object version no longer exists (deleted or replaced before it was validated)"}

// open opens one object version: pinned by version id, else by ETag.
func (s *Store) open(ctx context.Context, bucket, key, versionID, etag string) (*s3.GetObjectOutput, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	} else if etag != "" {
		in.IfMatch = aws.String(`"` + etag + `"`)
	}
	out, err := s.cfg.S3.GetObject(ctx, in)
	if err != nil {
		werr := (&blob.S3{Bucket: bucket}).Wrap("read", key, err)
		if blob.IsNotFound(werr) || blob.IsPrecondition(werr) {
			return nil, errVersionGone
		}
		return nil, werr
	}
	return out, nil
}

// Open opens the chosen version of a standing file for upload, pinned to
// it (a file replaced meanwhile is still read as chosen), with its size.
// The caller validates it again while it streams (csvcheck.NewReader).
func (s *Store) Open(ctx context.Context, bucket string, c Choice) (io.ReadCloser, int64, error) {
	if !c.Ready {
		return nil, 0, review.Errorf(review.Invalid, "standing file %s has no version to send", c.Key)
	}
	out, err := s.open(ctx, bucket, c.Key, c.VersionID, c.ETag)
	if err != nil {
		return nil, 0, err
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// validate streams one object version through the CSV validator.
func (s *Store) validate(ctx context.Context, o Object) (*Version, error) {
	out, err := s.open(ctx, o.Bucket, o.Key, o.VersionID, o.ETag)
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	v := &Version{
		VersionID:    firstNonEmpty(o.VersionID, aws.ToString(out.VersionId)),
		ETag:         firstNonEmpty(o.ETag, strings.Trim(aws.ToString(out.ETag), `"`)),
		LastModified: aws.ToTime(out.LastModified).UTC(),
		Sequencer:    o.Sequencer,
	}
	if v.VersionID == "null" {
		v.VersionID = "" // an unversioned bucket's answer
	}
	size := aws.ToInt64(out.ContentLength)
	file := o.Key[strings.LastIndexByte(o.Key, '/')+1:]
	res, err := csvcheck.Validate(out.Body, file)
	var ce *csvcheck.Error
	switch {
	case errors.As(err, &ce):
		v.Status = review.Rejected
		v.Errors = []review.FieldError{ce.FieldError()}
	case err != nil:
		return nil, review.Errorf(review.Transient, "reading %s: %w", o.Key, err)
	case out.ContentLength != nil && res.Bytes != size:
		return nil, review.Errorf(review.Transient, "read %d bytes of %s, expected %d", res.Bytes, o.Key, size)
	default:
		v.Status = review.Ready
	}
	v.Bytes, v.Rows = max(res.Bytes, size), res.Rows
	v.ValidatedAt = s.cfg.Now().UTC()
	if v.VersionID != "" {
		if v.Position, err = s.position(ctx, o.Bucket, o.Key, v.VersionID); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// maxVersionPages bounds the history read to place a version: past it the
// version is ordered by its time alone.
const maxVersionPages = 10

// position returns the place of versionID in the key's history (1 for the
// oldest version S3 has), from S3's list of versions, which is newest
// first: S3's own order, whatever the clocks and the order of the events.
// It returns 0 when the version is not found within maxVersionPages.
func (s *Store) position(ctx context.Context, bucket, key, versionID string) (int64, error) {
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)}
	var newer int64 = -1 // versions newer than versionID, once it is seen
	var total int64
	for page := 0; page < maxVersionPages; page++ {
		out, err := s.cfg.S3.ListObjectVersions(ctx, in)
		if err != nil {
			return 0, (&blob.S3{Bucket: bucket}).Wrap("list versions", key, err)
		}
		for _, v := range out.Versions {
			if aws.ToString(v.Key) != key {
				continue
			}
			if aws.ToString(v.VersionId) == versionID {
				newer = total
			}
			total++
		}
		if !aws.ToBool(out.IsTruncated) {
			if newer < 0 {
				return 0, nil
			}
			return total - newer, nil
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	s.cfg.Log.WarnContext(ctx, "standing key has too long a history to place a version in it; ordering it by time", "key", key, "versions_read", total)
	return 0, nil
}

// record merges v into the key's record with the ledger's conditional
// write loop; it returns the record as written (or found).
func (s *Store) record(ctx context.Context, key string, v Version) (*Record, error) {
	rk := s.RecordKey(key)
	return ledger.UpdateDoc(ctx, s.cfg.Ledger.Store(), rk, func(rec *Record, exists bool) error {
		switch {
		case !exists:
			*rec = Record{Schema: recordSchema, Key: key}
		case rec.Key != key:
			return review.Errorf(review.Internal, "standing record %s is for %q, not %q", rk, rec.Key, key)
		}
		if !rec.add(v) {
			return ledger.ErrNoChange
		}
		return nil
	})
}

// maxReportRounds bounds how often writeReport follows a record that keeps
// changing under it; the writer of the last change writes its own report.
const maxReportRounds = 8

// writeReport writes the key's report from its record, for the newest
// version, and again as long as the record changed while it was written.
func (s *Store) writeReport(ctx context.Context, parsed dropkey.Standing) (review.Report, error) {
	key := parsed.Folder + parsed.File
	var rep review.Report
	rec, etag, err := s.readRecord(ctx, key)
	for round := 0; ; round++ {
		if err != nil {
			return rep, err
		}
		if len(rec.Versions) == 0 {
			return rep, review.Errorf(review.Internal, "standing record %s lists no version", s.RecordKey(key))
		}
		rep = reportOf(rec, parsed, s.cfg.Now().UTC())
		if err := s.cfg.Ledger.WriteReport(ctx, rep); err != nil {
			return rep, err
		}
		var again string
		rec, again, err = s.readRecord(ctx, key)
		if err == nil && (again == etag || round+1 >= maxReportRounds) {
			break
		}
		etag = again
	}
	s.log(ctx, rep, nil)
	return rep, nil
}

// reportOf is the key's report for the record's newest version.
func reportOf(rec *Record, parsed dropkey.Standing, at time.Time) review.Report {
	v, i := rec.newest()
	rep := review.Report{Key: rec.Key, Status: v.Status, VersionID: v.VersionID, ETag: v.ETag,
		Bytes: v.Bytes, Rows: v.Rows, Errors: v.Errors, At: at}
	rep.SetTarget(parsed.Target())
	if !v.IsReady() {
		if fb := rec.fallback(i); fb != nil {
			rep.FallbackVersionID = firstNonEmpty(fb.VersionID, fb.ETag)
		}
	}
	return rep
}

func (s *Store) log(ctx context.Context, rep review.Report, err error) {
	attrs := []any{"key", rep.Key, "version", rep.VersionID, "outcome", rep.Status, "bytes", rep.Bytes, "rows", rep.Rows}
	if rep.FallbackVersionID != "" {
		attrs = append(attrs, "fallback_version", rep.FallbackVersionID)
	}
	if len(rep.Errors) > 0 {
		attrs = append(attrs, "problem", rep.Errors[0].Error())
	}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	level := slog.LevelInfo
	if rep.Status != review.Ready {
		level = slog.LevelWarn
	}
	s.cfg.Log.Log(ctx, level, "standing file validated", attrs...)
}

func fieldError(err error) review.FieldError {
	var fe interface{ FieldError() review.FieldError }
	if errors.As(err, &fe) {
		return fe.FieldError()
	}
	return review.FieldError{Message: err.Error()}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// String describes a version for logs.
func (v Version) String() string {
	return fmt.Sprintf("%s (%s, %d rows)", firstNonEmpty(v.VersionID, v.ETag), v.Status, v.Rows)
}
