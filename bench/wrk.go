package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what the Lua done() hook reports (times in microseconds),
// plus wrk's own CPU time.
type wrkResult struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"` // responses with status > 399
	Timeout    int64   `json:"timeout"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	MeanUS     float64 `json:"mean_us"`
	MaxUS      float64 `json:"max_us"`
	Laps       int64   `json:"laps"` // times a thread went back to its first token
	cpu        time.Duration
}

func (r wrkResult) seconds() float64 { return float64(r.DurationUS) / 1e6 }

func (r wrkResult) rps() float64 { return float64(r.Requests) / r.seconds() }

// socketErrors are the requests lost to the transport (not answers).
func (r wrkResult) socketErrors() int64 { return r.Connect + r.Read + r.Write + r.Timeout }

func (r wrkResult) errorText() string {
	return fmt.Sprintf("%d non-2xx/3xx, %d connect, %d read, %d write, %d timeout errors",
		r.Status, r.Connect, r.Read, r.Write, r.Timeout)
}

// reportLua only reports: wrk keeps its static request (headers from -H).
const reportLua = `-- caddy-clerk bench: report results as one JSON line.
` + doneLua

// tokensLuaHead and tokensLua send a different Authorization header on
// each request. Thread k reads its own share of the tokens (file k of
// writeTokenFiles) in chunks as it goes: formatting every request in init()
// would let the first thread load the server alone while the next ones
// still initialize, and wrk counts those requests too.
const tokensLuaHead = `-- caddy-clerk bench: a different Bearer token on every request.
local tokens_prefix = %q
`

const tokensLua = `
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  file = assert(io.open(tokens_prefix .. id .. ".txt"))
  host = wrk.headers["Host"]
  reqs, n, idx, laps = {}, 0, 0, 0
end

local function refill()
  n = 0
  for k = 1, 256 do
    local line = file:read("*l")
    if not line or #line == 0 then
      laps = laps + 1
      file:seek("set", 0)
      line = assert(file:read("*l"), "no tokens")
    end
    n = n + 1
    reqs[n] = wrk.format(nil, nil, {["Host"] = host, ["Authorization"] = "Bearer " .. line})
  end
  idx = 0
end

function request()
  if idx >= n then refill() end
  idx = idx + 1
  return reqs[idx]
end
`

// sprayLua sends a fresh random API key on every request, shaped like
// Clerk's (ak_ + base64 of 32 bytes: 43 characters and "="), so that no
// value is ever in the server's cache, good or bad. Each thread seeds its
// own generator.
const sprayLua = `-- caddy-clerk bench: a fresh random ak_ value on every request.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local tail = "AEIMQUYcgkosw048" -- the 43rd character carries 4 bits and two zero bits

function init(args)
  math.randomseed(os.time() + 7919 * id + math.floor(os.clock() * 1e6))
  host = wrk.headers["Host"]
  chars, tails, buf = {}, {}, {}
  for i = 1, 64 do chars[i] = b64:sub(i, i) end
  for i = 1, 16 do tails[i] = tail:sub(i, i) end
  buf[44] = "="
end

function request()
  for i = 1, 42 do buf[i] = chars[math.random(64)] end
  buf[43] = tails[math.random(16)]
  return wrk.format(nil, nil, {["Host"] = host, ["Authorization"] = "Bearer ak_" .. table.concat(buf)})
end
` + doneLua

const doneLua = `
function done(summary, latency, requests)
  local laps = 0
  for _, t in ipairs(threads or {}) do
    laps = laps + (t:get("laps") or 0)
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.2f,"max_us":%d,"laps":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max, laps))
end
`

// writeLua writes the report-only script, the spray script, and a token
// script for each token-file prefix (see writeTokenFiles).
func writeLua(dir string, prefixes ...string) (report, spray string, scripts []string, err error) {
	report = filepath.Join(dir, "report.lua")
	if err := os.WriteFile(report, []byte(reportLua), 0o644); err != nil {
		return "", "", nil, err
	}
	spray = filepath.Join(dir, "spray.lua")
	if err := os.WriteFile(spray, []byte(sprayLua), 0o644); err != nil {
		return "", "", nil, err
	}
	for _, prefix := range prefixes {
		if strings.ContainsAny(prefix, "\"\\\n") {
			return "", "", nil, fmt.Errorf("token file path %q needs quoting in Lua; use a plainer -out", prefix)
		}
		p := strings.TrimSuffix(prefix, ".") + ".lua"
		// A plain path quotes the same in Lua as with Go's %q.
		script := fmt.Sprintf(tokensLuaHead, prefix) + tokensLua + doneLua
		if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
			return "", "", nil, err
		}
		scripts = append(scripts, p)
	}
	return report, spray, scripts, nil
}

// writeTokenFiles deals the tokens round-robin into one file per wrk
// thread, <prefix>0.txt, <prefix>1.txt, …, so no two threads share one.
func writeTokenFiles(prefix string, threads int, toks []string) error {
	for t := 0; t < threads; t++ {
		var b strings.Builder
		for i := t; i < len(toks); i += threads {
			b.WriteString(toks[i])
			b.WriteByte('\n')
		}
		if err := os.WriteFile(fmt.Sprintf("%s%d.txt", prefix, t), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

type wrkRun struct {
	bin         string
	threads     int
	connections int
	duration    time.Duration
	script      string
	header      string // one -H header, or ""
	url         string
	logPath     string
}

// args is the wrk command line.
func (w wrkRun) args() []string {
	a := []string{"-t" + strconv.Itoa(w.threads), "-c" + strconv.Itoa(w.connections),
		"-d" + strconv.Itoa(int(w.duration.Seconds())) + "s", "--latency", "-s", w.script}
	if w.header != "" {
		a = append(a, "-H", w.header)
	}
	return append(a, w.url)
}

// run runs wrk and returns what its done() hook reported.
func (w wrkRun) run(ctx context.Context) (wrkResult, error) {
	argv := pinned(pinLoad, w.bin, w.args())
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = childAttr()
	out, err := cmd.CombinedOutput()
	if w.logPath != "" {
		_ = os.WriteFile(w.logPath, out, 0o644)
	}
	if ctx.Err() != nil {
		return wrkResult{}, ctx.Err()
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk failed: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "WRKJSON "); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return wrkResult{}, fmt.Errorf("parsing wrk's report %q: %v", rest, err)
			}
			if r.Requests == 0 || r.DurationUS == 0 {
				return r, fmt.Errorf("wrk made no requests:\n%s", out)
			}
			r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk printed no report:\n%s", out)
}

// wrkVersion is the first line of `wrk -v` (which exits 1).
func wrkVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	line = strings.TrimSpace(line)
	if i := strings.Index(line, " Copyright"); i > 0 {
		line = line[:i]
	}
	return line
}
