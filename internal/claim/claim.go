// Package claim owns the life of one object version: who handles it, for
// how long, and how its handling ended. A claim is a small JSON document
// under the state prefix, written only with conditional writes, so that
// any number of invocations agree on one handler per object version:
//
//	claims/<catalog>/<resource>/<instance>/<hash>.json
//
// A claim is short (Lease) and renewed by its holder while the work runs
// (Hold), so a crashed holder lets go within one lease and a retry takes
// over; a holder that cannot renew stops its work before its claim lapses.
// Claims sit under their session's key so that the session lifecycle can
// see uploads in flight (InFlight). They are never deleted, only
// overwritten, because some S3-compatible servers keep refusing
// If-None-Match on a deleted key of a versioned bucket. docs/lifecycles.md
// has the state table.
package claim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/lease"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// State is where the handling of one object version is.
type State string

const (
	// Active: an invocation is handling the object until the claim's Until.
	Active State = "active"
	// Released: the last holder stopped early (a transient failure, a
	// deadline) and let go; the next attempt takes over at once.
	Released State = "released"
	// Done: the object version has its final outcome.
	Done State = "done"
)

// DefaultLease is how long a claim lasts without renewal.
const DefaultLease = time.Minute

// Claim records who handles one object version, and how it ended.
type Claim struct {
	ledger.Versioned `json:"-"`
	Key              string `json:"key"`
	VersionID        string `json:"versionId,omitempty"`
	ETag             string `json:"etag,omitempty"`
	State            State  `json:"state"`
	Owner            string `json:"owner"`
	// Until is when an active claim lapses unless its holder renews it.
	Until time.Time `json:"until"`
	// Attempts counts the invocations that took the claim. After the first,
	// an upload may already be in Graph.
	Attempts  int           `json:"attempts"`
	Outcome   review.Status `json:"outcome,omitempty"`
	SessionID string        `json:"sessionId,omitempty"`
	UpdatedAt time.Time     `json:"updatedAt"`
}

// Ref names one version of a dropped object and the session it belongs to.
type Ref struct {
	Key       string
	VersionID string
	ETag      string
	// Session is the review.Target.SessionKey of the object's session.
	Session string
}

// Version is the identity of the object's version: its VersionId in a
// versioned bucket, else its ETag.
func (o Ref) Version() string {
	if o.VersionID != "" {
		return o.VersionID
	}
	return o.ETag
}

// Claims reads and writes the claims of one state prefix.
type Claims struct {
	store  blob.Store
	prefix string
	// Lease is how long a claim lasts without renewal (DefaultLease).
	Lease time.Duration
	// Now is the clock; tests may replace it.
	Now func() time.Time

	// stored keeps each claim as this process last wrote it, so that the
	// next change of a claim it holds needs no read.
	mu     sync.Mutex
	stored map[string]blob.Object
}

func (c *Claims) remember(key string, o blob.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stored == nil {
		c.stored = map[string]blob.Object{}
	}
	c.stored[key] = o
}

func (c *Claims) last(key string) blob.Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stored[key]
}

// New returns the claims kept beside led's documents.
func New(led *ledger.Ledger) *Claims {
	return &Claims{store: led.Store(), prefix: led.Prefix(), Lease: DefaultLease, Now: led.Now}
}

func (c *Claims) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Claims) lease() time.Duration {
	if c.Lease > 0 {
		return c.Lease
	}
	return DefaultLease
}

func (c *Claims) sessionPrefix(session string) string {
	return c.prefix + "claims/" + session + "/"
}

func (c *Claims) key(o Ref) string {
	sum := sha256.Sum256([]byte(o.Key + "\x00" + o.Version()))
	return c.sessionPrefix(o.Session) + hex.EncodeToString(sum[:16]) + ".json"
}

// Result is the answer to an attempt to claim an object version.
type Result struct {
	Claim Claim
	// Acquired: the caller now holds the claim and must finish or release it.
	Acquired bool
	// Resumed: an earlier attempt held the claim and may have uploaded
	// before it stopped; check before uploading again.
	Resumed bool
}

// Take claims object o for owner for one lease. It is acquired when no one
// else holds it: first time, released, lapsed (the holder crashed), or
// already held by owner itself (a retried write whose first answer was
// lost). Otherwise the result says who has it, or how it ended.
func (c *Claims) Take(ctx context.Context, o Ref, owner string) (Result, error) {
	now := c.now()
	// Most objects are claimed once: try the create-only write first, which
	// saves the read that the general update starts with.
	first := Claim{Key: o.Key, VersionID: o.VersionID, ETag: o.ETag, State: Active, Owner: owner,
		Until: now.Add(c.lease()).UTC(), Attempts: 1, UpdatedAt: now.UTC()}
	data, err := json.MarshalIndent(&first, "", "  ")
	if err != nil {
		return Result{}, err
	}
	etag, err := c.store.Create(ctx, c.key(o), data)
	if err == nil {
		c.remember(c.key(o), blob.Object{Data: data, ETag: etag})
		return Result{Claim: first, Acquired: true}, nil
	}
	if !blob.IsPrecondition(err) {
		return Result{}, err
	}
	var res Result
	doc, err := ledger.UpdateDoc(ctx, c.store, c.key(o), func(cl *Claim, exists bool) error {
		now := c.now()
		res = Result{Claim: *cl}
		switch {
		case exists && cl.State == Active && cl.Owner == owner:
			// Ours: the create above landed and only its answer was lost
			// (the SDK's retry then met our own claim).
			res.Acquired = true
			return ledger.ErrNoChange
		case exists && (cl.State == Done || (cl.State == Active && now.Before(cl.Until))):
			return ledger.ErrNoChange
		}
		res.Resumed = exists && cl.Attempts > 0
		*cl = Claim{Key: o.Key, VersionID: o.VersionID, ETag: o.ETag, State: Active, Owner: owner,
			Until: now.Add(c.lease()).UTC(), Attempts: cl.Attempts + 1, UpdatedAt: now.UTC()}
		res.Claim, res.Acquired = *cl, true
		return nil
	})
	if err == nil && res.Acquired {
		c.remember(c.key(o), doc.Stored())
	}
	return res, err
}

// errLost: the claim is no longer the caller's.
var errLost = review.Errorf(review.Transient, "the claim was taken over by another invocation")

// IsLost reports whether err says that the caller's claim was taken over.
func IsLost(err error) bool { return errors.Is(err, errLost) }

// Renew extends a claim the caller holds by one lease.
func (c *Claims) Renew(ctx context.Context, o Ref, owner string) error {
	return c.change(ctx, o, owner, func(cl *Claim) { cl.Until = c.now().Add(c.lease()).UTC() })
}

// Finish records the final outcome of a claim the caller holds.
func (c *Claims) Finish(ctx context.Context, o Ref, owner string, outcome review.Status, sessionID string) error {
	return c.change(ctx, o, owner, func(cl *Claim) {
		cl.State, cl.Outcome, cl.SessionID = Done, outcome, sessionID
	})
}

// Release lets go of a claim the caller holds without an outcome, so that
// the next attempt can take over at once.
func (c *Claims) Release(ctx context.Context, o Ref, owner string) error {
	return c.change(ctx, o, owner, func(cl *Claim) { cl.State = Released })
}

func (c *Claims) change(ctx context.Context, o Ref, owner string, fn func(*Claim)) error {
	key := c.key(o)
	doc, err := ledger.UpdateDocFrom(ctx, c.store, key, c.last(key), func(cl *Claim, exists bool) error {
		if !exists || cl.Owner != owner || cl.State != Active {
			// Someone else took over after our claim lapsed: their outcome
			// stands, ours must not overwrite it.
			return errLost
		}
		fn(cl)
		cl.UpdatedAt = c.now().UTC()
		return nil
	})
	if err == nil {
		c.remember(key, doc.Stored())
	}
	return err
}

// Read returns the claim on o; blob.ErrNotFound if none.
func (c *Claims) Read(ctx context.Context, o Ref) (*Claim, error) {
	return ledger.ReadDoc[Claim](ctx, c.store, c.key(o))
}

// Hold renews the claim on o every third of a lease until the returned
// stop function is called, and returns a context derived from ctx that is
// cancelled when the claim can no longer be kept: taken over, or not
// renewed in time (the holder must stop before another can take over).
func (c *Claims) Hold(ctx context.Context, o Ref, owner string) (context.Context, func()) {
	return lease.Keep(ctx, c.lease(), func(ctx context.Context) error { return c.Renew(ctx, o, owner) }, IsLost)
}

// Wait waits while another invocation holds the claim on o, polling about
// every poll, and returns the claim once it is done, released or lapsed,
// or the last one seen when ctx ends (with ctx's error).
func (c *Claims) Wait(ctx context.Context, o Ref, poll time.Duration) (*Claim, error) {
	for {
		cl, err := c.Read(ctx, o)
		if err != nil {
			return nil, err
		}
		if cl.State != Active || !c.now().Before(cl.Until) {
			return cl, nil
		}
		select {
		case <-ctx.Done():
			return cl, ctx.Err()
		case <-time.After(poll/2 + rand.N(poll)):
		}
	}
}

// InFlight counts the objects of session that an invocation is
// validating or uploading now: claims that are active and not lapsed. One
// LIST request per thousand claims of the session, and a read of each
// claim written within the last lease (an older one cannot be active).
func (c *Claims) InFlight(ctx context.Context, session string) (int, error) {
	entries, err := c.store.ListEntries(ctx, c.sessionPrefix(session))
	if err != nil {
		return 0, err
	}
	n := 0
	now := c.now()
	since := now.Add(-c.lease())
	for _, e := range entries {
		if !e.Modified.After(since) {
			continue
		}
		cl, err := ledger.ReadDoc[Claim](ctx, c.store, e.Key)
		if blob.IsNotFound(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if cl.State == Active && now.Before(cl.Until) {
			n++
		}
	}
	return n, nil
}

// Store returns the store the claims are kept in.
func (c *Claims) Store() blob.Store { return c.store }
