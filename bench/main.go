// Command bench is caddy-clerk's load harness: it starts Caddy builds side
// by side on loopback (Caddy's own respond as the ceiling, caddy-clerk,
// caddy-security, forward_auth to a clerk-sdk-go service), runs the same wrk
// load against each, one after another, and prints requests/s, latency and
// server CPU per request with each row's ratio to the ceiling.
//
// It is a module of its own (clerk-sdk-go is its requirement, not the
// plugin's); run it from bench/:
//
//	go run .                      # everything, ~5 minutes once built
//	go run . -duration 30s -rows 1,2,5
//
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration       time.Duration
	warmup         time.Duration
	threads        int
	connections    int
	cycleTokens    int
	uniqueTokens   int
	rounds         int
	retries        int
	uniqueDuration time.Duration
	quiet          float64
	quietWait      time.Duration
	rows           string
	profile        string
	ref            string
	baseRef        string
	repo           string
	cacheDir       string
	out            string
	wrk            string
	rebuild        bool
	buildOnly      bool
	write          bool
	pin            bool
	restart        bool
	maxSteal       float64
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	home, _ := os.UserCacheDir()
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured run per row (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured warm-up before each row (0 for none)")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (-t)")
	flag.IntVar(&o.connections, "connections", 32, "wrk connections (-c)")
	flag.IntVar(&o.cycleTokens, "cycle-tokens", 20000, "distinct tokens cycled in the *c rows")
	flag.IntVar(&o.uniqueTokens, "unique-tokens", 0, "token pool of the *u rows (0: sized from the measured verify rate)")
	flag.IntVar(&o.rounds, "rounds", 1, "run every row this many times, interleaved, and report medians")
	flag.IntVar(&o.retries, "retries", 2, "re-runs of a row whose run lost requests to timeouts or socket errors (non-2xx answers fail at once)")
	flag.DurationVar(&o.uniqueDuration, "unique-duration", 5*time.Second, "measured run of the fresh-token (*u) rows (whole seconds)")
	flag.Float64Var(&o.quiet, "quiet", 0.3, "before each row, wait until the machine's other load is at most this many cores (0: don't wait)")
	flag.DurationVar(&o.quietWait, "quiet-wait", 2*time.Minute, "longest wait for -quiet before measuring anyway")
	flag.StringVar(&o.rows, "rows", "", "comma-separated rows to run (default all)")
	flag.StringVar(&o.profile, "profile", "", "rows to CPU-profile after the table (their servers' /debug/pprof), e.g. 2c,5c")
	flag.StringVar(&o.ref, "ref", "", "build caddy-clerk from this git ref (git archive) instead of the work tree")
	flag.StringVar(&o.baseRef, "base-ref", "", "build rows 2b and 4b's caddy-clerk from this git ref: a change measured against the code before it, in the same run")
	flag.StringVar(&o.repo, "repo", "", "caddy-clerk checkout (default: found from the working directory)")
	flag.StringVar(&o.cacheDir, "cache-dir", filepath.Join(home, "caddy-clerk-bench"), "where built binaries are kept between runs")
	flag.BoolVar(&o.rebuild, "rebuild", false, "rebuild the binaries even if a cached build of the same inputs exists")
	flag.StringVar(&o.out, "out", "", "directory for logs, tokens, profiles and results.md (default a new temporary one)")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.BoolVar(&o.buildOnly, "build-only", false, "build (or find cached) the binaries the rows need, then exit: nothing is measured")
	flag.BoolVar(&o.pin, "pin", false, "run the servers on CPU 1 and wrk on CPU 0 (taskset) instead of letting them share both: "+
		"they no longer take turns on a core, and each ratio is of one server core's throughput (not the issue's method; Linux, 2 CPUs or more)")
	flag.Float64Var(&o.maxSteal, "max-steal", 0.1, "a run during which the host took more than this many cores (steal in /proc/stat) is run again, "+
		"up to -retries times, then kept (2: never run again; the verdicts are on steal-adjusted figures either way)")
	flag.BoolVar(&o.restart, "restart", false, "start every row's server afresh before each round after the first, so that "+
		"what one process happens to be (its heap layout, where its threads run) varies between rounds instead of holding for the whole run")
	flag.BoolVar(&o.write, "write", false, "also put the results into ../BENCHMARKS.md, between its generated-section markers")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run . [flags] (in bench/)\n\nrows:\n")
		for _, r := range allRows(o) {
			fmt.Fprintf(flag.CommandLine.Output(), "  %-4s %s (%s)\n", r.id, r.name, r.tokensDesc(o.cycleTokens))
		}
		fmt.Fprintln(flag.CommandLine.Output(), "\nflags:")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}

	if o.pin {
		if runtime.NumCPU() < 2 {
			fmt.Fprintln(os.Stderr, "bench: -pin needs 2 CPUs")
			return 2
		}
		if _, err := exec.LookPath("taskset"); err != nil {
			fmt.Fprintln(os.Stderr, "bench: -pin needs taskset (util-linux)")
			return 2
		}
		pinServers, pinLoad = "1", "0"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer killAll()
	if err := bench(ctx, o); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "\nbench: interrupted; servers stopped")
			return 130
		}
		fmt.Fprintf(os.Stderr, "\nbench: FAILED: %v\n", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options) error {
	if o.duration < time.Second || o.duration%time.Second != 0 {
		return fmt.Errorf("-duration %s: want whole seconds, at least 1s", o.duration)
	}
	if o.uniqueDuration < time.Second || o.uniqueDuration%time.Second != 0 {
		return fmt.Errorf("-unique-duration %s: want whole seconds, at least 1s", o.uniqueDuration)
	}
	if o.warmup < 0 || o.warmup%time.Second != 0 {
		return fmt.Errorf("-warmup %s: want whole seconds", o.warmup)
	}
	if o.threads < 1 || o.connections < o.threads {
		return errors.New("-threads must be at least 1 and -connections at least -threads")
	}
	if o.cycleTokens < o.threads || o.uniqueTokens < 0 || o.rounds < 1 {
		return errors.New("-cycle-tokens must be at least -threads, -unique-tokens not negative, -rounds at least 1")
	}
	if o.buildOnly && o.write {
		return errors.New("-build-only measures nothing to -write")
	}
	if runtime.GOOS != "linux" {
		return errors.New("the harness reads CPU time from /proc: Linux only")
	}
	wrkBin, err := exec.LookPath(o.wrk)
	if err != nil && !o.buildOnly {
		return fmt.Errorf("wrk not found (%v): install it, e.g. apt-get install -y wrk", err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		return errors.New("go not found on PATH: it builds the binaries")
	}
	all := allRows(o)
	selected, err := selectRows(all, o.rows)
	if err != nil {
		return err
	}
	var profiled []row
	if o.profile != "" {
		if profiled, err = selectRows(selected, o.profile); err != nil {
			return fmt.Errorf("-profile: %v (only rows that run can be profiled)", err)
		}
	}
	repo := o.repo
	if repo == "" {
		if repo, err = findRepo(); err != nil {
			return err
		}
	}
	benchmarksMD := filepath.Join(repo, "BENCHMARKS.md")
	if o.write {
		// Fail now, not after the run.
		data, err := os.ReadFile(benchmarksMD)
		if err != nil {
			return fmt.Errorf("-write: %v", err)
		}
		if _, err := splice(string(data), ""); err != nil {
			return fmt.Errorf("-write: %s: %v", benchmarksMD, err)
		}
	}
	if o.out == "" {
		if o.out, err = os.MkdirTemp("", "caddy-clerk-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	// Builds run in the repo (xcaddy) and in bench/ (authsvc), not here.
	if o.cacheDir, err = filepath.Abs(o.cacheDir); err != nil {
		return err
	}

	started := time.Now().UTC()
	loadStart := loadAvg()
	goVersion := goEnvVersion()
	b := &builder{ctx: ctx, repo: repo, src: repo, cacheDir: o.cacheDir, rebuild: o.rebuild, goVersion: goVersion}
	srcDesc := "work tree of " + repo
	if o.ref != "" {
		dir := filepath.Join(o.out, "src")
		commit, err := snapshot(repo, o.ref, dir)
		if err != nil {
			return fmt.Errorf("-ref: %w", err)
		}
		b.src = dir
		srcDesc = fmt.Sprintf("`%s` = commit %s", o.ref, commit)
	} else if dirty := gitDirty(repo); dirty != "" {
		srcDesc += " (" + dirty + ")"
	}

	bins := map[string]string{}
	need := map[string]bool{}
	for _, r := range selected {
		need[r.binary] = true
		if r.binary == binForward {
			need[binClerk] = true
		}
	}
	base := *b
	if need[binBase] {
		if o.baseRef == "" {
			return errors.New("rows 2b and 4b run the code of -base-ref: give it (e.g. -base-ref HEAD~1)")
		}
		dir := filepath.Join(o.out, "src-base")
		commit, err := snapshot(repo, o.baseRef, dir)
		if err != nil {
			return fmt.Errorf("-base-ref: %w", err)
		}
		base.src = dir
		srcDesc += fmt.Sprintf("; rows 2b and 4b: `%s` = commit %s", o.baseRef, commit)
	}
	for _, name := range []string{binClerk, binSecurity, binForward, binBase} {
		if !need[name] {
			continue
		}
		var p string
		switch name {
		case binClerk:
			p, err = b.caddyClerk()
		case binSecurity:
			p, err = b.caddySecurity()
		case binForward:
			p, err = b.authsvc()
		case binBase:
			p, err = base.caddyClerk()
		}
		if err != nil {
			return err
		}
		bins[name] = p
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if o.buildOnly {
		for _, name := range []string{binClerk, binSecurity, binForward, binBase} {
			if p, ok := bins[name]; ok {
				fmt.Printf("%s: %s\n", name, p)
			}
		}
		return nil
	}

	env, err := newEnvironment(ctx, o, bins, selected)
	if err != nil {
		return err
	}
	defer env.close()

	m := machineInfo(bins, wrkBin, goVersion)
	m.load = loadStart
	m.started = started
	m.source = srcDesc
	m.command = commandLine()
	hdr := m.markdown()
	fmt.Print("\n" + hdr)
	fmt.Printf("\nOutput (logs, wrk output, Caddyfiles, profiles): %s\n\n", o.out)

	runs := map[string][]result{}
	for round := 1; round <= o.rounds; round++ {
		for i, r := range roundOrder(selected, round) {
			if r.load == loadUnique {
				if err := env.ensureUnique(verifyRate(runs)); err != nil {
					return err
				}
			}
			if round > 1 && (r.load == loadUnique || o.restart) {
				if err := env.restart(ctx, r); err != nil {
					return err
				}
			}
			var res result
			for try, grown, retried := 0, 0, 0; ; try++ {
				if err := waitQuiet(ctx, o.quiet, o.quietWait); err != nil {
					return err
				}
				fmt.Printf("[round %d/%d, %d/%d] row %s: %s, %s ... ", round, o.rounds, i+1, len(selected),
					r.id, r.name, r.tokensDesc(o.cycleTokens))
				res, err = env.measure(ctx, r, wrkBin, filepath.Join(o.out, fmt.Sprintf("wrk-%s-round%d-try%d.txt", r.id, round, try)))
				if errors.Is(err, errPoolExhausted) && grown < 3 {
					grown++
					fmt.Printf("discarded: %v; again with a bigger pool\n", err)
					// Threads lap unevenly: room for twice the requests made.
					if err := env.growUnique(max(2*len(env.unique), int(2.5*float64(res.wrk.Requests)))); err != nil {
						return err
					}
					if err := env.restart(ctx, r); err != nil {
						return err
					}
					continue
				}
				// Lost requests, or a host that took the CPU: not this row's
				// figure, so run it again.
				var sock errSocket
				why := ""
				switch {
				case errors.As(err, &sock):
					why = err.Error()
				case err == nil && res.stolen > o.maxSteal:
					why = fmt.Sprintf("the host took %.2f cores (steal) during the run", res.stolen)
				}
				if why != "" && retried < o.retries {
					retried++
					fmt.Printf("discarded: %s; again\n", why)
					if r.load == loadUnique {
						if err := env.restart(ctx, r); err != nil { // it has seen part of the pool
							return err
						}
					}
					continue
				}
				if err != nil {
					fmt.Println("FAILED")
					return fmt.Errorf("row %s (%s): %v", r.id, r.name, err)
				}
				break
			}
			fmt.Printf("%.0f req/s, p99 %s, %.1f µs CPU/req, background %.2f cores, stolen %.2f cores, RSS %s",
				res.wrk.rps(), ms(res.wrk.P99US), res.cpuPerReqUS(), res.background, res.stolen, mib(res.rss))
			if m := res.machine; m != nil {
				fmt.Printf("; Backend API %d calls (%.2f/s), answers %s 200, %s 401, %s 503 rate-limited",
					m.calls, m.callsPerSec(), pct(m.share(m.passed)), pct(m.share(m.unauthorized)), pct(m.share(m.rateLimited)))
			}
			fmt.Println()
			runs[r.id] = append(runs[r.id], res)
		}
	}
	loadEnd := loadAvg()

	var sb strings.Builder
	sb.WriteString(hdr)
	sb.WriteString("\n")
	sb.WriteString(table(selected, runs, env.wrkArgsFor, o))
	sb.WriteString("\n")
	sb.WriteString(targets(runs))
	sb.WriteString("\n" + allocTable(selected, runs))
	if t := machineTable(selected, runs); t != "" {
		sb.WriteString("\n" + t)
	}
	if t := memoryTable(selected, runs, o.cycleTokens, o.threads); t != "" {
		sb.WriteString("\n" + t)
	}
	fmt.Fprintf(&sb, "\nLoad average at the end: %s\n", loadEnd)
	fmt.Print("\n" + sb.String()[len(hdr):])
	results := resultsHeading(started) + sb.String()
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(results), 0o644); err != nil {
		return err
	}
	if o.write {
		if err := writeBenchmarks(benchmarksMD, results); err != nil {
			return err
		}
		fmt.Printf("\nwrote the results into %s\n", benchmarksMD)
	}

	for _, r := range profiled {
		if r.load == loadUnique {
			if err := env.restart(ctx, r); err != nil {
				return err
			}
		}
		files, err := env.profile(ctx, r, wrkBin, o.out)
		if err != nil {
			return fmt.Errorf("profiling row %s: %v", r.id, err)
		}
		for _, f := range files {
			fmt.Printf("profile of row %s: go tool pprof -top %s\n", r.id, f)
		}
	}
	fmt.Printf("\nresults: %s\n", filepath.Join(o.out, "results.md"))
	return nil
}

// waitQuiet waits until the machine, our idle servers included, keeps
// fewer than limit cores busy over a second: on a shared machine, a row
// should not start in the middle of someone else's burst.
func waitQuiet(ctx context.Context, limit float64, maxWait time.Duration) error {
	if limit <= 0 {
		return nil
	}
	hz := clockTicks()
	deadline := time.Now().Add(maxWait)
	said := false
	for {
		t0 := time.Now()
		b0, err := busyTicks()
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		b1, err := busyTicks()
		if err != nil {
			return err
		}
		busy := float64(b1-b0) / hz / time.Since(t0).Seconds()
		if busy <= limit {
			if said {
				fmt.Printf("quiet (%.2f cores busy)\n", busy)
			}
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Printf("still %.2f cores busy after %s: measuring anyway\n", busy, maxWait)
			return nil
		}
		if !said {
			fmt.Printf("waiting for other load to settle (%.2f cores busy)... ", busy)
			said = true
		}
	}
}

// roundOrder runs the rows forward in odd rounds and backward in even
// ones: this machine's speed drifts within a round (a run after a quiet
// spell is faster than the third in a row), and a ceiling that always ran
// first would always run on the fastest machine. Over two rounds each row
// and its ceiling are as often before as after one another.
func roundOrder(rows []row, round int) []row {
	if round%2 == 1 {
		return rows
	}
	rev := slices.Clone(rows)
	slices.Reverse(rev)
	return rev
}

// verifyRate is the fastest rate measured so far among rows that verify
// every request; it sizes the fresh-token pool.
func verifyRate(runs map[string][]result) float64 {
	rate := 0.0
	for _, id := range []string{"2c", "3c", "3"} {
		for _, r := range runs[id] {
			rate = max(rate, r.wrk.rps())
		}
	}
	if rate == 0 {
		rate = 15000 // none measured: more than 2 cores verify
	}
	return rate
}

func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(data), "module "+ourModule+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the caddy-clerk checkout, or pass -repo")
		}
		dir = parent
	}
}

func gitDirty(repo string) string {
	out, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return ""
	}
	head, _ := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	h := strings.TrimSpace(string(head))
	if strings.TrimSpace(string(out)) != "" {
		return "HEAD " + h + " with uncommitted changes"
	}
	return "HEAD " + h + ", clean"
}

func goEnvVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

// commandLine is the command as typed from the repository root, with the
// flock(1) that ran it, if one did (go run's parent).
func commandLine() string {
	args := []string{"cd bench &&"}
	if l := launcher(); l != "" {
		args = append(args, l)
	}
	args = append(args, "go run .")
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

// launcher is "flock <args>" when an ancestor within a few generations is
// flock(1) running go: the part of its command line before "go".
func launcher() string {
	pid := os.Getppid()
	for range 3 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return ""
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "flock" {
			for i, a := range args {
				if i > 0 && filepath.Base(a) == "go" {
					args[0] = "flock"
					return strings.Join(args[:i], " ")
				}
			}
			return ""
		}
		if pid = parentOf(pid); pid <= 1 {
			return ""
		}
	}
	return ""
}

// parentOf is a process's parent pid from /proc/<pid>/stat (0 if unknown).
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
