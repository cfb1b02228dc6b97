package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/review"
)

// ClaimState is where the handling of one object version is.
type ClaimState string

const (
	// Active: an invocation is handling the object until the claim's Until.
	Active ClaimState = "active"
	// Released: the last holder stopped early (a transient failure, a
	// deadline) and let go; the next attempt takes over at once.
	Released ClaimState = "released"
	// Done: the object version has its final outcome.
	Done ClaimState = "done"
)

// Claim records who handles one object version, and how it ended.
type Claim struct {
	Key       string     `json:"key"`
	VersionID string     `json:"versionId,omitempty"`
	ETag      string     `json:"etag,omitempty"`
	State     ClaimState `json:"state"`
	Owner     string     `json:"owner"`
	Until     time.Time  `json:"until"`
	// Attempts counts the invocations that took the claim. After the first,
	// an upload may already be in Graph.
	Attempts  int           `json:"attempts"`
	Outcome   review.Status `json:"outcome,omitempty"`
	SessionID string        `json:"sessionId,omitempty"`
	UpdatedAt time.Time     `json:"updatedAt"`
}

// ObjectRef names one version of a dropped object.
type ObjectRef struct {
	Key       string
	VersionID string
	ETag      string
}

// version is the identity of the object's version: its VersionId in a
// versioned bucket, else its ETag.
func (o ObjectRef) version() string {
	if o.VersionID != "" {
		return o.VersionID
	}
	return o.ETag
}

func (l *Ledger) claimKey(o ObjectRef) string {
	sum := sha256.Sum256([]byte(o.Key + "\x00" + o.version()))
	return l.prefix + "claims/" + hex.EncodeToString(sum[:16]) + ".json"
}

// ClaimResult is the answer to an attempt to claim an object version.
type ClaimResult struct {
	Claim Claim
	// Acquired: the caller now holds the claim and must finish or release it.
	Acquired bool
	// Resumed: an earlier attempt held the claim and may have uploaded
	// before it stopped; check Graph before uploading again.
	Resumed bool
}

// TakeClaim claims object o for owner until the given time. It is acquired
// when no one holds it: first time, released, or lapsed (the holder crashed
// or timed out). Otherwise the result says who has it, or how it ended.
func (l *Ledger) TakeClaim(ctx context.Context, o ObjectRef, owner string, until time.Time) (ClaimResult, error) {
	// Most objects are claimed once: try the create-only write first, which
	// saves the read that the general update starts with.
	first := Claim{Key: o.Key, VersionID: o.VersionID, ETag: o.ETag, State: Active, Owner: owner, Until: until,
		Attempts: 1, UpdatedAt: l.Now().UTC()}
	data, err := json.MarshalIndent(&first, "", "  ")
	if err != nil {
		return ClaimResult{}, err
	}
	_, err = l.store.Create(ctx, l.claimKey(o), data)
	if err == nil {
		return ClaimResult{Claim: first, Acquired: true}, nil
	}
	if !blob.IsPrecondition(err) {
		return ClaimResult{}, err
	}
	var res ClaimResult
	_, err = update(ctx, l.store, l.claimKey(o), func(c *Claim, exists bool) error {
		now := l.Now()
		res = ClaimResult{Claim: *c}
		if exists && (c.State == Done || (c.State == Active && now.Before(c.Until))) {
			return ErrNoChange
		}
		res.Resumed = exists && c.Attempts > 0
		*c = Claim{Key: o.Key, VersionID: o.VersionID, ETag: o.ETag, State: Active, Owner: owner, Until: until,
			Attempts: c.Attempts + 1, UpdatedAt: now.UTC()}
		res.Claim, res.Acquired = *c, true
		return nil
	})
	return res, err
}

// FinishClaim records the final outcome of a claim the caller holds.
func (l *Ledger) FinishClaim(ctx context.Context, o ObjectRef, owner string, outcome review.Status, sessionID string) error {
	return l.endClaim(ctx, o, owner, func(c *Claim) {
		c.State, c.Outcome, c.SessionID = Done, outcome, sessionID
	})
}

// ReleaseClaim lets go of a claim the caller holds without an outcome, so
// that the next attempt can take over at once.
func (l *Ledger) ReleaseClaim(ctx context.Context, o ObjectRef, owner string) error {
	return l.endClaim(ctx, o, owner, func(c *Claim) { c.State = Released })
}

func (l *Ledger) endClaim(ctx context.Context, o ObjectRef, owner string, change func(*Claim)) error {
	_, err := update(ctx, l.store, l.claimKey(o), func(c *Claim, exists bool) error {
		if !exists || c.Owner != owner || c.State != Active {
			// Someone else took over after our claim lapsed: their outcome
			// stands, ours must not overwrite it.
			return review.Errorf(review.Transient, "claim on %s was taken over by another invocation", o.Key)
		}
		change(c)
		c.UpdatedAt = l.Now().UTC()
		return nil
	})
	return err
}

// ReadClaim returns the claim on o; blob.ErrNotFound if none.
func (l *Ledger) ReadClaim(ctx context.Context, o ObjectRef) (*Claim, error) {
	return read[Claim](ctx, l.store, l.claimKey(o))
}
