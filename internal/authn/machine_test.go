package authn

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/internal/machine"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// fakeOpaque answers opaque tokens by their text: "ak_ok", "ak_limit",
// "ak_down", "ak_key" (our key refused), anything else invalid.
type fakeOpaque struct{ calls int }

func (f *fakeOpaque) Verify(_ context.Context, kind, token string, _ time.Time) (*verifier.Machine, machine.Result, error) {
	f.calls++
	switch token[len(token)-3:] {
	case "_ok":
		return &verifier.Machine{Type: verifier.TokenType(kind), ID: "id_1", Subject: "user_1"}, machine.ResultOK, nil
	case "imi":
		return nil, machine.ResultRateLimited, machine.ErrRateLimited
	case "own":
		return nil, machine.ResultUnavailable, machine.ErrUnavailable
	case "key":
		return nil, machine.ResultUnavailable, fmt.Errorf("%w: 401", machine.ErrKeyInvalid)
	}
	return nil, machine.ResultInvalid, machine.ErrInvalid
}

// TestAcceptMachines: §1.3's decision table as §11.1 decided it, for every
// accept setting and token type.
func TestAcceptMachines(t *testing.T) {
	e := newEnv(t, true, true)
	c := e.clerk
	session := e.token(clerktest.TokenOptions{})
	m2m := c.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: "mch_1", Scopes: "mch_2 mch_3"})
	m2mTypAT := c.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: "mch_1", Header: clerktest.HeaderOptions{Typ: "at+jwt"}})
	m2mExpired := c.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: "mch_1", IssuedAt: now.Add(-2 * time.Hour), Lifetime: time.Hour})
	oauth := c.MustMintOAuthJWT(clerktest.OAuthJWTOptions{Subject: "user_1", ClientID: "client_1", Scope: "read write"})
	template := e.token(clerktest.TokenOptions{Header: clerktest.HeaderOptions{Cat: "cl_B7d4PD222AAA"}})

	type row struct {
		token  string
		status Status
		reason Reason
		typ    verifier.TokenType // of a verified machine
	}
	for _, tc := range []struct {
		accept Accept
		rows   []row
	}{
		{0, []row{ // the default: sessions only
			{session, SignedIn, "", ""},
			{"ak_ok", SignedOut, ReasonTokenTypeMismatch, ""},
			{"mt_ok", SignedOut, ReasonTokenTypeMismatch, ""},
			{m2m, SignedOut, ReasonTokenTypeMismatch, ""},
			{oauth, SignedOut, ReasonTokenTypeMismatch, ""},
			{template, SignedOut, ReasonTokenTypeMismatch, ""},
			{"garbage", SignedOut, ReasonTokenInvalid, ""},
		}},
		{AcceptAny, []row{
			{session, SignedIn, "", ""},
			{template, SignedOut, ReasonTokenTypeMismatch, ""}, // never a session, also under any
			{"ak_ok", SignedIn, "", verifier.TokenAPIKey},
			{"mt_ok", SignedIn, "", verifier.TokenM2M},
			{"oat_ok", SignedIn, "", verifier.TokenOAuth},
			{m2m, SignedIn, "", verifier.TokenM2M},
			{oauth, SignedIn, "", verifier.TokenOAuth},
			{m2mTypAT, SignedOut, ReasonTokenInvalid, ""}, // M2M by sub (§1.2 order), then typ must be JWT
			{m2mExpired, SignedOut, ReasonTokenExpired, ""},
			{"ak_nope", SignedOut, ReasonTokenInvalid, ""},
			{"ak_limi", Unavailable, ReasonMachineVerifyRateLimited, ""},
			{"ak_down", Unavailable, ReasonMachineVerifyUnavailable, ""},
		}},
		{AcceptAPIKey, []row{
			{"ak_ok", SignedIn, "", verifier.TokenAPIKey},
			{session, SignedOut, ReasonTokenTypeMismatch, ""},
			{"mt_ok", SignedOut, ReasonTokenTypeMismatch, ""},
			{oauth, SignedOut, ReasonTokenTypeMismatch, ""},
			{"", SignedOut, ReasonMachineTokenMissing, ""},
		}},
		{AcceptM2M | AcceptSession, []row{
			{m2m, SignedIn, "", verifier.TokenM2M},
			{session, SignedIn, "", ""},
			{oauth, SignedOut, ReasonTokenTypeMismatch, ""},
		}},
	} {
		fo := &fakeOpaque{}
		cfg := e.a.cfg
		cfg.Accept, cfg.MachineJWT, cfg.Opaque = tc.accept, cfg.Verifier.(*verifier.Verifier), fo
		a := New(cfg)
		for _, row := range tc.rows {
			t.Run(fmt.Sprintf("accept %b %.12s", tc.accept, row.token), func(t *testing.T) {
				r := req("fetch", "/api")
				if row.token != "" {
					r.Header.Set("Authorization", "Bearer "+row.token)
				}
				st := a.state(context.Background(), Request{HTTP: r})
				if st.Status != row.status || st.Reason != row.reason {
					t.Fatalf("%v %q (%v), want %v %q", st.Status, st.Reason, st.Err, row.status, row.reason)
				}
				if row.typ != "" && (st.Machine == nil || st.Machine.Type != row.typ || st.Claims != nil) {
					t.Fatalf("machine %+v, want type %s", st.Machine, row.typ)
				}
				if row.typ == "" && st.Machine != nil {
					t.Fatalf("a machine %+v", st.Machine)
				}
				if st.Status == Unavailable && st.RetryAfter <= 0 {
					t.Fatal("503 without Retry-After")
				}
			})
		}
	}
}

// TestMachineRoutesNeverRedirect: a route that takes only machine tokens
// answers a page load 401, not a sign-in redirect, and reads no cookies.
func TestMachineRoutesNeverRedirect(t *testing.T) {
	e := newEnv(t, true, true)
	cfg := e.a.cfg
	cfg.Accept, cfg.MachineJWT, cfg.Opaque = AcceptAPIKey, cfg.Verifier.(*verifier.Verifier), &fakeOpaque{}
	a := New(cfg)
	st := a.state(context.Background(), Request{HTTP: req("page", "/", "__session="+e.token(clerktest.TokenOptions{}), uat(now))})
	checkState(t, st, SignedOut, ReasonMachineTokenMissing, "", nil)
	r := req("page", "/")
	r.Header.Set("Authorization", "Bearer ak_nope")
	checkState(t, a.state(context.Background(), Request{HTTP: r}), SignedOut, ReasonTokenInvalid, "", nil)
}

func TestMachineKeyRefused(t *testing.T) {
	e := newEnv(t, true, true)
	cfg := e.a.cfg
	cfg.Accept, cfg.MachineJWT, cfg.Opaque = AcceptAny, cfg.Verifier.(*verifier.Verifier), &fakeOpaque{}
	r := req("fetch", "/api")
	r.Header.Set("Authorization", "ak_key") // a bare token, no scheme
	st := New(cfg).state(context.Background(), Request{HTTP: r})
	if st.Status != Unavailable || !st.KeyRefused || st.Reason != ReasonMachineVerifyUnavailable {
		t.Fatalf("%+v", st)
	}
	// A machine token in a cookie is no credential.
	r = req("fetch", "/api", "__session=ak_ok")
	if st := New(cfg).state(context.Background(), Request{HTTP: r}); st.Status != SignedOut {
		t.Fatalf("%v", st.Status)
	}
}
