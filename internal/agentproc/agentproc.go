// Package agentproc builds the shoal binary and runs `shoal agent`
// processes for tests that need real processes: start, signal (kill -9,
// SIGSTOP/SIGCONT, SIGTERM), restart with the same data directory and
// addresses, and reach the agent's API.
package agentproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testbin"
)

// Build builds cmd/shoal into dir and returns the binary's path.
func Build(dir string) (string, error) { return testbin.BuildInto(dir, testbin.Shoal) }

// HasFlag reports whether `bin agent --help` lists --flag.
func HasFlag(bin, flag string) bool {
	out, _ := exec.Command(bin, "agent", "--help").CombinedOutput()
	return strings.Contains(string(out), "--"+flag+" ") || strings.Contains(string(out), "--"+flag+"=")
}

// FreePort asks the kernel for a free TCP port on ip.
func FreePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Agent is one agent's configuration and its current process. Start runs
// it (again, after an exit or a kill: same name, addresses and data
// directory); its stdout and stderr are appended to Log.
type Agent struct {
	Name     string
	Bin      string
	Prefix   []string // run under this command, e.g. ip netns exec NS
	Gossip   string   // ip:port
	HTTP     string   // ip:port of the API
	DataDir  string
	Log      string
	Args     []string // after the ones Start sets
	Token    string   // API token (passed as SHOAL_API_TOKEN, used by Client)
	AgentEnv []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

// Start starts the process; it does not wait for the API (see WaitAPI).
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done != nil {
		select {
		case <-a.done:
		default:
			return fmt.Errorf("agent %s is already running (pid %d)", a.Name, a.cmd.Process.Pid)
		}
	}
	if err := os.MkdirAll(a.DataDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(a.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	a.runs++
	fmt.Fprintf(f, "=== start %d of %s at %s\n", a.runs, a.Name, time.Now().UTC().Format(time.RFC3339Nano))
	args := append([]string{"agent", "--node", a.Name, "--bind", a.Gossip, "--http-addr", a.HTTP, "--data-dir", a.DataDir}, a.Args...)
	argv := append(append(append([]string{}, a.Prefix...), a.Bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), a.AgentEnv...)
	if a.Token != "" {
		cmd.Env = append(cmd.Env, "SHOAL_API_TOKEN="+a.Token)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	a.cmd, a.done = cmd, done
	return nil
}

// Running reports whether the process is running (stopped counts).
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the running process.
func (a *Agent) Signal(sig syscall.Signal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return fmt.Errorf("agent %s never started", a.Name)
	}
	return a.cmd.Process.Signal(sig)
}

// Pid is the running process's id (0 when none).
func (a *Agent) Pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Wait waits up to d for the process to exit.
func (a *Agent) Wait(d time.Duration) error {
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("agent %s still running %v later", a.Name, d)
	}
}

// Kill sends SIGKILL (and SIGCONT, in case it was stopped) and waits for
// the exit.
func (a *Agent) Kill() {
	if !a.Running() {
		return
	}
	_ = a.Signal(syscall.SIGKILL)
	_ = a.Signal(syscall.SIGCONT)
	_ = a.Wait(10 * time.Second)
}

// Client is a client of the agent's API.
func (a *Agent) Client() *client.Client { return client.New(a.HTTP, a.Token) }

// WaitAPI polls the API until it answers, the process exits or d passes.
func (a *Agent) WaitAPI(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := a.Client().Info(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if !a.Running() {
			return errors.Join(fmt.Errorf("agent %s exited before its API answered; see %s", a.Name, a.Log), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent %s API %s not up within %v: %w", a.Name, a.HTTP, d, err)
		}
		time.Sleep(25 * time.Millisecond) // the poll interval, not a wait for an outcome
	}
}

// Tail returns the last n lines of the agent's log.
func (a *Agent) Tail(n int) string {
	b, err := os.ReadFile(a.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
