// Package procs is the process plumbing the runners in tools/cmd share:
// start a child process in a process group of its own with its output in a
// log file, wait until it answers, stop it (SIGTERM, then SIGKILL after a
// grace) and kill every process of a run at the end, in a temporary
// directory that goes with them; pick a free port; and build the shoal
// binary (build.go).
//
// Every child runs in its own process group, so that a Ctrl-C at the
// terminal reaches only the runner, which then kills the children itself,
// and a signal from here reaches the child's own children too (nginx's
// workers). Each is started with Pdeathsig, so that the kernel kills it
// should the runner die without cleaning up.
package procs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// KillWait is how long a process is given to exit after SIGKILL before
// Kill, Stop or KillAll report it as still running.
const KillWait = 10 * time.Second

// Spec says how to start a process.
type Spec struct {
	// Name names the process in messages.
	Name string
	// Argv is the program and its arguments.
	Argv []string
	// Dir is the working directory, created if missing ("" is the
	// runner's own).
	Dir string
	// Env is the environment (nil is the runner's own; see EnvWithout).
	Env []string
	// Log is the file that gets the process's stdout and stderr, created
	// (or truncated) with its directory ("" discards both).
	Log string
}

// Proc is a started process.
type Proc struct {
	Name    string
	Log     string // as in Spec
	PID     int
	Started time.Time // just after the process was started

	cmd    *exec.Cmd
	done   chan struct{}
	err    error // Wait's, set before done is closed
	killed atomic.Bool
}

// Start starts the process s describes in a process group of its own. A
// goroutine waits for it: Done is closed when it has exited.
func Start(s Spec) (*Proc, error) {
	if len(s.Argv) == 0 {
		return nil, fmt.Errorf("start %s: no command", s.Name)
	}
	if s.Dir != "" {
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Dir, cmd.Env = s.Dir, s.Env
	if s.Log != "" {
		if err := os.MkdirAll(filepath.Dir(s.Log), 0o755); err != nil {
			return nil, err
		}
		lf, err := os.Create(s.Log)
		if err != nil {
			return nil, err
		}
		// The child has its own copy of the descriptor once started.
		defer lf.Close()
		cmd.Stdout, cmd.Stderr = lf, lf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{Name: s.Name, Log: s.Log, PID: cmd.Process.Pid, Started: time.Now(), cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (exec.Cmd.Wait's error; nil for exit status
// 0). It is nil while the process runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Killed reports whether Kill, Stop or the group's KillAll was called on
// the process.
func (p *Proc) Killed() bool { return p.killed.Load() }

// ExitError describes a process that exited (on its own, as a rule), with
// the last lines of its log.
func (p *Proc) ExitError() error {
	return fmt.Errorf("%s (pid %d) exited: %v; last lines of %s:\n%s", p.Name, p.PID, p.Err(), p.Log, Tail(p.Log, 12))
}

// signal sends sig to the process's group.
func (p *Proc) signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.PID, sig); err != nil && !p.Exited() {
		return err
	}
	return nil
}

// Kill sends SIGKILL to the process's group and waits until the process has
// exited, at most KillWait.
func (p *Proc) Kill() error { return p.Stop(0) }

// Stop sends SIGTERM to the process's group and, unless the process has
// exited within grace, SIGKILL; either way what is left of the group is
// killed. It waits until the process has exited, at most grace plus
// KillWait. A grace of 0 sends SIGKILL at once (Kill).
func (p *Proc) Stop(grace time.Duration) error {
	p.killed.Store(true)
	if grace > 0 {
		if err := p.signal(syscall.SIGTERM); err != nil {
			return fmt.Errorf("kill -TERM %s: %w", p.Name, err)
		}
		select {
		case <-p.done:
			// Children that outlived it (or ignored SIGTERM) go too.
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
			return nil
		case <-time.After(grace):
		}
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %s: %w", p.Name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(KillWait):
		return fmt.Errorf("%s (pid %d) still running %v after SIGKILL", p.Name, p.PID, KillWait)
	}
}

// WaitReady calls try every interval until it returns nil. It fails when
// the process exits (ExitError) or ctx ends (try's last error and the tail
// of the log).
func (p *Proc) WaitReady(ctx context.Context, every time.Duration, try func() error) error {
	err := Until(ctx, every, try, p)
	var nr *NotReadyError
	if errors.As(err, &nr) {
		return fmt.Errorf("%s did not answer in time (last error: %v); log tail:\n%s", p.Name, nr.Last, Tail(p.Log, 8))
	}
	return err
}

// RequestTimeout bounds each request of WaitHTTP.
const RequestTimeout = 5 * time.Second

// WaitHTTP asks GET url every interval until check accepts the answer (a nil
// check accepts status 200), failing as WaitReady does.
func (p *Proc) WaitHTTP(ctx context.Context, url string, every time.Duration, check func(status int, body []byte) error) error {
	return p.WaitReady(ctx, every, func() error { return Get(ctx, url, check) })
}

// Get asks GET url once, within RequestTimeout, and returns check's verdict
// on the answer (a nil check accepts status 200).
func Get(ctx context.Context, url string, check func(status int, body []byte) error) error {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if check != nil {
		return check(resp.StatusCode, b)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// NotReadyError is Until's error when ctx ended before try succeeded.
type NotReadyError struct {
	Ctx  error // ctx.Err()
	Last error // try's last error
}

func (e *NotReadyError) Error() string { return fmt.Sprintf("%v (last error: %v)", e.Ctx, e.Last) }
func (e *NotReadyError) Unwrap() error { return e.Ctx }

// Until calls try every interval until it returns nil. It fails with the
// ExitError of the first of watch found exited, or with a *NotReadyError
// when ctx ends. The error it names is the last try's, unless that try was
// only cut short by ctx's end: then the one before, which says why the
// thing was not ready (a request in flight when time ran out says only
// that time ran out).
func Until(ctx context.Context, every time.Duration, try func() error, watch ...*Proc) error {
	var single <-chan struct{} // wakes the wait early when there is one process to watch
	if len(watch) == 1 {
		single = watch[0].done
	}
	var last error
	for {
		for _, p := range watch {
			if p.Exited() {
				return p.ExitError()
			}
		}
		err := try()
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			last = err
		}
		select {
		case <-ctx.Done():
			return &NotReadyError{Ctx: ctx.Err(), Last: last}
		case <-single:
		case <-time.After(every):
		}
	}
}

// Group owns the processes of a run and a temporary directory for their
// files, and kills them all at the end.
type Group struct {
	// Dir is the run's temporary directory.
	Dir string

	mu    sync.Mutex
	procs []*Proc
}

// NewGroup makes a temporary directory (os.MkdirTemp("", pattern)) for a
// new group.
func NewGroup(pattern string) (*Group, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	return &Group{Dir: dir}, nil
}

// Start starts a process (see Start) that KillAll will kill.
func (g *Group) Start(s Spec) (*Proc, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, err := Start(s)
	if err != nil {
		return nil, err
	}
	g.procs = append(g.procs, p)
	return p, nil
}

// KillAll sends SIGKILL to the group of every process started and still
// running, waits until each has exited (at most KillWait), and forgets
// them. It names those still running after that.
func (g *Group) KillAll() error {
	g.mu.Lock()
	all := g.procs
	g.procs = nil
	g.mu.Unlock()
	for _, p := range all {
		if !p.Exited() {
			p.killed.Store(true)
			_ = p.signal(syscall.SIGKILL)
		}
	}
	var errs []error
	for _, p := range all {
		select {
		case <-p.done:
		case <-time.After(KillWait):
			errs = append(errs, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID))
		}
	}
	return errors.Join(errs...)
}

// Close kills every process (KillAll) and removes the directory.
func (g *Group) Close() error {
	err := g.KillAll()
	return errors.Join(err, os.RemoveAll(g.Dir))
}

// Tail returns the last n lines of the file at path, each indented by
// "  | ", or a line saying why there are none.
func Tail(path string, n int) string {
	if path == "" {
		return "  (no log)"
	}
	f, err := os.Open(path)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, "  | "+sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "  (empty log)"
	}
	return strings.Join(lines, "\n")
}

// EnvWithout is the runner's environment without the variables whose names
// start with prefix, and with extra added. EnvWithout("SHOAL_") keeps
// anything in the caller's environment (an API token, a profile) from
// changing the agents.
func EnvWithout(prefix string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// FreePort asks the kernel for a free TCP port on ip. The port is free when
// FreePort returns; nothing holds it for the caller.
func FreePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is FreePort as an ip:port address.
func FreeAddr(ip string) (string, error) {
	port, err := FreePort(ip)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(ip, fmt.Sprint(port)), nil
}
