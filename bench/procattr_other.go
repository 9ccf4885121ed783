//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// The harness measures CPU through /proc and so runs on Linux only; this
// keeps `go vet ./...` working elsewhere.
func childAttr() *syscall.SysProcAttr { return nil }

func killGroup(cmd *exec.Cmd) error { return cmd.Process.Kill() }
