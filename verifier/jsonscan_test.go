package verifier

import (
	"encoding/json"
	"strings"
	"testing"
)

var scanCases = []string{
	`{}`, ` { "a" : 1 } `, `{"a":[1,2,{"b":null}],"c":true,"d":false}`, `{"a":-0.5e+10}`, `{"a":"\u00e9\n\"x"}`,
	`{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":[1,]}`, `{"a":[}`, `{"a":1}}`, `{"a":1} x`, `[]`, `"s"`,
	`null`, ``, `{`, `{"a":{"b":{"c":[[[]]]}}}`, `{"a":1e5,"b":-1.25E-3,"c":0}`, `{"":1}`,
}

// TestScanAgreesWithEncodingJSON: on inputs without duplicate members the
// scanner accepts exactly what encoding/json accepts as an object.
func TestScanAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range scanCases {
		var m map[string]any
		want := json.Valid([]byte(c)) && json.Unmarshal([]byte(c), &m) == nil && m != nil
		if got := checkJSONObject([]byte(c)) == nil; got != want {
			t.Errorf("%q: scanner %v, encoding/json %v", c, got, want)
		}
	}
}

func TestScanRejectsDuplicatesAndDepth(t *testing.T) {
	for _, c := range []string{`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"x":{"a":1,"a":1}}`, `{"x":[{"a":1,"a":1}]}`} {
		if err := checkJSONObject([]byte(c)); err != errDuplicate {
			t.Errorf("%q: %v", c, err)
		}
	}
	deep := `{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`
	if err := checkJSONObject([]byte(deep)); err != errTooDeep {
		t.Errorf("deep: %v", err)
	}
	var names []string
	_ = scanObject([]byte(`{"sub":"u","o":{"id":"x"},"k\u0069d":1}`), func(n, raw []byte) { names = append(names, string(n)+"="+string(raw)) })
	if strings.Join(names, " ") != `sub="u" o={"id":"x"} kid=1` {
		t.Fatalf("members: %v", names)
	}
}

// FuzzScanObject checks the scanner never panics and never accepts what
// encoding/json rejects.
func FuzzScanObject(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkJSONObject(b) == nil {
			var m map[string]any
			if json.Unmarshal(b, &m) != nil || m == nil {
				t.Fatalf("scanner accepted %q, encoding/json did not", b)
			}
		}
	})
}
