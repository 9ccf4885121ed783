package caddyclerk

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("clerk_webhook", parseWebhookCaddyfile)
	// Like clerk: verification runs before basic_auth and everything that serves.
	httpcaddyfile.RegisterDirectiveOrder("clerk_webhook", httpcaddyfile.Before, "basic_auth")
}

func parseWebhookCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var wh WebhookHandler
	err := wh.UnmarshalCaddyfile(h.Dispenser)
	return &wh, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	clerk_webhook [<matcher>] {
//	    secret    <whsec_…>     # {env.CLERK_WEBHOOK_SECRET}; one line per secret while rotating
//	    tolerance <duration>    # default 5m
//	    max_body  <size>        # default 1MiB (sizes such as 512KB, 2MiB)
//	}
func (h *WebhookHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("clerk_webhook takes no arguments on its line (only a matcher); put settings in a block, " +
			"e.g. clerk_webhook { secret {env.CLERK_WEBHOOK_SECRET} }")
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		single := func() (string, error) {
			if seen[name] {
				return "", d.Errf("%s is set twice in this clerk_webhook block; keep one", name)
			}
			seen[name] = true
			args := d.RemainingArgs()
			if len(args) != 1 {
				return "", d.Errf("%s takes one value, got %d", name, len(args))
			}
			return args[0], nil
		}
		switch name {
		case "secret":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Errf("secret takes one value, got %d (while rotating, put each secret on its own secret line)", len(args))
			}
			// A literal secret is checked here, for the line number; one
			// from a placeholder when it is resolved, at provisioning.
			if s := args[0]; !strings.Contains(s, "{") {
				if _, err := parseWebhookSecret(s); err != nil {
					return d.Errf("secret %v; prefer secret {env.CLERK_WEBHOOK_SECRET} over pasting it here", err)
				}
			}
			h.Secrets = append(h.Secrets, args[0])
		case "tolerance":
			v, err := single()
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("tolerance %q is not a positive duration such as 5m", v)
			}
			if dur > maxWebhookTolerance {
				return d.Errf("tolerance %s is over %s: a longer window accepts older deliveries; use 5m (the default) and fix the clock",
					dur, maxWebhookTolerance)
			}
			h.Tolerance = caddy.Duration(dur)
		case "max_body":
			v, err := single()
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil {
				return d.Errf("max_body %q is not a size such as 1MiB or 512KB", v)
			}
			if n == 0 {
				return d.Errf("max_body must be more than 0 bytes (the default is 1MiB)")
			}
			if n > maxWebhookMaxBody {
				return d.Errf("max_body %s is over 16MiB: bodies are held in memory before they are verified, and Clerk's are a few KiB",
					humanize.IBytes(n))
			}
			h.MaxBody = int64(n)
		default:
			return d.Errf("unrecognized subdirective %q in clerk_webhook block (known: secret, tolerance, max_body)", name)
		}
		if d.NextBlock(1) {
			return d.Errf("%s does not take a block", name)
		}
	}
	if len(h.Secrets) == 0 {
		return d.Errf("clerk_webhook needs a secret: add secret {env.CLERK_WEBHOOK_SECRET}, " +
			"the endpoint's Signing Secret (whsec_…) from the Clerk dashboard")
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*WebhookHandler)(nil)
