// Package fifo is a bounded map with first-in-first-out eviction. The
// verified-token cache, the machine-token results and the userinfo
// profiles keep their entries in it.
//
// Reads take no lock and write no shared memory (xsync.Map). On a server
// with several cores, one session's requests land on all of them, and a
// lock taken for each lookup (even a read lock) moves its cache line to
// the core of each request: with a mutex, a token-cache hit from two cores
// at once cost twice the CPU of one from a single core
// (verifier.BenchmarkVerifyCachedParallel). Writes are rare (a new token,
// an eviction) and take their shard's lock, which keeps the order.
package fifo

import (
	"sync"

	"github.com/puzpuzpuz/xsync/v4"
)

const shards = 16

// Cache holds at most about size entries (the bound is per shard). The
// zero value is not usable; make one with New. Safe for concurrent use.
type Cache[K comparable, V any] struct {
	m       *xsync.Map[K, V] // read without a lock; written under the key's shard lock
	shards  [shards]shard[K]
	per     int
	shardOf func(K) uint64
}

// shard is the eviction order of the keys it spreads to. Every write of
// such a key holds mu, so the map's entries for them agree with n.
type shard[K comparable] struct {
	mu   sync.Mutex
	ring []K // insertion order
	next int
	n    int
}

// New returns a cache of size entries (at least one per shard). shardOf
// spreads keys over the shards: a hash of the key, never user input as is.
// A large bound costs nothing until it is used.
func New[K comparable, V any](size int, shardOf func(K) uint64) *Cache[K, V] {
	return &Cache[K, V]{m: xsync.NewMap[K, V](), per: max(size/shards, 1), shardOf: shardOf}
}

func (c *Cache[K, V]) shard(k K) *shard[K] { return &c.shards[c.shardOf(k)%shards] }

// Get returns k's value, if held.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	return c.m.Load(k)
}

// Put stores v under k; a new key in a full shard evicts the shard's
// oldest insertion.
func (c *Cache[K, V]) Put(k K, v V) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, loaded := c.m.LoadAndStore(k, v); loaded {
		return // an update keeps its place
	}
	s.n++
	if len(s.ring) < c.per {
		s.ring = append(s.ring, k)
		return
	}
	// Evict the oldest insertion; it may already be gone.
	if _, ok := c.m.LoadAndDelete(s.ring[s.next]); ok {
		s.n--
	}
	s.ring[s.next] = k
	s.next = (s.next + 1) % c.per
}

// Delete drops k.
func (c *Cache[K, V]) Delete(k K) {
	c.DeleteIf(k, func(V) bool { return true })
}

// DeleteIf drops k if drop says so of its value, under the shard's lock: a
// caller that judged a value it got earlier drops that one, never one put
// since.
func (c *Cache[K, V]) DeleteIf(k K, drop func(V) bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := c.m.Load(k); ok && drop(v) {
		c.m.Delete(k)
		s.n--
	}
}

// Len is the number of entries held.
func (c *Cache[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}
