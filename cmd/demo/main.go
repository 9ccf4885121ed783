// Command demo runs caddy-clerk end to end on this machine with no Clerk
// account: a local Clerk emulator, Caddy with the clerk handler in front of a
// small static site and an echo API, and a sign-in page where you pick a
// demo user. What it runs is internal/demo, which the browser end-to-end
// test in e2e/ drives too.
//
//	go run ./cmd/demo            # then open the printed URL
//	go run ./cmd/demo -proxy     # the Frontend API served by the site itself (/__clerk)
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/internal/demo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "where Caddy listens (loopback)")
	lifetime := flag.Duration("token-lifetime", clerktest.DefaultLifetime,
		"session token lifetime (Clerk's is 60s; shorter shows the handshake renewing it)")
	proxy := flag.Bool("proxy", false, "a production instance whose Frontend API the site serves at /__clerk (frontend_api_proxy)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	d, err := demo.StartWith(*addr, demo.Options{Lifetime: *lifetime, Proxy: *proxy})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	fmt.Print(d.Banner())
	<-ctx.Done()
}
