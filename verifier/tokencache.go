package verifier

import (
	"context"
	"hash/maphash"

	"github.com/caddy-clerk/caddy-clerk/internal/fifo"
)

// DefaultTokenCacheSize is the default number of verified tokens kept:
// enough for 50,000 sessions active within a token's minute (about 15 MB
// of heap when full), so a busy site's verifications stay mostly cached. The load
// harness showed 10,000 missing every request with 20,000 sessions.
const DefaultTokenCacheSize = 50000

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
	seed    maphash.Seed
	entries *fifo.Cache[tokenID, *cachedToken] // bounded per shard, the oldest insertion evicted
}

type tokenID uint64

// NewTokenCache returns a cache holding at most size tokens (at least 16).
func NewTokenCache(size int) *TokenCache {
	return &TokenCache{seed: maphash.MakeSeed(),
		entries: fifo.New[tokenID, *cachedToken](size, func(id tokenID) uint64 { return uint64(id) })}
}

// Len is the number of cached tokens.
func (c *TokenCache) Len() int { return c.entries.Len() }

func (c *TokenCache) id(token string) tokenID { return tokenID(maphash.String(c.seed, token)) }

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
	e, _ := c.entries.Get(id)
	switch {
	case e == nil || e.tail != tail(token):
		return nil // none, or another token's by a chance of 2^-64
	case e.expMs <= nowMs-skewMs:
		c.drop(id, e)
		return nil
	case (e.machineOf() != nil) != machine:
		return nil
	}
	if k, err := keys.Key(ctx, e.kid()); err != nil || k != e.key {
		c.drop(id, e)
		return nil
	}
	return e
}

// drop removes e, unless a newer entry took its place.
func (c *TokenCache) drop(id tokenID, e *cachedToken) {
	c.entries.DeleteIf(id, func(v *cachedToken) bool { return v == e })
}

func (c *TokenCache) putMachine(token string, m *Machine, key *Key, kid string) {
	e := &cachedToken{extra: &entryExtra{machine: m}, expMs: m.Expiry.UnixMilli()}
	e.setKey(key, kid)
	c.store(token, e)
}

func (c *TokenCache) store(token string, e *cachedToken) {
	e.tail = tail(token)
	c.entries.Put(c.id(token), e)
}
