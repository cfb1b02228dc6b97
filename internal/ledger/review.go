package ledger

import (
	"context"
	"strings"
	"time"
)

// ReviewStatus is what became of one (review instance, resource) pair that
// discovery found (product.md, the review record).
type ReviewStatus string

// The statuses of a review record.
const (
	// ReviewUploading: the session is open and the standing files are
	// being (or have been) uploaded; it is not closed yet.
	ReviewUploading ReviewStatus = "uploading"
	// ReviewComplete: the session is closed; Entra processes the data.
	ReviewComplete ReviewStatus = "complete"
	// ReviewNoData: the resource had no usable standing data when the
	// review was found; a later run in the window still sends data.
	ReviewNoData ReviewStatus = "no-data"
	// ReviewLate: the session had ended (or the instance moved on) before
	// the data could be sent.
	ReviewLate ReviewStatus = "late"
	// ReviewFailed: the last run could not send the data; the next run
	// tries again while the instance is Initializing.
	ReviewFailed ReviewStatus = "failed"
	// ReviewExpired: the session expired before it could be closed; Entra
	// did not process the data.
	ReviewExpired ReviewStatus = "expired"
)

// Final reports whether nothing more will happen to the pair.
func (s ReviewStatus) Final() bool {
	return s == ReviewComplete || s == ReviewLate || s == ReviewExpired
}

// ReviewFile is one standing file of a review record.
type ReviewFile struct {
	Key       string `json:"key"`
	VersionID string `json:"versionId,omitempty"`
	ETag      string `json:"etag,omitempty"`
	Bytes     int64  `json:"bytes"`
	Rows      int64  `json:"rows"`
	// Status is uploaded, pending (chosen, not uploaded yet), failed, or
	// expired (uploaded to a session that expired).
	Status string `json:"status"`
	// Fallback is set when the file's current version was rejected and
	// this earlier ready version was sent instead.
	Fallback bool `json:"fallback,omitempty"`
}

// Review is the review record of one (review instance, resource) pair, at
// <STATE_PREFIX>reviews/<reviewInstanceId>/<resourceId>.json.
type Review struct {
	ReviewInstanceID   string       `json:"reviewInstanceId"`
	ReviewDefinitionID string       `json:"reviewDefinitionId"`
	ReviewName         string       `json:"reviewName"`
	CatalogID          string       `json:"catalogId"`
	ResourceID         string       `json:"resourceId"`
	ResourceName       string       `json:"resourceName"`
	Status             ReviewStatus `json:"status"`
	SessionID          string       `json:"sessionId,omitempty"`
	WindowEnds         time.Time    `json:"windowEnds,omitzero"`
	DiscoveredAt       time.Time    `json:"discoveredAt,omitzero"`
	ClosedAt           time.Time    `json:"closedAt,omitzero"`
	Files              []ReviewFile `json:"files"`
	Message            string       `json:"message,omitempty"`
	UpdatedAt          time.Time    `json:"updatedAt,omitzero"`
}

// ReviewKey is where the review record of (instance, resource) is kept.
func (l *Ledger) ReviewKey(instanceID, resourceID string) string {
	return l.prefix + "reviews/" + strings.ToLower(instanceID) + "/" + strings.ToLower(resourceID) + ".json"
}

// Review reads the review record of (instance, resource); blob.ErrNotFound
// if there is none.
func (l *Ledger) Review(ctx context.Context, instanceID, resourceID string) (*Review, error) {
	return ReadDoc[Review](ctx, l.store, l.ReviewKey(instanceID, resourceID))
}

// UpdateReview applies fn to the review record of (instance, resource) with
// a conditional write (see UpdateDoc); fn gets exists false and a zero
// record when there is none.
func (l *Ledger) UpdateReview(ctx context.Context, instanceID, resourceID string, fn func(r *Review, exists bool) error) (*Review, error) {
	return UpdateDoc(ctx, l.store, l.ReviewKey(instanceID, resourceID), func(r *Review, exists bool) error {
		if err := fn(r, exists); err != nil {
			return err
		}
		if r.Files == nil {
			r.Files = []ReviewFile{}
		}
		r.UpdatedAt = l.Now().UTC()
		return nil
	})
}
