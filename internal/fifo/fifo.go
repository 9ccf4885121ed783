// Package fifo is a bounded map with first-in-first-out eviction, sharded
// so that concurrent requests rarely wait on one lock. The verified-token
// cache, the machine-token results and the userinfo profiles keep their
// entries in it.
package fifo

import "sync"

const shards = 16

// Cache holds at most about size entries (the bound is per shard). The
// zero value is not usable; make one with New. Safe for concurrent use.
type Cache[K comparable, V any] struct {
	shards  [shards]shard[K, V]
	per     int
	shardOf func(K) uint64
}

type shard[K comparable, V any] struct {
	mu   sync.Mutex
	m    map[K]V
	ring []K // insertion order
	next int
}

// New returns a cache of size entries (at least one per shard). shardOf
// spreads keys over the shards: a hash of the key, never user input as is.
func New[K comparable, V any](size int, shardOf func(K) uint64) *Cache[K, V] {
	c := &Cache[K, V]{per: max(size/shards, 1), shardOf: shardOf}
	for i := range c.shards {
		// Grown on demand: a large bound costs nothing until it is used.
		c.shards[i].m = make(map[K]V)
	}
	return c
}

func (c *Cache[K, V]) shard(k K) *shard[K, V] { return &c.shards[c.shardOf(k)%shards] }

// Get returns k's value, if held.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	s := c.shard(k)
	s.mu.Lock()
	v, ok := s.m[k]
	s.mu.Unlock()
	return v, ok
}

// Put stores v under k; a new key in a full shard evicts the shard's
// oldest insertion.
func (c *Cache[K, V]) Put(k K, v V) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		s.m[k] = v
		return
	}
	if len(s.ring) < c.per {
		s.ring = append(s.ring, k)
	} else {
		// Evict the oldest insertion; it may already be gone.
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % c.per
	}
	s.m[k] = v
}

// Delete drops k.
func (c *Cache[K, V]) Delete(k K) {
	s := c.shard(k)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// DeleteIf drops k if drop says so of its value, under the shard's lock: a
// caller that judged a value it got earlier drops that one, never one put
// since.
func (c *Cache[K, V]) DeleteIf(k K, drop func(V) bool) {
	s := c.shard(k)
	s.mu.Lock()
	if v, ok := s.m[k]; ok && drop(v) {
		delete(s.m, k)
	}
	s.mu.Unlock()
}

// Len is the number of entries held.
func (c *Cache[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
