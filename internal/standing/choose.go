package standing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/review"
)

// Listed is one current standing object, as the listing shows it.
type Listed struct {
	Key          string
	Parsed       dropkey.Standing
	ETag         string
	Size         int64
	LastModified time.Time
}

// Refused is an object under the standing prefix that is not standing
// data (its drop got a rejected report saying why).
type Refused struct {
	Key string
	Err error
}

// Inventory is one listing of the whole standing prefix: which catalogs
// and resources have standing data, and their current files.
type Inventory struct {
	Bucket  string
	files   map[string][]Listed // by catalog/resource, lower case
	Refused []Refused
}

func pair(catalogID, resourceID string) string {
	return strings.ToLower(catalogID + "/" + resourceID)
}

// List lists the current objects under the standing prefix of bucket: one
// S3 LIST request per thousand objects, whatever the number of resources
// and reviews, so that a discovery run costs one LIST when it has nothing
// to send. Keys that are not standing data are kept in Refused.
func (s *Store) List(ctx context.Context, bucket string) (*Inventory, error) {
	inv := &Inventory{Bucket: bucket, files: map[string][]Listed{}}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(s.cfg.Prefix)}
	for {
		out, err := s.cfg.S3.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, (&blob.S3{Bucket: bucket}).Wrap("list", s.cfg.Prefix, err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			p, err := dropkey.ParseStanding(key, s.cfg.Prefix, s.cfg.Routes)
			if err != nil {
				inv.Refused = append(inv.Refused, Refused{Key: key, Err: err})
				continue
			}
			k := pair(p.CatalogID, p.ResourceID)
			inv.files[k] = append(inv.files[k], Listed{Key: key, Parsed: p, ETag: strings.Trim(aws.ToString(o.ETag), `"`),
				Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return inv, nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// Catalogs returns the catalog ids that have standing data, sorted.
func (inv *Inventory) Catalogs() []string {
	seen := map[string]bool{}
	var out []string
	for k := range inv.files {
		c, _, _ := strings.Cut(k, "/")
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// HasData reports whether a resource has standing files.
func (inv *Inventory) HasData(catalogID, resourceID string) bool {
	return len(inv.files[pair(catalogID, resourceID)]) > 0
}

// Files returns a resource's current standing files (route and canonical
// folders alike), by key.
func (inv *Inventory) Files(catalogID, resourceID string) []Listed {
	out := slices.Clone(inv.files[pair(catalogID, resourceID)])
	slices.SortFunc(out, func(a, b Listed) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Choice is the version of one standing file to send to a review.
type Choice struct {
	Key  string
	File string // the base name, the upload's filename
	// Ready says there is a version to send: VersionID (or, in an
	// unversioned bucket, ETag) names it, with its Bytes and Rows.
	Ready           bool
	VersionID, ETag string
	Bytes, Rows     int64
	// Fallback is set when the current version is not the one chosen (it
	// was rejected, or could not be read), and an earlier ready one is.
	Fallback bool
	// Current is what is known of the current version (zero Status when it
	// could not be validated).
	Current Version
	// Reason says, when not Ready or on a fallback, why.
	Reason string
}

// Choose returns, for each current standing file of a resource in inv, the
// version to send: the current one when it is ready, else the newest
// earlier ready one, else none (Ready false). It reads one record per file;
// a current version that was never validated (its event is late or was
// lost) is validated now, pinned to the listed ETag, and recorded. The
// error is for failures a retry may cure; a file without usable data is a
// Choice with Ready false, not an error.
func (s *Store) Choose(ctx context.Context, inv *Inventory, catalogID, resourceID string) ([]Choice, error) {
	var out []Choice
	for _, l := range inv.Files(catalogID, resourceID) {
		c, err := s.choose(ctx, inv.Bucket, l)
		if err != nil {
			return nil, fmt.Errorf("choosing the version of %s: %w", l.Key, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *Store) choose(ctx context.Context, bucket string, l Listed) (Choice, error) {
	c := Choice{Key: l.Key, File: l.Parsed.File}
	rec, _, err := s.readRecord(ctx, l.Key)
	switch {
	case blob.IsNotFound(err):
		rec = &Record{Schema: recordSchema, Key: l.Key}
	case err != nil:
		return c, err
	}
	i := rec.findETag(l.ETag)
	if i < 0 {
		// Never validated: validate the listed bytes now.
		v, err := s.validate(ctx, Object{Bucket: bucket, Key: l.Key, ETag: l.ETag})
		switch {
		case errors.Is(err, errVersionGone):
			// Replaced or deleted since the listing: the newest ready
			// version known stands in, and the next run sees the new one.
			if j := rec.newestReady(len(rec.Versions)); j >= 0 {
				return pick(c, rec.Versions[j], true, "the current version changed while it was being read"), nil
			}
			c.Reason = "the current version changed while it was being read, and no earlier version was ready"
			return c, nil
		case err != nil:
			return c, err
		}
		if rec, err = s.record(ctx, l.Key, *v); err != nil {
			return c, err
		}
		if _, err := s.writeReport(ctx, l.Parsed); err != nil {
			s.cfg.Log.WarnContext(ctx, "could not write the report of a standing file validated late", "key", l.Key, "error", err)
		}
		if i = rec.find(v); i < 0 {
			return c, review.Errorf(review.Internal, "standing record of %s lost the version just recorded", l.Key)
		}
	}
	cur := rec.Versions[i]
	c.Current = cur
	if cur.IsReady() {
		return pick(c, cur, false, ""), nil
	}
	if fb := rec.fallback(i); fb != nil {
		return pick(c, *fb, true, "the current version was rejected: "+problem(cur)), nil
	}
	c.Reason = "the current version was rejected and no earlier version was ready: " + problem(cur)
	return c, nil
}

func pick(c Choice, v Version, fallback bool, reason string) Choice {
	c.Ready, c.VersionID, c.ETag, c.Bytes, c.Rows = true, v.VersionID, v.ETag, v.Bytes, v.Rows
	c.Fallback, c.Reason = fallback, reason
	return c
}

func problem(v Version) string {
	if len(v.Errors) == 0 {
		return "no details"
	}
	return v.Errors[0].Error()
}
