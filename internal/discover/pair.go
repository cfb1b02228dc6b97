package discover

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/csvcheck"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/lease"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/standing"
)

// pairWork is one (instance, resource) pair to serve.
type pairWork struct {
	inst     graph.Instance
	catalog  string
	resource graph.Resource
}

func (p pairWork) name() string { return "instance " + p.inst.ID + ", resource " + p.resource.ID }

// claimPoll is how often a run that meets another's claim looks again.
const claimPoll = time.Second

// serve serves one pair and says what became of it.
func (r *run) serve(ctx context.Context, p pairWork) (Pair, error) {
	out := Pair{ReviewInstanceID: strings.ToLower(p.inst.ID), ResourceID: strings.ToLower(p.resource.ID)}
	if !review.IsGUID(p.resource.ID) {
		out.Status = ledger.ReviewFailed
		return out, review.Errorf(review.Internal, "graph: resource id is not a GUID: %q", p.resource.ID)
	}
	prev, err := r.Ledger.Review(ctx, p.inst.ID, p.resource.ID)
	switch {
	case err == nil && prev.Status.Final():
		out.Status, out.SessionID, out.Message = prev.Status, prev.SessionID, prev.Message
		return out, nil
	case err != nil && !blob.IsNotFound(err):
		out.Status = ledger.ReviewFailed
		return out, fmt.Errorf("reading the review record: %w", err)
	case err != nil:
		prev = nil
	}
	choices, err := r.Standing.Choose(ctx, r.inv, p.catalog, p.resource.ID)
	if err != nil {
		out.Status = ledger.ReviewFailed
		return out, err
	}
	send, notes := pick(choices)
	def, err := r.definitionOf(ctx, &p.inst)
	if err != nil {
		out.Status = ledger.ReviewFailed
		return out, err
	}
	now := r.now().UTC()
	discovered := now
	if prev != nil && !prev.DiscoveredAt.IsZero() {
		discovered = prev.DiscoveredAt
	}
	start := discovered
	if s := p.inst.StartDateTime; !s.IsZero() && s.Before(now) {
		start = s.UTC()
	}
	base := func(rv *ledger.Review) {
		rv.ReviewInstanceID, rv.ReviewDefinitionID, rv.ReviewName = out.ReviewInstanceID, strings.ToLower(def.ID), def.DisplayName
		rv.CatalogID, rv.ResourceID, rv.ResourceName = p.catalog, out.ResourceID, p.resource.DisplayName
		if rv.DiscoveredAt.IsZero() {
			rv.DiscoveredAt = discovered
		}
		if rv.WindowEnds.IsZero() {
			rv.WindowEnds = start.Add(r.UploadWindow).UTC()
		}
	}
	t := review.Target{CatalogID: p.catalog, ResourceID: out.ResourceID, ReviewDefinitionID: strings.ToLower(def.ID),
		ReviewInstanceID: out.ReviewInstanceID, Source: p.resource.DisplayName}
	if len(send) == 0 {
		if prev == nil || prev.SessionID == "" {
			return r.noData(ctx, p, out, base, notes)
		}
		// The data is gone since a session was made for it: what was sent
		// stands, and the session ends by the finalizer's rules.
		rec, err := r.Ledger.Session(ctx, t)
		if err != nil {
			out.Status = prev.Status
			return out, fmt.Errorf("reading the session record: %w", err)
		}
		return r.ended(ctx, t, out, rec)
	}
	if r.NeedsSource && t.Source == "" {
		out.Status = ledger.ReviewFailed
		return out, r.setFailed(ctx, t, base, fmt.Errorf("the %s API needs the resource's display name, and Graph lists none for resource %s", r.Profile, p.resource.ID))
	}
	// Uploading, with the chosen files, before anything is sent.
	if _, err := r.Ledger.UpdateReview(ctx, t.ReviewInstanceID, t.ResourceID, func(rv *ledger.Review, exists bool) error {
		if rv.Status.Final() {
			return ledger.ErrNoChange
		}
		base(rv)
		rv.Status = ledger.ReviewUploading
		rv.Message = strings.Join(notes, "; ")
		rv.Files = mergeFiles(rv.Files, send)
		return nil
	}); err != nil {
		out.Status = ledger.ReviewFailed
		return out, fmt.Errorf("writing the review record: %w", err)
	}
	owner := newOwner()
	claims := claim.New(r.Ledger)
	if r.ClaimLease > 0 {
		claims.Lease = r.ClaimLease
	}
	sessions := &lifecycle.Sessions{
		Graph: r.Graph, Ledger: r.Ledger, Claims: claims, Policy: r.Policy, UploadWindow: r.UploadWindow,
		Profile: r.Profile, CanList: r.CanList, Log: r.log(), Owner: owner, Now: r.Now,
		WindowStart: start, ReviewRecord: true,
	}
	if err := r.recordManifest(ctx, sessions, t, send); err != nil {
		out.Status = ledger.ReviewFailed
		return out, r.setFailed(ctx, t, base, err)
	}
	rec, err := sessions.Ensure(ctx, t)
	if err != nil {
		out.Status = ledger.ReviewFailed
		if why, over := r.instanceOver(ctx, p.inst.ID, err); over {
			out.Status = ledger.ReviewLate
			return out, r.setLate(ctx, t, base, why)
		}
		return out, r.setFailed(ctx, t, base, err)
	}
	out.SessionID = rec.SessionID
	if rec.Ended() {
		return r.ended(ctx, t, out, rec)
	}
	var errs []error
	for _, c := range send {
		if rec.Ended() {
			break
		}
		uploaded, fresh, err := r.sendFile(ctx, sessions, claims, owner, t, rec, c)
		if fresh != nil {
			rec = fresh
		}
		if uploaded {
			out.Uploaded++
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Key, err))
		}
	}
	if rec.Ended() {
		return r.ended(ctx, t, out, rec)
	}
	if len(errs) > 0 {
		out.Status = ledger.ReviewFailed
		err := errors.Join(errs...)
		if why, over := r.instanceOver(ctx, p.inst.ID, err); over {
			out.Status = ledger.ReviewLate
			return out, r.setLate(ctx, t, base, why)
		}
		return out, r.setFailed(ctx, t, base, err)
	}
	// Every chosen file is in: the manifest is complete, so the session
	// closes now (the finalizer would, by the same rule, if this failed).
	o, err := sessions.Check(ctx, t.SessionKey(), true)
	if err != nil {
		r.log().Warn("could not close the session; the finalizer will", "session", rec.SessionID, "error", err)
	}
	if o.Action == lifecycle.Closed {
		r.log().Info("session closed: every standing file is in", "review", t.ReviewInstanceID, "resource", t.ResourceID, "session", rec.SessionID)
	}
	fresh, err := r.Ledger.Session(ctx, t)
	if err != nil {
		out.Status = ledger.ReviewUploading
		return out, nil
	}
	return r.ended(ctx, t, out, fresh)
}

// pick returns the choices with a version to send, one per file name (two
// standing folders of one resource may hold the same name: the first key
// wins, and the session gets each name once), and notes on the others.
func pick(choices []standing.Choice) ([]standing.Choice, []string) {
	var send []standing.Choice
	var notes []string
	seen := map[string]string{}
	for _, c := range choices {
		switch {
		case !c.Ready:
			notes = append(notes, c.Key+": "+c.Reason)
		case seen[strings.ToLower(c.File)] != "":
			notes = append(notes, fmt.Sprintf("%s: not sent, %s has the same file name", c.Key, seen[strings.ToLower(c.File)]))
		default:
			seen[strings.ToLower(c.File)] = c.Key
			send = append(send, c)
			if c.Fallback {
				notes = append(notes, c.Key+": sending an earlier version ("+c.Reason+")")
			}
		}
	}
	return send, notes
}

// mergeFiles lists the chosen versions in a review record, keeping what is
// known of versions already listed.
func mergeFiles(have []ledger.ReviewFile, send []standing.Choice) []ledger.ReviewFile {
	out := []ledger.ReviewFile{}
	for _, c := range send {
		f := ledger.ReviewFile{Key: c.Key, VersionID: c.VersionID, ETag: c.ETag, Bytes: c.Bytes, Rows: c.Rows, Status: "pending", Fallback: c.Fallback}
		for _, h := range have {
			if h.Key == c.Key && h.VersionID == c.VersionID && h.ETag == c.ETag {
				f.Status = h.Status
			}
		}
		out = append(out, f)
	}
	// A file sent earlier whose version is no longer the chosen one stays
	// listed: it is in the session.
	for _, h := range have {
		if h.Status == "uploaded" && !slicesContainsFile(out, h) {
			out = append(out, h)
		}
	}
	return out
}

func slicesContainsFile(list []ledger.ReviewFile, f ledger.ReviewFile) bool {
	for _, g := range list {
		if g.Key == f.Key && g.VersionID == f.VersionID && g.ETag == f.ETag {
			return true
		}
	}
	return false
}

// recordManifest records the chosen file names as the session's manifest,
// unless the session has one from the drop zone (a manifest.json an admin
// dropped for the instance, whose list stands). The version names the
// list, so a repeated run writes nothing.
func (r *run) recordManifest(ctx context.Context, sessions *lifecycle.Sessions, t review.Target, send []standing.Choice) error {
	names := make([]string, 0, len(send))
	for _, c := range send {
		names = append(names, c.File)
	}
	key := r.Ledger.ReviewKey(t.ReviewInstanceID, t.ResourceID)
	rec, err := r.Ledger.Session(ctx, t)
	switch {
	case err == nil && rec.Ended():
		// Nothing more goes into it; the record says so after Ensure.
		return nil
	case err == nil && rec.Manifest != nil && rec.Manifest.Key != key:
		return nil
	case err == nil && rec.Manifest != nil:
		// Names already in the session stay listed: a file sent by an
		// earlier run under another version is in Graph.
		for _, n := range rec.Manifest.Files {
			if !containsFold(names, n) && hasName(rec, n) {
				names = append(names, n)
			}
		}
	case err != nil && !blob.IsNotFound(err):
		return err
	}
	sum := sha256.Sum256([]byte(strings.Join(names, "\n")))
	m := &ledger.Manifest{Key: key, VersionID: "discovery-" + hex.EncodeToString(sum[:8]), Files: names, At: r.now().UTC()}
	if rec != nil && rec.Manifest != nil && rec.Manifest.VersionID == m.VersionID {
		return nil
	}
	if _, _, err := sessions.RecordManifest(ctx, t, m); err != nil {
		return fmt.Errorf("recording the standing files as the session's manifest: %w", err)
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

// hasName reports whether the session holds a file of that name.
func hasName(rec *ledger.Session, name string) bool {
	for _, f := range rec.Files {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// sendFile uploads one chosen version into the session, exactly once: a
// session that holds a file of the name already has this file's data
// (sent by an earlier run, maybe of another version); otherwise the
// version's claim is taken, and only its holder uploads. It reports
// whether this call uploaded, and the session's record when it read one.
func (r *run) sendFile(ctx context.Context, sessions *lifecycle.Sessions, claims *claim.Claims, owner string, t review.Target, rec *ledger.Session, c standing.Choice) (bool, *ledger.Session, error) {
	ref := claim.Ref{Key: c.Key, VersionID: c.VersionID, ETag: c.ETag, Session: t.SessionKey()}
	for {
		if hasName(rec, c.File) {
			return false, rec, nil
		}
		res, err := claims.Take(ctx, ref, owner)
		if err != nil {
			return false, nil, fmt.Errorf("claiming the file: %w", err)
		}
		if !res.Acquired {
			if res.Claim.State == claim.Active {
				if _, err := claims.Wait(ctx, ref, claimPoll); err != nil {
					return false, nil, fmt.Errorf("another run still uploads this file: %w", err)
				}
			}
			fresh, err := r.Ledger.Session(ctx, t)
			if err != nil {
				return false, nil, err
			}
			rec = fresh
			if hasName(rec, c.File) || rec.Ended() {
				return false, rec, nil
			}
			if res.Claim.State == claim.Done {
				// Done without being recorded: the version was refused
				// (its bytes are not valid) or its session ended.
				return false, rec, fmt.Errorf("an earlier run ended this file's upload as %s", res.Claim.Outcome)
			}
			continue // released or lapsed: take it over
		}
		held, stop := claims.Hold(ctx, ref, owner)
		status, fresh, err := r.upload(held, sessions, t, rec, c, res.Resumed)
		stop()
		if cause := context.Cause(held); errors.Is(cause, lease.ErrLost) && err != nil {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if status == review.Failed {
			if rerr := claims.Release(settle, ref, owner); rerr != nil {
				r.log().Warn("could not release the claim; it lapses by itself", "key", c.Key, "error", rerr)
			}
		} else if ferr := claims.Finish(settle, ref, owner, status, rec.SessionID); ferr != nil && err == nil {
			err = ferr
		}
		cancel()
		return status == review.Uploaded && err == nil, fresh, err
	}
}

// upload streams the chosen version into the session under its claim and
// records it.
func (r *run) upload(ctx context.Context, sessions *lifecycle.Sessions, t review.Target, rec *ledger.Session, c standing.Choice, resumed bool) (review.Status, *ledger.Session, error) {
	if resumed {
		// An earlier attempt held the claim and may have uploaded before
		// it stopped: the session's files in Graph tell.
		fresh, err := r.Ledger.Session(ctx, t)
		if err != nil {
			return review.Failed, nil, err
		}
		if hasName(fresh, c.File) {
			return review.Uploaded, fresh, nil
		}
		gs, err := r.Graph.Get(ctx, t, rec.SessionID)
		if err != nil {
			return review.Failed, nil, err
		}
		for _, f := range gs.Files {
			if strings.EqualFold(f.Name, c.File) && f.Size == c.Bytes {
				r.log().Info("an earlier attempt uploaded this file before it stopped; recording it", "key", c.Key, "session", rec.SessionID)
				return r.commit(ctx, sessions, t, c, c.Rows)
			}
		}
	}
	var last *csvcheck.Reader
	var size int64
	open := func(ctx context.Context) (io.ReadCloser, error) {
		body, n, err := r.Standing.Open(ctx, r.inv.Bucket, c)
		if err != nil {
			return nil, err
		}
		size = n
		last = csvcheck.NewReader(body, c.File)
		return readCloser{Reader: last, Closer: body}, nil
	}
	size = c.Bytes
	_, err := r.Graph.UploadFile(ctx, t, rec.SessionID, c.File, c.Bytes, open)
	if err != nil {
		if review.KindOf(err) == review.Gone || graph.IsRefusal(err) {
			if fresh, ferr := sessions.Refresh(ctx, t); ferr == nil && fresh.Ended() {
				return review.Late, fresh, fmt.Errorf("session %s is %s: %s", rec.SessionID, fresh.State, fresh.Note)
			}
		}
		if errors.Is(err, review.ErrObjectGone) || review.KindOf(err) == review.Invalid {
			// The chosen version vanished, or its bytes are not what was
			// validated: nothing was recorded in Graph.
			return review.Rejected, nil, err
		}
		return review.Failed, nil, err
	}
	rows := c.Rows
	if last != nil {
		rows = last.Result().Rows
	}
	if size != c.Bytes {
		r.log().Warn("standing version's size differs from its record", "key", c.Key, "recorded", c.Bytes, "read", size)
	}
	return r.commit(ctx, sessions, t, c, rows)
}

// commit records the uploaded version in the session.
func (r *run) commit(ctx context.Context, sessions *lifecycle.Sessions, t review.Target, c standing.Choice, rows int64) (review.Status, *ledger.Session, error) {
	f := ledger.File{Name: c.File, Key: c.Key, VersionID: c.VersionID, ETag: c.ETag, Size: c.Bytes, Rows: rows, UploadedAt: r.now().UTC(), Standing: true}
	rec, err := sessions.RecordFile(ctx, t, f, nil)
	if err != nil {
		return review.Failed, nil, fmt.Errorf("recording the upload in the ledger: %w", err)
	}
	if rec.State == ledger.Expired {
		return review.Expired, rec, nil
	}
	return review.Uploaded, rec, nil
}

// ended brings the review record up to date with the session rec: file
// statuses, and how it ended; a session ended without this pair's files
// (closed before discovery found the review) makes the pair late.
func (r *run) ended(ctx context.Context, t review.Target, out Pair, rec *ledger.Session) (Pair, error) {
	out.SessionID = rec.SessionID
	rv, err := r.Ledger.UpdateReview(ctx, t.ReviewInstanceID, t.ResourceID, func(rv *ledger.Review, exists bool) error {
		if !exists {
			return ledger.ErrNoChange
		}
		changed := false
		for i, f := range rv.Files {
			v := f.VersionID
			if v == "" {
				v = f.ETag
			}
			if f.Status == "pending" && rec.HasFile(f.Key, v) {
				rv.Files[i].Status, changed = "uploaded", true
			}
		}
		if rv.SessionID != rec.SessionID || !rv.WindowEnds.Equal(rec.WindowEnds) {
			rv.SessionID, rv.WindowEnds, changed = rec.SessionID, rec.WindowEnds, true
		}
		if rec.Ended() {
			sent := false
			for _, f := range rv.Files {
				if f.Status == "uploaded" {
					sent = true
				}
			}
			if !sent && rv.Status != ledger.ReviewLate {
				rv.Status, rv.ClosedAt = ledger.ReviewLate, rec.ClosedAt
				rv.Message = fmt.Sprintf("the session was already %s before the standing data could be sent: %s", rec.State, rec.Note)
				return nil
			}
			if sent && lifecycle.ApplyEnd(rv, rec) {
				changed = true
			}
		}
		if !changed {
			return ledger.ErrNoChange
		}
		return nil
	})
	if err != nil {
		out.Status = ledger.ReviewFailed
		return out, fmt.Errorf("writing the review record: %w", err)
	}
	out.Status, out.Message = rv.Status, rv.Message
	return out, nil
}

// instanceOver reports, after Graph refused a create or an upload, whether
// the review instance has moved past Initializing meanwhile (how Graph
// refuses then is not documented, so the instance is read again rather
// than the refusal guessed at), and says so in words.
func (r *run) instanceOver(ctx context.Context, instanceID string, cause error) (string, bool) {
	if review.KindOf(cause) == review.Gone {
		return cause.Error(), true
	}
	if !graph.IsRefusal(cause) {
		return "", false
	}
	inst, err := r.Reviews.GetInstance(ctx, instanceID)
	if err != nil || inst.IsInitializing() || inst.Status == "" || graph.EqualStatus(inst.Status, graph.InstanceNotStarted) {
		return "", false
	}
	return fmt.Sprintf("the review instance is %s: its upload window is over (%v)", inst.Status, cause), true
}

// noData records that the pair has no usable standing data: once per
// instance, with a warning; a record already saying so is left as it is.
func (r *run) noData(ctx context.Context, p pairWork, out Pair, base func(*ledger.Review), notes []string) (Pair, error) {
	msg := "no usable standing data for this resource: the review started without its data"
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	first := false
	rv, err := r.Ledger.UpdateReview(ctx, p.inst.ID, p.resource.ID, func(rv *ledger.Review, exists bool) error {
		first = false
		if exists && (rv.Status == ledger.ReviewNoData || rv.Status.Final() || rv.SessionID != "") {
			return ledger.ErrNoChange
		}
		base(rv)
		rv.Status, rv.Message, first = ledger.ReviewNoData, msg, true
		return nil
	})
	if err != nil {
		out.Status = ledger.ReviewFailed
		return out, fmt.Errorf("writing the review record: %w", err)
	}
	out.Status, out.Message, out.FirstNoData = rv.Status, rv.Message, first
	if first {
		r.log().Warn("a review started without standing data for a resource", "review", out.ReviewInstanceID, "review_name", rv.ReviewName,
			"catalog", p.catalog, "resource", out.ResourceID, "resource_name", p.resource.DisplayName, "window_ends", rv.WindowEnds, "detail", msg)
	}
	return out, nil
}

// setFailed records that this run could not send the data, and returns
// cause; the next run tries again.
func (r *run) setFailed(ctx context.Context, t review.Target, base func(*ledger.Review), cause error) error {
	_, err := r.Ledger.UpdateReview(ctx, t.ReviewInstanceID, t.ResourceID, func(rv *ledger.Review, exists bool) error {
		if rv.Status.Final() {
			return ledger.ErrNoChange
		}
		base(rv)
		rv.Status, rv.Message = ledger.ReviewFailed, "the last run could not send the data; the next run tries again: "+cause.Error()
		return nil
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// setLate records that the review takes no more data.
func (r *run) setLate(ctx context.Context, t review.Target, base func(*ledger.Review), why string) error {
	_, err := r.Ledger.UpdateReview(ctx, t.ReviewInstanceID, t.ResourceID, func(rv *ledger.Review, exists bool) error {
		if rv.Status.Final() {
			return ledger.ErrNoChange
		}
		base(rv)
		rv.Status, rv.Message = ledger.ReviewLate, why
		return nil
	})
	return err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// newOwner names one pair's work in claims and leases.
func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "discover/" + hex.EncodeToString(b[:])
}
