package caddyclerk

// The standard modules (reverse_proxy, file_server, respond, …) for adapting
// and running the example and test configs in-process.
import _ "github.com/caddyserver/caddy/v2/modules/standard"
