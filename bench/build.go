package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

const (
	caddyVersion         = "v2.11.9"
	caddySecurityModule  = "github.com/greenpau/caddy-security"
	caddySecurityVersion = "v1.1.31"
	ourModule            = "github.com/caddy-clerk/caddy-clerk"
)

// builder makes the binaries, reusing earlier builds of the same inputs.
type builder struct {
	ctx       context.Context
	repo      string // module root that has `tool xcaddy` in go.mod
	src       string // source of our module to build (repo, or a git snapshot)
	cacheDir  string
	rebuild   bool
	goVersion string
}

// caddyClerk is Caddy with our module, built from b.src.
func (b *builder) caddyClerk() (string, error) {
	h, err := hashModuleSource(b.src)
	if err != nil {
		return "", err
	}
	key := b.key("caddy-clerk", h)
	// @v0.0.0: without a version go get asks the proxy for our version list, which it refuses.
	return b.xcaddy("caddy-clerk", key, nil, "http.handlers.clerk",
		"--with", ourModule+"@v0.0.0="+b.src)
}

// caddySecurity is Caddy with caddy-security, never a dependency of our
// go.mod: xcaddy resolves it in its own temporary build module.
func (b *builder) caddySecurity() (string, error) {
	key := b.key("caddy-security", caddySecurityModule+"@"+caddySecurityVersion)
	// Its checksum lookup is refused here; the proxy still serves it.
	env := []string{"GONOSUMDB=" + joinList(os.Getenv("GONOSUMDB"), "github.com/greenpau")}
	return b.xcaddy("caddy-security", key, env, "http.authentication.providers.authorizer",
		"--with", caddySecurityModule+"@"+caddySecurityVersion)
}

// authsvc is the clerk-sdk-go forward_auth service in bench/authsvc, built
// in the bench module (which requires clerk-sdk-go; our module does not).
func (b *builder) authsvc() (string, error) {
	h := sha256.New()
	for _, f := range []string{"bench/authsvc/main.go", "bench/go.mod", "bench/go.sum"} {
		data, err := os.ReadFile(filepath.Join(b.repo, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	key := b.key("authsvc", hex.EncodeToString(h.Sum(nil)))
	out := filepath.Join(b.cacheDir, key, "authsvc")
	if !b.rebuild && isFile(out) {
		return out, nil
	}
	logf := filepath.Join(b.cacheDir, key+".log")
	if err := b.runIn(filepath.Join(b.repo, "bench"), logf, nil, "go", "build", "-trimpath", "-o", out+".tmp", "./authsvc"); err != nil {
		return "", err
	}
	return out, os.Rename(out+".tmp", out)
}

func (b *builder) key(name, inputs string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{name, caddyVersion, b.goVersion, xcaddyVersion(b.repo), inputs}, "\x00")))
	return name + "-" + hex.EncodeToString(sum[:6])
}

func (b *builder) xcaddy(name, key string, env []string, wantModule string, with ...string) (string, error) {
	out := filepath.Join(b.cacheDir, key, "caddy")
	if !b.rebuild && isFile(out) {
		return out, nil
	}
	fmt.Printf("building %s with xcaddy (a first build takes a few minutes)...\n", name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	logf := filepath.Join(b.cacheDir, key+".log")
	args := append([]string{"tool", "xcaddy", "build", caddyVersion}, with...)
	args = append(args, "--output", out+".tmp")
	if err := b.run(logf, env, "go", args...); err != nil {
		return "", err
	}
	mods, err := exec.Command(out+".tmp", "list-modules").Output()
	if err != nil {
		return "", fmt.Errorf("%s: list-modules: %v", name, err)
	}
	if !hasLine(mods, wantModule) {
		return "", fmt.Errorf("%s: the built binary lacks module %s", name, wantModule)
	}
	return out, os.Rename(out+".tmp", out)
}

// run runs a build command in the repo with its output in logPath,
// showing the tail of that log if it fails.
func (b *builder) run(logPath string, env []string, bin string, args ...string) error {
	return b.runIn(b.repo, logPath, env, bin, args...)
}

// runIn is run in another directory.
func (b *builder) runIn(dir, logPath string, env []string, bin string, args ...string) error {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(b.ctx, bin, args...)
	cmd.Cancel = func() error { return killGroup(cmd) } // go build's compilers too
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build failed: %s %s: %v\n--- last lines of %s:\n%s", bin, strings.Join(args, " "), err, logPath, tail(logPath, 30))
	}
	return nil
}

// hashModuleSource hashes what goes into our module's build: non-test Go
// files, go.mod and go.sum, outside bench/ and testdata.
func hashModuleSource(root string) (string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			base := d.Name()
			if rel != "." && (rel == "bench" || base == "testdata" || strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_")) {
				return filepath.SkipDir
			}
			if rel != "." && isFile(filepath.Join(p, "go.mod")) {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if (strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go")) || rel == "go.mod" || rel == "go.sum" {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// snapshot extracts a git ref of the repo into dir (git archive: the work
// tree and index are left alone).
func snapshot(repo, ref, dir string) (string, error) {
	commit, err := exec.Command("git", "-C", repo, "rev-parse", "--verify", ref+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("%s: not a commit: %v", ref, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	archive := exec.Command("git", "-C", repo, "archive", "--format=tar", strings.TrimSpace(string(commit)))
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		return "", fmt.Errorf("git archive %s: %v", ref, err)
	}
	if err := untar.Wait(); err != nil {
		return "", fmt.Errorf("extracting %s: %v", ref, err)
	}
	return strings.TrimSpace(string(commit)), nil
}

// xcaddyVersion is the xcaddy our go.mod pins (`go tool xcaddy`).
func xcaddyVersion(repo string) string {
	f, err := os.Open(filepath.Join(repo, "go.mod"))
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "github.com/caddyserver/xcaddy" {
			return fields[1]
		}
	}
	return "?"
}

func joinList(list, item string) string {
	if list == "" {
		return item
	}
	return list + "," + item
}

func hasLine(out []byte, line string) bool {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
