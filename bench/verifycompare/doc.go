// Package verifycompare holds a comparison benchmark: one Clerk session
// token verified by caddy-clerk's verifier and by clerk-sdk-go v2's
// jwt.Verify. It lives in the bench module so that clerk-sdk-go is never a
// requirement of the plugin's go.mod; the verifier's own benchmarks stay in
// verifier/.
//
//	cd bench && go test ./verifycompare -bench . -benchtime 2s
package verifycompare
