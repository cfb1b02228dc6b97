package blob

import (
	"bytes"
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mem is an in-memory Store with the conditional-write rules of S3, for
// tests and fuzzers that need no server.
type Mem struct {
	mu       sync.Mutex
	docs     map[string][]byte
	etags    map[string]string
	modified map[string]time.Time
	seq      int
}

// NewMem returns an empty Mem.
func NewMem() *Mem {
	return &Mem{docs: map[string][]byte{}, etags: map[string]string{}, modified: map[string]time.Time{}}
}

// Set stores data at key as it is, with a fresh ETag (for tests that plant
// documents, valid or not).
func (m *Mem) Set(key string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.write(key, data)
}

// Data returns what is stored at key (nil if nothing).
func (m *Mem) Data(key string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.docs[key])
}

// Get implements Store.
func (m *Mem) Get(_ context.Context, key string) (Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[key]
	if !ok {
		return Object{}, ErrNotFound
	}
	return Object{Data: bytes.Clone(d), ETag: m.etags[key]}, nil
}

func (m *Mem) write(key string, data []byte) string {
	m.seq++
	m.docs[key] = bytes.Clone(data)
	m.etags[key] = `"` + strconv.Itoa(m.seq) + `"`
	m.modified[key] = time.Now()
	return m.etags[key]
}

// Create implements Store.
func (m *Mem) Create(_ context.Context, key string, data []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[key]; ok {
		return "", ErrPrecondition
	}
	return m.write(key, data), nil
}

// Replace implements Store.
func (m *Mem) Replace(_ context.Context, key string, data []byte, etag string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[key]; !ok {
		return "", ErrNotFound
	}
	if m.etags[key] != etag {
		return "", ErrPrecondition
	}
	return m.write(key, data), nil
}

// Put implements Store.
func (m *Mem) Put(_ context.Context, key string, data []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.write(key, data), nil
}

// Delete implements Store.
func (m *Mem) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, key)
	delete(m.etags, key)
	delete(m.modified, key)
	return nil
}

// List implements Store.
func (m *Mem) List(ctx context.Context, prefix string) ([]string, error) {
	entries, _ := m.ListEntries(ctx, prefix)
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys, nil
}

// ListEntries implements Store.
func (m *Mem) ListEntries(_ context.Context, prefix string) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Entry
	for k := range m.docs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, Entry{Key: k, Modified: m.modified[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
