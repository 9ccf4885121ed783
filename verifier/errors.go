package verifier

import (
	"errors"
	"fmt"
)

// Reason is Clerk's name for why a token was not accepted. These are the
// words @clerk/backend uses; they appear in errors, logs, {clerk.reason} and
// metrics.
type Reason string

// Clerk's reason codes.
const (
	ReasonTokenExpired                  Reason = "token-expired"
	ReasonTokenInvalid                  Reason = "token-invalid"
	ReasonTokenInvalidAlgorithm         Reason = "token-invalid-algorithm"
	ReasonTokenInvalidAuthorizedParties Reason = "token-invalid-authorized-parties"
	ReasonTokenInvalidSignature         Reason = "token-invalid-signature"
	ReasonTokenNotActiveYet             Reason = "token-not-active-yet"
	ReasonTokenIatInTheFuture           Reason = "token-iat-in-the-future"
	ReasonTokenInvalidIssuer            Reason = "token-invalid-issuer"
	ReasonTokenTypeMismatch             Reason = "token-type-mismatch"
	ReasonJWKKidMismatch                Reason = "jwk-kid-mismatch"
	ReasonJWKRemoteFailedToLoad         Reason = "jwk-remote-failed-to-load"
	ReasonSecretKeyInvalid              Reason = "secret-key-invalid"
	ReasonSessionTokenMissing           Reason = "session-token-missing"
	ReasonSessionTokenAndUATMissing     Reason = "session-token-and-uat-missing"
	ReasonSessionPending                Reason = "session-pending"
)

// Kind is the finer-grained check that failed. Several kinds share one
// Clerk reason (token-invalid covers malformed input, a bad typ and missing
// claims); tests and debug logs want the exact check.
type Kind string

// The checks a token can fail, in the vocabulary of the peer fixtures.
const (
	KindMalformed       Kind = "malformed"
	KindOversized       Kind = "oversized"
	KindAlgNotAllowed   Kind = "alg_not_allowed"
	KindUnsupportedCrit Kind = "unsupported_crit"
	KindBadTyp          Kind = "bad_typ"
	KindNotSession      Kind = "not_session_token"
	KindMissingKID      Kind = "missing_kid"
	KindUnknownKID      Kind = "unknown_kid"
	KindKeyRejected     Kind = "key_rejected"
	KindBadSignature    Kind = "bad_signature"
	KindMissingClaim    Kind = "missing_claim"
	KindInvalidClaim    Kind = "invalid_claim"
	KindBadIssuer       Kind = "bad_issuer"
	KindBadAZP          Kind = "bad_azp"
	KindBadAudience     Kind = "bad_audience"
	KindExpired         Kind = "expired"
	KindNotYetValid     Kind = "not_yet_valid"
	KindIATInFuture     Kind = "iat_in_future"
	KindPending         Kind = "session_pending"
	// KindKeysUnavailable means no key set has loaded yet: the token may be
	// fine, so callers answer 503, not 401.
	KindKeysUnavailable Kind = "keys_unavailable"

	// KindNotMachine is a token given to VerifyMachineJWT that is neither an
	// M2M JWT nor an OAuth access token (a session token, for one).
	KindNotMachine Kind = "not_machine_token"
	// KindBadCategory is an M2M JWT whose cat is not the M2M category.
	KindBadCategory Kind = "bad_category"
)

// Reason maps a kind to Clerk's reason code.
func (k Kind) Reason() Reason {
	switch k {
	case KindAlgNotAllowed:
		return ReasonTokenInvalidAlgorithm
	case KindNotSession, KindNotMachine:
		return ReasonTokenTypeMismatch
	case KindMissingKID, KindUnknownKID, KindKeyRejected:
		return ReasonJWKKidMismatch
	case KindBadSignature:
		return ReasonTokenInvalidSignature
	case KindBadIssuer:
		return ReasonTokenInvalidIssuer
	case KindBadAZP:
		return ReasonTokenInvalidAuthorizedParties
	case KindExpired:
		return ReasonTokenExpired
	case KindNotYetValid:
		return ReasonTokenNotActiveYet
	case KindIATInFuture:
		return ReasonTokenIatInTheFuture
	case KindPending:
		return ReasonSessionPending
	case KindKeysUnavailable:
		return ReasonJWKRemoteFailedToLoad
	default:
		return ReasonTokenInvalid
	}
}

// Error is a rejected token. Its message never contains the token.
type Error struct {
	Kind    Kind
	Reason  Reason
	Message string
	Err     error // underlying cause, if any (never carries the token)
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Message, e.Err)
	}
	return string(e.Reason) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func newError(kind Kind, msg string) *Error {
	return &Error{Kind: kind, Reason: kind.Reason(), Message: msg}
}

func errorf(kind Kind, format string, args ...any) *Error {
	return newError(kind, fmt.Sprintf(format, args...))
}

func wrapError(kind Kind, msg string, err error) *Error {
	return &Error{Kind: kind, Reason: kind.Reason(), Message: msg, Err: err}
}

// ReasonOf returns the Clerk reason of err, or token-invalid for errors that
// did not come from this package.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonTokenInvalid
}

// KindOf returns the failed check of err, or "" for foreign errors.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// IsKeysUnavailable reports whether err means no key set has loaded yet.
func IsKeysUnavailable(err error) bool { return KindOf(err) == KindKeysUnavailable }
