package main

import "syscall"

// devProcAttr puts a dev agent in its own process group (the terminal's
// Ctrl-C goes to dev, which stops the agents in order) and has the kernel
// stop it if dev itself dies without cleaning up (kill -9 of dev).
func devProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
