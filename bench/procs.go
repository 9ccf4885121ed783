package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children are every long-lived process the harness started; killAll ends
// them on any exit path.
var children struct {
	sync.Mutex
	procs []*child
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// pinServers and pinLoad are the CPUs (taskset -c) of the server processes
// and of wrk with -pin; "" leaves them to the scheduler.
var pinServers, pinLoad string

// pinned is the command line of bin with args, on cpu if one is given
// (taskset execs bin: the pid is bin's).
func pinned(cpu, bin string, args []string) []string {
	if cpu == "" {
		return append([]string{bin}, args...)
	}
	return append([]string{"taskset", "-c", cpu, bin}, args...)
}

// startChild starts a server process with its output in logPath.
func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	argv := pinned(pinServers, bin, args)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %v", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	children.Lock()
	children.procs = append(children.procs, c)
	children.Unlock()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// killAll sends SIGTERM to every child, then SIGKILL to those still up
// after a grace period.
func killAll() {
	children.Lock()
	procs := children.procs
	children.procs = nil
	children.Unlock()
	for _, c := range procs {
		if !c.exited() {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(5 * time.Second)
	for _, c := range procs {
		select {
		case <-c.done:
		case <-deadline:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

// stop ends one child: SIGTERM, then SIGKILL after a grace period.
func (c *child) stop() {
	if !c.exited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	children.Lock()
	for i, p := range children.procs {
		if p == c {
			children.procs = append(children.procs[:i], children.procs[i+1:]...)
			break
		}
	}
	children.Unlock()
}

// busyTicks is the machine's non-idle CPU time (all cores) from /proc/stat,
// steal included.
func busyTicks() (int64, error) {
	busy, _, err := machineTicks()
	return busy, err
}

// machineTicks is the machine's non-idle CPU time (all cores) from
// /proc/stat, and the part of it that is steal: time a virtual CPU was
// ready to run but the host ran something else.
func machineTicks() (busy, steal int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		busy += n
		if i == 7 {
			steal = n
		}
	}
	return busy, steal, nil
}

// cpuTicks is utime+stime of a process (all its threads), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; the fields after it do not.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed utime/stime")
	}
	return u + st, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100 // USER_HZ on the architectures Go supports
})

// sumTicks reads the CPU ticks of several processes.
func sumTicks(pids []int) (int64, error) {
	var total int64
	for _, p := range pids {
		t, err := cpuTicks(p)
		if err != nil {
			return 0, fmt.Errorf("reading CPU time of pid %d: %v", p, err)
		}
		total += t
	}
	return total, nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitPort waits until addr accepts connections, or c exits.
func waitPort(c *child, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.exited() {
			return fmt.Errorf("%s exited before listening on %s: %v", c.name, addr, c.err)
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not listen on %s within %s", c.name, addr, timeout)
}
