package lifecycle

import (
	"sync"

	"github.com/byodrop/byodrop/internal/ledger"
)

// maxCached bounds a RecordCache; past it the cache starts afresh.
const maxCached = 1024

// RecordCache keeps, for the life of a process (a warm Lambda container),
// the last record of each session this process read or wrote that has a
// Graph session id. A session's id never changes once it is set, so a
// cached record is enough to find the session without a read; whether it
// still takes files, Graph says when the upload is sent (a refusal is then
// read back as late), and the next write of the record starts from the
// cached form, which costs a read only if someone wrote it since.
type RecordCache struct {
	mu   sync.Mutex
	recs map[string]*ledger.Session
}

// get returns the cached record of sessionKey, or nil.
func (c *RecordCache) get(sessionKey string) *ledger.Session {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recs[sessionKey]
}

// put caches rec if it names a Graph session; an ended one is dropped, so
// that the next file reads the record again.
func (c *RecordCache) put(rec *ledger.Session) {
	if c == nil || rec == nil {
		return
	}
	key := rec.Target.SessionKey()
	c.mu.Lock()
	defer c.mu.Unlock()
	if rec.SessionID == "" || rec.Ended() {
		delete(c.recs, key)
		return
	}
	if c.recs == nil || len(c.recs) >= maxCached {
		c.recs = map[string]*ledger.Session{}
	}
	c.recs[key] = rec
}
