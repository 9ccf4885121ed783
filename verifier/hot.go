package verifier

import (
	"sync/atomic"
	"unsafe"
)

// A cache hit answers with Claims, and a request's Claims outlive its
// handler (placeholders are read by access logs, after it returns), so
// building a copy per hit costs the caller a heap allocation of about 200
// bytes: a tenth of what Caddy allocates for a whole request, and a Go
// server's GC work follows the bytes allocated. hot keeps the Claims built
// for the entries hit most recently, and a hit shares them: entries are
// immutable and Claims are read-only, so every request with the token can
// read the same ones.
//
// Direct-mapped by entry: a slot holds the Claims of the last entry that
// landed in it, and an entry that finds another's builds its own. Memory is
// bounded (hotSlots × about 210 bytes, plus the entries they keep alive
// after the cache let go of them), whatever the number of sessions. One
// table for the process: an entry is found by its identity, so caches
// cannot answer for each other.
var hot [hotSlots]atomic.Pointer[hotClaims]

const hotBits = 10
const hotSlots = 1 << hotBits

type hotClaims struct {
	e *cachedToken
	c Claims
}

// sharedClaims is e's session, built once while e stays hot.
func (e *cachedToken) sharedClaims() *Claims {
	s := &hot[hotSlot(e)]
	if h := s.Load(); h != nil && h.e == e {
		return &h.c
	}
	h := &hotClaims{e: e}
	e.claimsOf(&h.c)
	s.Store(h)
	return &h.c
}

// hotSlot spreads entries by address (Go's heap objects do not move).
func hotSlot(e *cachedToken) uint64 {
	return uint64(uintptr(unsafe.Pointer(e))) * 0x9e3779b97f4a7c15 >> (64 - hotBits)
}
