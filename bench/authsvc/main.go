// Command authsvc is the do-it-yourself alternative the load harness
// compares against: a forward_auth target built on clerk-sdk-go v2's
// RequireHeaderAuthorization middleware. Every request is verified; the SDK
// caches the JWKS, never tokens.
//
//	authsvc -listen 127.0.0.1:9100 -api-url http://127.0.0.1:4000/v1 \
//	        -secret-key sk_test_… -issuer http://127.0.0.1:4000
package main

import (
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof" // on -pprof only: DefaultServeMux is not the service's mux
	"os"
	"strings"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	clerkhttp "github.com/clerk/clerk-sdk-go/v2/http"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9100", "address to serve /verify on")
	apiURL := flag.String("api-url", "", "Backend API base URL including /v1 (the JWKS is GET <api-url>/jwks)")
	secretKey := flag.String("secret-key", os.Getenv("CLERK_SECRET_KEY"), "Backend API secret key (default $CLERK_SECRET_KEY)")
	issuer := flag.String("issuer", "", "expected iss: the SDK only accepts https://clerk.* issuers unless given a proxy URL")
	pprofAddr := flag.String("pprof", "", "serve /debug/pprof/ on this address (off when empty)")
	flag.Parse()
	if *apiURL == "" || *secretKey == "" || *issuer == "" {
		log.Fatal("authsvc: -api-url, -secret-key and -issuer are required")
	}

	jwksClient := jwks.NewClient(&clerk.ClientConfig{BackendConfig: clerk.BackendConfig{
		URL: clerk.String(*apiURL),
		Key: clerk.String(*secretKey),
	}})
	verified := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := clerk.SessionClaimsFromContext(r.Context())
		w.Header().Set("X-Clerk-User-Id", claims.Subject)
		w.WriteHeader(http.StatusOK)
	})
	require := clerkhttp.RequireHeaderAuthorization(
		clerkhttp.JWKSClient(jwksClient),
		clerkhttp.ProxyURL(*issuer),
	)(verified)

	mux := http.NewServeMux()
	mux.Handle("/verify", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The SDK answers 403 when no token is sent; an API gateway wants 401.
		if strings.TrimSpace(r.Header.Get("Authorization")) == "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		require.ServeHTTP(w, r)
	}))
	if *pprofAddr != "" {
		go func() { log.Fatal(http.ListenAndServe(*pprofAddr, nil)) }()
	}
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
