package reliability_test

import (
	"time"

	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/ingest"
)

// setClaimLease shortens the claims' lease, so that crash cases need not
// wait a minute for a dead holder's claim to lapse.
func setClaimLease(h *ingest.Handler, d time.Duration) { h.ClaimLease = d }

// setPerSession bounds each session's check of a finalizer run.
func setPerSession(c *finalize.Closer, d time.Duration) { c.PerSession = d }
