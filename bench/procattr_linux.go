package main

import (
	"os/exec"
	"syscall"
)

// childAttr puts a child in its own process group (a terminal's Ctrl-C
// reaches only the harness, which stops the children in order) and has the
// kernel kill it if the harness dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills a child started with childAttr and everything it started.
func killGroup(cmd *exec.Cmd) error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
