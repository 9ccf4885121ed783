package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type machine struct {
	cpu, kernel, goVersion, wrk, command, source, load string
	cores                                              int
	memory                                             int64             // MemTotal, bytes
	caddy                                              map[string]string // binary -> version
	security                                           string            // caddy-security and go-authcrunch versions
	started                                            time.Time
}

func machineInfo(bins map[string]string, wrkBin, goVersion string) machine {
	m := machine{cores: runtime.NumCPU(), goVersion: goVersion, wrk: wrkVersion(wrkBin), caddy: map[string]string{}}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				m.memory = kb << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	for _, name := range []string{binClerk, binSecurity} {
		bin, ok := bins[name]
		if !ok {
			continue
		}
		out, _ := exec.Command(bin, "version").Output()
		v, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
		m.caddy[name] = v
		if name == binSecurity {
			info, _ := exec.Command(bin, "build-info").Output()
			var deps []string
			for _, l := range strings.Split(string(info), "\n") {
				f := strings.Fields(l)
				if len(f) >= 3 && f[0] == "dep" && (f[1] == caddySecurityModule || f[1] == "github.com/greenpau/go-authcrunch") {
					deps = append(deps, f[1]+" "+f[2])
				}
			}
			m.security = strings.Join(deps, ", ")
		}
	}
	return m
}

func (m machine) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s`\n\n", m.command)
	fmt.Fprintf(&b, "- Date: %s\n", m.started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- CPU: %s, %d cores (nproc; linux %s)\n", m.cpu, m.cores, m.kernel)
	fmt.Fprintf(&b, "- Memory: %.1f GiB (MemTotal)\n", float64(m.memory)/(1<<30))
	fmt.Fprintf(&b, "- Load average at start: %s\n", m.load)
	fmt.Fprintf(&b, "- Go: %s\n", m.goVersion)
	for _, name := range []string{binClerk, binSecurity} {
		if v, ok := m.caddy[name]; ok {
			fmt.Fprintf(&b, "- Caddy (%s binary): %s\n", name, v)
		}
	}
	if m.security != "" {
		fmt.Fprintf(&b, "- caddy-security build: %s\n", m.security)
	}
	fmt.Fprintf(&b, "- caddy-clerk source: %s\n", m.source)
	fmt.Fprintf(&b, "- wrk: %s\n", m.wrk)
	return b.String()
}

// summary is a row's medians over its rounds.
type summary struct {
	row                                  row
	rps, minRPS, maxRPS, p50, p99, cpuUS float64
	wrkUS, background, stolen            float64
	n                                    int
	rss, rss0                            int64 // after the last run, and that server's before any load
}

// medianOf is the median of f over the runs rs.
func medianOf(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return median(v)
}

func summarize(rs []result) summary {
	med := func(f func(result) float64) float64 { return medianOf(rs, f) }
	s := summary{row: rs[0].row, n: len(rs), minRPS: math.Inf(1)}
	s.rps = med(func(r result) float64 { return r.wrk.rps() })
	s.p50 = med(func(r result) float64 { return r.wrk.P50US })
	s.p99 = med(func(r result) float64 { return r.wrk.P99US })
	s.cpuUS = med(result.cpuPerReqUS)
	s.background = med(func(r result) float64 { return r.background })
	s.stolen = med(func(r result) float64 { return r.stolen })
	s.wrkUS = med(func(r result) float64 { return r.wrk.cpu.Seconds() / float64(r.wrk.Requests) * 1e6 })
	for _, r := range rs {
		s.minRPS = min(s.minRPS, r.wrk.rps())
		s.maxRPS = max(s.maxRPS, r.wrk.rps())
	}
	last := rs[len(rs)-1]
	s.rss, s.rss0 = last.rss, last.rss0
	return s
}

// pairedRatio is row num's req/s over row den's, round by round (the two
// ran minutes apart at most, on the same machine), summarized as the median
// and range of those per-round ratios: on a shared machine whose load
// drifts, pairing within a round is steadier than a ratio of medians.
func pairedRatio(runs map[string][]result, num, den string) (med, lo, hi float64, ok bool) {
	a, b := runs[num], runs[den]
	n := min(len(a), len(b))
	if n == 0 {
		return 0, 0, 0, false
	}
	v := make([]float64, n)
	for i := range n {
		v[i] = a[i].wrk.rps() / b[i].wrk.rps()
	}
	return median(v), slices.Min(v), slices.Max(v), true
}

// stealNoted is the steal (cores) above which the results say that the
// per-round ratios are not evidence.
const stealNoted = 0.1

// stealAdjusted is row num's req/s over row den's with the host's steal
// taken out, from every run of the two rows: log req/s is fitted as each
// row's own level plus one slope in the cores stolen during the run (the
// host taking a share of the machine costs both servers the same
// fraction), and the ratio is of the two levels, at no steal. se is its
// standard error from the fit's residuals. Runs without steal give the
// ratio of geometric means. Needs two runs of each row.
func stealAdjusted(runs map[string][]result, num, den string) (ratio, se float64, ok bool) {
	// x: the cores stolen during a run; y: log req/s.
	type point struct{ x, y float64 }
	var rows [2][]point
	for i, id := range []string{num, den} {
		for _, r := range runs[id] {
			rows[i] = append(rows[i], point{r.stolen, math.Log(r.wrk.rps())})
		}
	}
	if len(rows[0]) < 2 || len(rows[1]) < 2 {
		return 0, 0, false
	}
	var mx, my [2]float64
	for i, ps := range rows {
		for _, p := range ps {
			mx[i] += p.x / float64(len(ps))
			my[i] += p.y / float64(len(ps))
		}
	}
	var sxy, sxx float64
	for i, ps := range rows {
		for _, p := range ps {
			dx := p.x - mx[i]
			sxy += dx * (p.y - my[i])
			sxx += dx * dx
		}
	}
	slope, spread := 0.0, 0.0
	if sxx > 1e-9 {
		slope = sxy / sxx
		spread = (mx[0] - mx[1]) * (mx[0] - mx[1]) / sxx
	}
	var level [2]float64
	var rss float64
	for i, ps := range rows {
		level[i] = my[i] - slope*mx[i]
		for _, p := range ps {
			e := p.y - level[i] - slope*p.x
			rss += e * e
		}
	}
	n0, n1 := float64(len(rows[0])), float64(len(rows[1]))
	variance := rss / (n0 + n1 - 3) * (1/n0 + 1/n1 + spread)
	ratio = math.Exp(level[0] - level[1])
	return ratio, ratio * math.Sqrt(variance), true
}

// median of values (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// table renders the results with each row's ratio to its ceiling.
func table(selected []row, runs map[string][]result, wrkArgs func(row) string, o options) string {
	sums := map[string]summary{}
	for id, rs := range runs {
		sums[id] = summarize(rs)
	}
	var b strings.Builder
	if o.rounds > 1 {
		fmt.Fprintf(&b, "Medians of %d rounds (rows interleaved, forward in odd rounds and backward in even ones); the req/s range is min–max over the rounds; "+
			"req/s ÷ ceiling is the median of the per-round ratios (each round's run of the row over that round's "+
			"run of its ceiling), with their range.\n\n", o.rounds)
	}
	b.WriteString("| # | configuration | tokens | req/s | p50 | p99 | server CPU/req | req/s ÷ ceiling | CPU/req ÷ ceiling | wrk CPU/req | background | stolen | RSS after |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range selected {
		s, ok := sums[r.id]
		if !ok {
			continue
		}
		ratio, cpuRatio := "—", "—"
		if r.ceiling == "" {
			ratio, cpuRatio = "1.00", "1.00"
		} else if c, ok := sums[r.ceiling]; ok {
			med, lo, hi, _ := pairedRatio(runs, r.id, r.ceiling)
			ratio = fmt.Sprintf("%.2f (row %s)", med, c.row.id)
			if s.n > 1 {
				ratio = fmt.Sprintf("%.2f (%.2f–%.2f, row %s)", med, lo, hi, c.row.id)
			}
			cpuRatio = fmt.Sprintf("%.2f", s.cpuUS/c.cpuUS)
		}
		rps := fmt.Sprintf("%.0f", s.rps)
		if s.n > 1 {
			rps += fmt.Sprintf(" (%.0f–%.0f)", s.minRPS, s.maxRPS)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.1f µs | %s | %s | %.1f µs | %.2f cores | %.2f cores | %s |\n",
			r.id, r.name, r.tokensDesc(o.cycleTokens), rps, ms(s.p50), ms(s.p99), s.cpuUS, ratio, cpuRatio, s.wrkUS, s.background, s.stolen, mib(s.rss))
	}
	b.WriteString(`
- server CPU/req: user+system CPU time of the row's server processes (Caddy; for row 6 Caddy and the
  auth service) from /proc/<pid>/stat over the measured run, divided by the requests wrk completed.
- wrk CPU/req: the load generator's own CPU time per request; it runs on the same 2 cores, so
  req/s ≈ cores ÷ (server + wrk CPU per request) when the machine is otherwise idle.
- background: cores busy during the run with anything but those servers and wrk (other users of the
  machine), steal excluded.
- stolen: cores the host did not give this virtual machine while it wanted them (steal in
  /proc/stat): other tenants of the host. A run with more than -max-steal is run again (up to
  -retries times). The verdicts below are on figures fitted with the steal taken out.
- RSS after: resident memory (VmRSS in /proc/<pid>/status) of the row's server processes right
  after its last measured run.
- Each row has its own server process (started afresh before each round with -restart). Warm-up
  before every measured run: the same load for -warmup, except the fresh-token rows, which warm
  up with the single token so that every pool token is new to the server in the measured run
  (their servers are restarted between rounds).
- The random-key spray row (7r) answers 401 and 503 by design: non-2xx answers do not fail it, but
  the server's own count of its answers must match wrk's, none may be a 200 or a 503 for another
  reason than the limiter, and socket errors fail it as any row.
`)
	b.WriteString("\nLoad per row (tokens elided; paths relative to the output directory):\n\n")
	seen := map[string]bool{}
	for _, r := range selected {
		if _, ok := sums[r.id]; !ok {
			continue
		}
		a := withoutURL(wrkArgs(r))
		if seen[a] {
			continue
		}
		seen[a] = true
		var ids []string
		for _, o := range selected {
			if _, ok := sums[o.id]; ok && withoutURL(wrkArgs(o)) == a {
				ids = append(ids, o.id)
			}
		}
		fmt.Fprintf(&b, "- rows %s: `%s http://127.0.0.1:<port>/`\n", strings.Join(ids, ", "), a)
	}
	return b.String()
}

// allocTable is what Caddy's Go runtime allocated per request and how
// often it collected, by row: medians over the runs, and the row's
// allocation over its ceiling's. Unlike CPU time, these do not drift with
// the host, and a Go server's GC work follows the bytes it allocates.
func allocTable(selected []row, runs map[string][]result) string {
	var b strings.Builder
	b.WriteString("Allocation per request (Caddy's `go_memstats_alloc_bytes_total` and `go_gc_duration_seconds_count` over each measured run, " +
		"÷ the requests; medians over the runs). The GC's work follows the bytes allocated, and these figures do not drift with the host:\n\n")
	b.WriteString("| # | allocated/req | − ceiling's | GC cycles per 10,000 req |\n|---|--:|--:|--:|\n")
	for _, r := range selected {
		rs := runs[r.id]
		if len(rs) == 0 {
			continue
		}
		a := medianOf(rs, result.allocPerReq)
		over := "—"
		if c := runs[r.ceiling]; len(c) > 0 {
			over = fmt.Sprintf("%+.0f B", a-medianOf(c, result.allocPerReq))
		}
		fmt.Fprintf(&b, "| %s | %.0f B | %s | %.2f |\n", r.id, a, over, medianOf(rs, result.gcsPer10k))
	}
	return b.String()
}

// withoutURL drops the last argument, the URL, which differs per row.
func withoutURL(cmd string) string { return cmd[:strings.LastIndexByte(cmd, ' ')] }

// machineTable reports the API-key rows: Backend API verify calls (the
// emulator's count) and how the server answered (its metrics), per
// measured run.
func machineTable(selected []row, runs map[string][]result) string {
	var b strings.Builder
	for _, r := range selected {
		rs := runs[r.id]
		if !r.machine() || len(rs) == 0 {
			continue
		}
		if b.Len() == 0 {
			rate, burst := machineLimit()
			fmt.Fprintf(&b, "API-key rows (default `machine_verify_rate`: %g/s, burst %d). Backend API calls are the emulator's count of "+
				"`POST /api_keys/verify` over each measured run; the answers are the server's own count "+
				"(`caddy_clerk_requests_total` on its admin `/metrics`). Medians over the rounds; calls/s also as max.\n\n", rate, burst)
			b.WriteString("| # | Backend API verify calls per run | calls/s (max) | limit (rate + burst ÷ run) | 200 | 401 | 503 `machine-verify-rate-limited` |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
		}
		var calls, cps, limit, ok, unauth, limited []float64
		maxCPS := 0.0
		for _, res := range rs {
			m := res.machine
			calls = append(calls, float64(m.calls))
			cps = append(cps, m.callsPerSec())
			maxCPS = max(maxCPS, m.callsPerSec())
			limit = append(limit, sprayLimit(m))
			ok = append(ok, m.share(m.passed))
			unauth = append(unauth, m.share(m.unauthorized))
			limited = append(limited, m.share(m.rateLimited))
		}
		lim := "—" // only the spray is bounded by the limiter
		if r.load == loadSpray {
			lim = fmt.Sprintf("%.1f/s", median(limit))
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f (%.2f) | %s | %s | %s | %s |\n", r.id, median(calls), median(cps), maxCPS,
			lim, pct(median(ok)), pct(median(unauth)), pct(median(limited)))
	}
	return b.String()
}

// sprayLimit is the most Backend API calls per second a run may make: the
// rate, plus the burst spread over the run.
func sprayLimit(m *machineStats) float64 {
	rate, burst := machineLimit()
	return rate + float64(burst)/m.window
}

func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// memoryTable reports RSS before and after, and for the cycled rows the
// growth per distinct token: what a cached session costs in resident
// memory, net of what the ceiling (1c) grew under the same load.
func memoryTable(selected []row, runs map[string][]result, cycle, threads int) string {
	sums := map[string]summary{}
	for id, rs := range runs {
		sums[id] = summarize(rs)
	}
	var b strings.Builder
	base, haveBase := sums["1c"]
	for _, r := range selected {
		s, ok := sums[r.id]
		if !ok || r.load != loadCycle {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "Memory per cached token (cycled rows, %d distinct tokens): RSS growth from the started, checked, "+
				"unloaded server to after its last run, ÷ %d; \"net of 1c\" first subtracts the ceiling's growth under the same "+
				"load (connections, buffers, heap headroom). \"Passes\": how many times the last run's wrk threads went through "+
				"all their tokens (at least 1: every token was sent in that run alone).\n\n", cycle, cycle)
			b.WriteString("| # | RSS before load | RSS after | growth | growth ÷ tokens | net of 1c ÷ tokens | passes (last run) |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
		}
		rs := runs[r.id]
		passes := float64(rs[len(rs)-1].wrk.Laps) / float64(threads)
		g := s.rss - s.rss0
		net := "—"
		if haveBase && r.id != "1c" {
			net = fmt.Sprintf("%.0f B", float64(g-(base.rss-base.rss0))/float64(cycle))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f B | %s | %.1f |\n", r.id, mib(s.rss0), mib(s.rss), mib(g), float64(g)/float64(cycle), net, passes)
	}
	if s, ok := sums["2cL"]; ok {
		per := float64(s.rss-s.rss0) / float64(cycle)
		verdict := "met"
		if per > 1024 {
			verdict = fmt.Sprintf("MISSED by %.0f B", per-1024)
		}
		fmt.Fprintf(&b, "\nTarget: resident memory per cached session ≤ 1 KB (row 2cL, growth ÷ tokens): %.0f B — %s\n", per, verdict)
	}
	return b.String()
}

type target struct {
	desc     string
	num, den string
	want     float64
}

var targetList = []target{
	{"row 2 ≥ 0.97 × row 1 (token cache on vs the ceiling)", "2", "1", 0.97},
	{"row 2c ≥ 1.15 × row 5c (20,000 tokens cycled: caddy-clerk vs caddy-security)", "2c", "5c", 1.15},
	{"row 2 ≥ 2 × row 6 (caddy-clerk vs forward_auth to clerk-sdk-go)", "2", "6", 2},
	{"row 4 ≥ 0.95 × row 1 (cached session cookie vs the ceiling)", "4", "1", 0.95},
	{"row 7 ≥ 0.95 × row 1 (cached API key vs the ceiling)", "7", "1", 0.95},
}

// targets checks the maintainers' targets on requests/s, and shows the
// comparisons that put them in context.
func targets(runs map[string][]result) string {
	var b strings.Builder
	b.WriteString("Targets, on requests/s. Each verdict is on the steal-adjusted ratio: log req/s of every run of " +
		"the two rows fitted as each row's own level plus one slope in the cores the host stole during the run, " +
		"the ratio of the levels ± its standard error (without steal, the ratio of geometric means). The median " +
		"of the per-round ratios follows in brackets; a row with fewer than two runs is judged on it.\n\n")
	var stolen []string
	for id, rs := range runs {
		most := 0.0
		for _, r := range rs {
			most = max(most, r.stolen)
		}
		if most > stealNoted {
			stolen = append(stolen, fmt.Sprintf("row %s (up to %.2f cores)", id, most))
		}
	}
	if len(stolen) > 0 {
		sort.Strings(stolen)
		fmt.Fprintf(&b, "**The host stole CPU** (more than %.2f cores) during runs of %s: which row a burst of steal "+
			"falls on decides a round's ratio, so the per-round medians are not evidence here.\n\n",
			stealNoted, strings.Join(stolen, ", "))
	}
	for _, t := range targetList {
		got, figure, ok := ratioFigure(runs, t.num, t.den)
		if !ok {
			fmt.Fprintf(&b, "- %s: not run\n", t.desc)
			continue
		}
		verdict := "met"
		if got < t.want {
			verdict = fmt.Sprintf("MISSED by %.1f%% (%.2f short)", (t.want-got)/t.want*100, t.want-got)
		}
		fmt.Fprintf(&b, "- %s: %s — %s\n", t.desc, figure, verdict)
	}
	b.WriteString(sprayTarget(runs["7r"]))
	b.WriteString("\nFor context (not targets):\n\n")
	for _, c := range []struct{ desc, num, den string }{
		{"row 2u ÷ row 5u (every token new to the server: verification against verification)", "2u", "5u"},
		{"row 2cL ÷ row 5c (20,000 tokens cycled, both caches holding them all)", "2cL", "5c"},
		{"row 3c ÷ row 5c (caddy-clerk verifying every request vs caddy-security's cache)", "3c", "5c"},
		{"row 2 ÷ row 2b (Bearer: this code vs -base-ref's, in the same run)", "2", "2b"},
		{"row 4 ÷ row 4b (cookie: this code vs -base-ref's, in the same run)", "4", "4b"},
		{"row 2b ÷ row 1 (Bearer at -base-ref vs the ceiling)", "2b", "1"},
		{"row 4b ÷ row 1 (cookie at -base-ref vs the ceiling)", "4b", "1"},
		{"row 4 ÷ row 2 (session cookie vs Bearer header)", "4", "2"},
		{"row 8 ÷ row 2 (M2M JWT vs session token, both from the token cache)", "8", "2"},
		{"row 7 ÷ row 1k (cached API key vs a ceiling sending the same 47-byte header instead of row 1's session token)", "7", "1k"},
		{"row 2 ÷ row 1m (cached session token vs the ceiling with one middleware that does nothing)", "2", "1m"},
		{"row 1m ÷ row 1 (one middleware that does nothing vs none)", "1m", "1"},
		{"row 1e ÷ row 1 (the clerk handler on an excluded path vs none)", "1e", "1"},
		{"row 2 ÷ row 1e (a cached session vs the clerk handler checking nothing)", "2", "1e"},
		{"row 2 ÷ row 1h (cached session token vs a ceiling sending the same Cache-Control: private)", "2", "1h"},
		{"row 2s ÷ row 1 (cached session token without the private writer and header vs the ceiling)", "2s", "1"},
		{"row 2 ÷ row 2s (what the private writer and its header cost)", "2", "2s"},
		{"row 1k ÷ row 1 (the ceiling with a 47-byte API key instead of a session token as its ignored header)", "1k", "1"},
		{"row 7 ÷ row 2 (cached API key vs cached session token)", "7", "2"},
		{"row 7r ÷ row 1 (refusing a random-key spray vs the ceiling)", "7r", "1"},
		{"row 1x ÷ row 1 (the two Caddy binaries without auth)", "1x", "1"},
		{"row 1a ÷ row 1 (two servers of the same ceiling: what the method alone makes of no difference)", "1a", "1"},
	} {
		if _, figure, ok := ratioFigure(runs, c.num, c.den); ok {
			fmt.Fprintf(&b, "- %s: %s\n", c.desc, figure)
		}
	}
	return b.String()
}

// ratioFigure is row num's req/s over row den's as the results give it:
// the steal-adjusted ratio ± its error with the per-round median beside it,
// or the median alone when a row ran once. got is the figure judged.
func ratioFigure(runs map[string][]result, num, den string) (got float64, figure string, ok bool) {
	med, _, _, ok := pairedRatio(runs, num, den)
	if !ok {
		return 0, "", false
	}
	if adj, se, ok := stealAdjusted(runs, num, den); ok {
		return adj, fmt.Sprintf("%.3f ± %.3f (per-round median %.3f)", adj, se, med), true
	}
	return med, fmt.Sprintf("%.3f", med), true
}

// sprayTarget: in every round of the spray row, Backend API calls per
// second stay within machine_verify_rate plus the burst spread over the
// run.
func sprayTarget(rs []result) string {
	rate, burst := machineLimit()
	desc := fmt.Sprintf("row 7r: Backend API verify calls/s ≤ %g + %d ÷ run length (random-key spray, default machine_verify_rate)", rate, burst)
	if len(rs) == 0 {
		return fmt.Sprintf("- %s: not run\n", desc)
	}
	worst, over := 0.0, 0.0
	for _, r := range rs {
		m := r.machine
		worst = max(worst, m.callsPerSec())
		over = max(over, m.callsPerSec()-sprayLimit(m))
	}
	verdict := "met in every round"
	if over > 0 {
		verdict = fmt.Sprintf("MISSED: %.2f calls/s over the limit", over)
	}
	return fmt.Sprintf("- %s: at most %.2f/s over %d rounds — %s\n", desc, worst, len(rs), verdict)
}

func ms(us float64) string { return fmt.Sprintf("%.2f ms", us/1000) }
