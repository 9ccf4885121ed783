package authn

import "github.com/caddy-clerk/caddy-clerk/verifier"

// Reason is every value {clerk.reason} can take: Clerk's words where Clerk
// has one (@clerk/backend's AuthErrorReason and TokenVerificationErrorReason),
// ours where it has none. Token-level reasons are defined in verifier/ and
// listed here so this file is the whole vocabulary.
type Reason = verifier.Reason

// Token-level reasons (verifier.Error.Reason).
const (
	ReasonTokenExpired                  = verifier.ReasonTokenExpired
	ReasonTokenInvalid                  = verifier.ReasonTokenInvalid
	ReasonTokenInvalidAlgorithm         = verifier.ReasonTokenInvalidAlgorithm
	ReasonTokenInvalidAuthorizedParties = verifier.ReasonTokenInvalidAuthorizedParties
	ReasonTokenInvalidSignature         = verifier.ReasonTokenInvalidSignature
	ReasonTokenNotActiveYet             = verifier.ReasonTokenNotActiveYet
	ReasonTokenIatInTheFuture           = verifier.ReasonTokenIatInTheFuture
	ReasonTokenInvalidIssuer            = verifier.ReasonTokenInvalidIssuer
	ReasonTokenTypeMismatch             = verifier.ReasonTokenTypeMismatch
	ReasonJWKKidMismatch                = verifier.ReasonJWKKidMismatch
	ReasonJWKRemoteFailedToLoad         = verifier.ReasonJWKRemoteFailedToLoad
	ReasonSecretKeyInvalid              = verifier.ReasonSecretKeyInvalid
	ReasonSessionPending                = verifier.ReasonSessionPending
)

// Request-level reasons: no usable credential.
const (
	ReasonSessionTokenMissing       = verifier.ReasonSessionTokenMissing
	ReasonSessionTokenAndUATMissing = verifier.ReasonSessionTokenAndUATMissing
)

// Handshake reasons, in @clerk/backend's words (AuthErrorReason). They are
// sent to Clerk as __clerk_hs_reason and, for requests that cannot follow a
// handshake, answer 401.
const (
	ReasonClientUATWithoutSession Reason = "client-uat-but-no-session-token"
	ReasonSessionWithoutClientUAT Reason = "session-token-but-no-client-uat"
	ReasonIATBeforeClientUAT      Reason = "session-token-iat-before-client-uat"
	ReasonDevBrowserMissing       Reason = "dev-browser-missing"
	ReasonDevBrowserSync          Reason = "dev-browser-sync"
	ReasonSessionNBF              Reason = "session-token-nbf"
	ReasonSessionIATInFuture      Reason = "session-token-iat-in-the-future"
	// We never hold a refresh token, so an expired session is never
	// eligible for refresh; the suffix says why, as @clerk/backend does.
	ReasonExpiredNoRefreshCookie Reason = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
	ReasonExpiredNonGet          Reason = "session-token-expired-refresh-non-eligible-non-get"
)

// Satellite domains (§9.1), in @clerk/backend's words: a satellite's page
// load syncs with the primary; the primary answers a development sync and
// re-checks a signed-in page load that arrives from another origin.
const (
	ReasonSatelliteNeedsSyncing    Reason = "satellite-needs-syncing"
	ReasonPrimaryRespondsToSyncing Reason = "primary-responds-to-syncing"
	ReasonPrimaryCrossOriginSync   Reason = "primary-domain-cross-origin-sync"
)

// frontend_api_proxy refused a path that could leave the proxy prefix
// (dot segments, encoded slashes): ours.
const ReasonProxyPathInvalid Reason = "proxy-path-invalid"

// A trusted front proxy described the request it asks about
// (forwarded_request) in malformed or conflicting headers: ours.
const ReasonForwardedRequestInvalid Reason = "forwarded-request-invalid"

// Machine tokens: ours (Clerk's "No token in header" has spaces, which
// reason codes never have).
const (
	ReasonMachineTokenMissing      Reason = "machine-token-missing"
	ReasonMachineVerifyRateLimited Reason = "machine-verify-rate-limited"
	ReasonMachineVerifyUnavailable Reason = "machine-verify-unavailable"
)

// Refusals of an authenticated request (403): ours, Clerk has no words.
const (
	ReasonCSRF              Reason = "csrf-origin-mismatch"
	ReasonMissingRole       Reason = "missing-role"
	ReasonMissingPermission Reason = "missing-permission"
	ReasonClaimMismatch     Reason = "claim-mismatch"
	ReasonMissingScope      Reason = "missing-scope"
	// Clerk Billing (require_plan, require_feature): ours.
	ReasonMissingPlan    Reason = "missing-plan"
	ReasonMissingFeature Reason = "missing-feature"
	// require_reverification: Clerk's word, also in the 403's JSON body
	// that clerk-js reads (@clerk/shared REVERIFICATION_REASON).
	ReasonReverification Reason = "reverification-error"
	// ReasonActiveOrgMismatch is @clerk/backend's handshake reason: the URL
	// names another tenant than the credential's active organization (or
	// names its tenant ambiguously). Sent as __clerk_hs_reason on
	// activation handshakes; 403 where no handshake can fix it.
	ReasonActiveOrgMismatch Reason = "active-organization-mismatch"
	// ReasonOrganizationRequired: the active organization is none of
	// require_org's.
	ReasonOrganizationRequired Reason = "organization-required"
)

// Webhooks refused by clerk_webhook: ours.
const (
	ReasonWebhookHeadersMissing   Reason = "webhook-headers-missing"
	ReasonWebhookHeadersMalformed Reason = "webhook-headers-malformed"
	ReasonWebhookSignature        Reason = "webhook-signature-mismatch"
	ReasonWebhookTimestamp        Reason = "webhook-timestamp-out-of-tolerance"
	ReasonWebhookReplayed         Reason = "webhook-replayed"
	ReasonWebhookTooLarge         Reason = "webhook-body-too-large"
	ReasonWebhookUnreadable       Reason = "webhook-body-unreadable"
)
