package verifier

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// Sessions of one organization share one Shared; Raw keeps only the
// token's own claims; Custom and Payload still see the whole payload.
func TestSplitSharesOrganizationClaims(t *testing.T) {
	split := func(payload string) *Claims { return mapClaims(t, []byte(payload)) }
	org := `"iss":"https://clerk.example.com","v":2,"fea":"o:invoices","o":{"id":"org_1","slg":"acme","rol":"admin","per":"read","fpm":"1"}`
	payload := func(i int, extra string) string {
		return fmt.Sprintf(`{"sub":"user_%d","sid":"sess_%d","exp":99,%s,"jti":"j\u00e9%d"%s}`, i, i, org, i, extra)
	}
	a, b := split(payload(1, `,"meta":{"plan":"pro"}`)), split(payload(2, ""))
	if a.Shared != b.Shared {
		t.Fatal("two sessions of one organization do not share their organization claims")
	}
	if a.OrgSlug != "acme" || !reflect.DeepEqual(a.OrgPermissions, []string{"org:invoices:read"}) || a.Subject != "user_1" || a.ID != "jé1" {
		t.Fatalf("claims: %+v %+v", a, a.Shared)
	}
	var own map[string]any
	if err := json.Unmarshal(a.Raw, &own); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"iss", "v", "fea", "o"} {
		if _, ok := own[k]; ok {
			t.Errorf("Raw keeps shared claim %s: %s", k, a.Raw)
		}
	}
	for path, want := range map[string]any{"o.slg": "acme", "sub": "user_1", "meta.plan": "pro", "v": json.Number("2"), "jti": "jé1"} {
		if got, ok := a.Custom(path); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("Custom(%q) = %v, %v; want %v", path, got, ok, want)
		}
	}
	if _, ok := b.Custom("meta.plan"); ok {
		t.Error("one session's custom claim shows in another's")
	}
	var whole, got map[string]any
	_ = json.Unmarshal([]byte(payload(1, `,"meta":{"plan":"pro"}`)), &whole)
	if err := json.Unmarshal(a.Payload(), &got); err != nil || !reflect.DeepEqual(got, whole) {
		t.Fatalf("Payload() = %s (%v); want the payload", a.Payload(), err)
	}
	if c := split(`{"sub":"user_3","sid":"sess_3","exp":99,"iss":"https://clerk.example.com","v":2}`); c.OrgID != "" || c.Shared == a.Shared {
		t.Fatalf("a session without an organization got one: %+v", c.Shared)
	}
}

// Only claims that decoded are interned: a malformed organization fails
// every time, never served from the table by a later token.
func TestShareInternsOnlyValidClaims(t *testing.T) {
	payload := []byte(`{"sub":"user_1","sid":"sess_1","exp":99,"iss":"https://clerk.example.com","v":2,"o":"acme"}`)
	for i := 0; i < 2; i++ {
		r, err := decodePayload(payload)
		if err != nil {
			t.Fatal(err)
		}
		c := &Claims{Shared: &Shared{}}
		if _, err := c.seal(r); err == nil || err.Kind != KindInvalidClaim {
			t.Fatalf("try %d: %v, want an invalid claim", i, err)
		}
	}
}
