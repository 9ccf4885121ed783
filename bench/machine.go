package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	machinetoken "github.com/caddy-clerk/caddy-clerk/internal/machine"
)

// machineLimit is the limiter a clerk handler gets without
// machine_verify_rate: machine.DefaultRate verifications a second, and the
// burst the plugin derives from it (twice the rate, see New in
// internal/machine).
func machineLimit() (rate float64, burst int) {
	rate = machinetoken.DefaultRate
	return rate, max(int(2*rate), 1)
}

// machineCounts is one reading of what an API-key row did: the emulator's
// count of POST /api_keys/verify calls, and the server's own count of its
// answers (caddy_clerk_requests_total on Caddy's admin /metrics).
type machineCounts struct {
	at                                                   time.Time
	bapi                                                 int
	passed, unauthorized, rateLimited, unavailable, rest float64
}

// machineStats is what happened between two readings.
type machineStats struct {
	calls                                          int     // Backend API verify calls
	window                                         float64 // seconds between the readings
	answers                                        float64 // requests the clerk handler answered
	passed, unauthorized, rateLimited, unavailable float64 // of which: 200, 401, 503 rate-limited, other 503s
}

func (m machineStats) callsPerSec() float64 { return float64(m.calls) / m.window }

func (m machineStats) share(n float64) float64 {
	if m.answers == 0 {
		return 0
	}
	return n / m.answers
}

func (c machineCounts) since(b machineCounts) *machineStats {
	m := &machineStats{calls: c.bapi - b.bapi, window: c.at.Sub(b.at).Seconds(),
		passed: c.passed - b.passed, unauthorized: c.unauthorized - b.unauthorized,
		rateLimited: c.rateLimited - b.rateLimited, unavailable: c.unavailable - b.unavailable}
	m.answers = m.passed + m.unauthorized + m.rateLimited + m.unavailable + (c.rest - b.rest)
	return m
}

// metrics calls each with every sample of the site's Caddy metrics (its
// admin /metrics).
func (e *environment) metrics(s *site, each func(name string, labels map[string]string, v float64)) error {
	resp, err := e.client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.admin))
	if err != nil {
		return fmt.Errorf("reading the server's metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("reading the server's metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if name, labels, v, ok := parseSample(sc.Text()); ok {
			each(name, labels, v)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the server's metrics: %v", err)
	}
	return nil
}

// goCounts are a Caddy process's Go runtime counters, from its metrics.
type goCounts struct{ allocBytes, gcs float64 }

// counts reads the site's metrics once: its Go runtime counters, and for a
// machine-token row (machine) the emulator's counter and the server's
// answers too. The emulator serves every row, but only the row being
// measured sends it anything.
func (e *environment) counts(s *site, machine bool) (g goCounts, m machineCounts, err error) {
	if machine {
		m = machineCounts{at: time.Now(), bapi: e.clerk.Requests(clerktest.BAPIAPIKeyVerify)}
	}
	goFound, answers := 0, false
	err = e.metrics(s, func(name string, labels map[string]string, v float64) {
		switch name {
		case "go_memstats_alloc_bytes_total":
			g.allocBytes, goFound = v, goFound+1
		case "go_gc_duration_seconds_count":
			g.gcs, goFound = v, goFound+1
		case "caddy_clerk_requests_total":
			answers = true
			switch {
			case labels["outcome"] == "authenticated":
				m.passed += v
			case labels["outcome"] == "unauthorized":
				m.unauthorized += v
			case labels["outcome"] == "unavailable" && labels["reason"] == "machine-verify-rate-limited":
				m.rateLimited += v
			case labels["outcome"] == "unavailable":
				m.unavailable += v
			default:
				m.rest += v
			}
		}
	})
	switch {
	case err != nil:
	case goFound != 2:
		err = errors.New("the server's metrics have no go_memstats_alloc_bytes_total or go_gc_duration_seconds_count")
	case machine && !answers:
		err = errors.New("the server's /metrics has no caddy_clerk_requests_total")
	}
	return g, m, err
}

// parseSample reads one line of the Prometheus text format:
// name{k="v",…} value. Label values here are fixed words (no escapes).
func parseSample(line string) (name string, labels map[string]string, v float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	series := line[:sp]
	labels = map[string]string{}
	name, rest, hasLabels := strings.Cut(series, "{")
	if hasLabels {
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			k, val, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(val, `"`)
		}
	}
	return name, labels, v, true
}

// consistent checks a measured run of an API-key row against the server's
// own counts: they must agree with wrk's (up to the requests in flight at
// either edge), and in the spray no random key may pass and no 503 may
// have another cause than the limiter (Clerk unreachable would make it a
// different experiment).
func (m *machineStats) consistent(r row, w wrkResult, connections int) error {
	slack := float64(2 * connections)
	if math.Abs(m.answers-float64(w.Requests)) > slack {
		return fmt.Errorf("the server counted %.0f answers and wrk %d requests: the counts do not match", m.answers, w.Requests)
	}
	if m.unavailable > 0 {
		return fmt.Errorf("%.0f answers were 503 for another reason than machine-verify-rate-limited (Clerk unreachable?): not a measurement", m.unavailable)
	}
	if r.load != loadSpray {
		return nil
	}
	if m.passed > 0 || w.Requests > w.Status {
		return fmt.Errorf("random API keys were let through (%.0f authenticated, %d wrk answers under 400)", m.passed, w.Requests-w.Status)
	}
	if refused := m.unauthorized + m.rateLimited; math.Abs(refused-float64(w.Status)) > slack {
		return fmt.Errorf("the server refused %.0f requests (401 or 503) and wrk saw %d non-2xx answers: the counts do not match", refused, w.Status)
	}
	return nil
}

// sumRSS is the resident memory of processes, in bytes (VmRSS).
func sumRSS(pids []int) (int64, error) {
	var total int64
	for _, p := range pids {
		n, err := rss(p)
		if err != nil {
			return 0, fmt.Errorf("reading the resident memory of pid %d: %v", p, err)
		}
		total += n
	}
	return total, nil
}

func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("malformed VmRSS %q", v)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
