package verifier

import (
	"context"
	"hash/maphash"
	"sync"
)

// DefaultTokenCacheSize is the default number of verified tokens kept:
// enough for 50,000 sessions active within a token's minute (about 15 MB
// of heap when full), so a busy site's verifications stay mostly cached. The load
// harness showed 10,000 missing every request with 20,000 sessions.
const DefaultTokenCacheSize = 50000

const tokenShards = 16

// TokenCache remembers verified tokens so that the dozens of requests a
// page load makes with one token pay for one RSA verification. An entry
// lives no longer than its token's exp, every hit re-checks exp against the
// clock, and an entry whose signing key left the key set (or changed) is
// dropped and the token verified afresh. Tokens are identified by a 64-bit
// keyed hash with a secret random seed, confirmed by their last 8 bytes
// (the end of the signature, random for every token): the cache holds no
// tokens, an attacker cannot aim for a collision, and two tokens have 112
// bits to collide in by chance. One pass over the token: hashing it is
// most of what a hit costs. Sessions (Verify) and machine JWTs
// (VerifyMachineJWT) share it; an entry answers only the verification that
// made it. Safe for concurrent use.
type TokenCache struct {
	seed   maphash.Seed
	shards [tokenShards]tokenShard
	cap    int // per shard
}

type tokenID uint64

type tokenShard struct {
	mu   sync.Mutex
	m    map[tokenID]*cachedToken
	ring []tokenID // insertion order, for FIFO eviction
	next int
}

// NewTokenCache returns a cache holding at most size tokens (at least 16).
func NewTokenCache(size int) *TokenCache {
	per := max(size/tokenShards, 1)
	c := &TokenCache{seed: maphash.MakeSeed(), cap: per}
	for i := range c.shards {
		// Grown on demand: a large bound costs nothing until it is used.
		c.shards[i].m = make(map[tokenID]*cachedToken)
	}
	return c
}

// Len is the number of cached tokens.
func (c *TokenCache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (c *TokenCache) id(token string) tokenID { return tokenID(maphash.String(c.seed, token)) }

func (c *TokenCache) shard(id tokenID) *tokenShard { return &c.shards[id%tokenShards] }

// tail is a token's last 8 bytes (fewer for a shorter one), which confirm
// that an entry found by hash is the token's.
func tail(token string) uint64 {
	var t uint64
	for i := max(len(token)-8, 0); i < len(token); i++ {
		t = t<<8 | uint64(token[i])
	}
	return t
}

// get returns the cached session of token if it is still within exp and
// its key is still the one the key source gives for its kid.
func (c *TokenCache) get(ctx context.Context, token string, nowMs, skewMs int64, keys Keys) *cachedToken {
	return c.lookup(ctx, token, nowMs, skewMs, keys, false)
}

// getMachine is get for tokens VerifyMachineJWT verified.
func (c *TokenCache) getMachine(ctx context.Context, token string, nowMs, skewMs int64, keys Keys) (*Machine, bool) {
	e := c.lookup(ctx, token, nowMs, skewMs, keys, true)
	if e == nil {
		return nil, false
	}
	return e.machineOf(), true
}

// lookup finds token's entry of the kind asked for (a machine token or a
// session), dropping it if it expired or its key changed. An entry of the
// other kind is left alone: that verification will fail on its own.
func (c *TokenCache) lookup(ctx context.Context, token string, nowMs, skewMs int64, keys Keys, machine bool) *cachedToken {
	id := c.id(token)
	s := c.shard(id)
	s.mu.Lock()
	e := s.m[id]
	if e != nil && e.tail != tail(token) {
		e = nil // another token's, by a chance of 2^-64
	} else if e != nil && e.expMs <= nowMs-skewMs {
		delete(s.m, id)
		e = nil
	}
	s.mu.Unlock()
	if e == nil || (e.machineOf() != nil) != machine {
		return nil
	}
	if k, err := keys.Key(ctx, e.kid()); err != nil || k != e.key {
		s.mu.Lock()
		if s.m[id] == e {
			delete(s.m, id)
		}
		s.mu.Unlock()
		return nil
	}
	return e
}

func (c *TokenCache) putMachine(token string, m *Machine, key *Key, kid string) {
	e := &cachedToken{extra: &entryExtra{machine: m}, expMs: m.Expiry.UnixMilli()}
	e.setKey(key, kid)
	c.store(token, e)
}

func (c *TokenCache) store(token string, e *cachedToken) {
	id := c.id(token)
	e.tail = tail(token)
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		s.m[id] = e
		return
	}
	if len(s.ring) < c.cap {
		s.ring = append(s.ring, id)
	} else {
		delete(s.m, s.ring[s.next]) // evict the oldest insertion
		s.ring[s.next] = id
		s.next = (s.next + 1) % c.cap
	}
	s.m[id] = e
}
