//go:build !linux

package main

import "syscall"

// devProcAttr puts a dev agent in its own process group, so the terminal's
// Ctrl-C goes to dev, which stops the agents in order.
func devProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
