package clerktest

import (
	"crypto/rand"
	"encoding/hex"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randBase62 returns n uniformly random base62 characters.
func randBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic("clerktest: random source failed: " + err.Error())
		}
		for _, b := range buf {
			// 248 = 4*62: rejecting above it keeps the choice uniform.
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

func randHex(nbytes int) string {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		panic("clerktest: random source failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// Clerk ids are a prefix plus 27 base62 characters (a KSUID).
func newID(prefix string) string { return prefix + randBase62(27) }

func newKeyID() string { return newID("ins_") }

// NewUserID returns a fresh Clerk-like user id (user_…).
func NewUserID() string { return newID("user_") }

// NewSessionID returns a fresh Clerk-like session id (sess_…).
func NewSessionID() string { return newID("sess_") }

// NewOrgID returns a fresh Clerk-like organization id (org_…).
func NewOrgID() string { return newID("org_") }

func newTraceID() string { return randHex(16) }
