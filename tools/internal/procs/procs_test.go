package procs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func sh(t *testing.T, g *Group, name, script string) *Proc {
	t.Helper()
	spec := Spec{Name: name, Argv: []string{"/bin/sh", "-c", script}, Dir: filepath.Join(t.TempDir(), name)}
	spec.Log = filepath.Join(spec.Dir, "log")
	var p *Proc
	var err error
	if g != nil {
		p, err = g.Start(spec)
	} else {
		p, err = Start(spec)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

func waitDone(t *testing.T, p *Proc) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running", p.Name)
	}
}

// gone reports whether pid no longer runs: absent, or a zombie no one has
// reaped yet (a container's init may not reap).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	err := Until(context.Background(), 10*time.Millisecond, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestStartLogsAndExits(t *testing.T) {
	p := sh(t, nil, "exit3", "echo to-stdout; echo to-stderr >&2; pwd; echo \"env=$PROCS_TEST\"; exit 3")
	waitDone(t, p)
	if !p.Exited() || p.Killed() {
		t.Errorf("Exited %v, Killed %v: want true, false", p.Exited(), p.Killed())
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.ExitCode() != 3 {
		t.Errorf("Err %v: want exit status 3", p.Err())
	}
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p.Log)
	for _, want := range []string{"to-stdout\n", "to-stderr\n", dir + "\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log %q lacks %q", b, want)
		}
	}
	msg := p.ExitError().Error()
	for _, want := range []string{"exit3 (pid ", "exit status 3", "  | to-stderr"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ExitError %q lacks %q", msg, want)
		}
	}
}

func TestStartEnv(t *testing.T) {
	t.Setenv("PROCS_TEST_DROP", "x")
	dir := t.TempDir()
	p, err := Start(Spec{Name: "env", Argv: []string{"/bin/sh", "-c", "echo \"[$PROCS_TEST_DROP][$PROCS_TEST_ADD]\""},
		Env: EnvWithout("PROCS_TEST_", "PROCS_TEST_ADD=y"), Log: filepath.Join(dir, "sub", "log")})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	b, _ := os.ReadFile(p.Log)
	if got := strings.TrimSpace(string(b)); got != "[][y]" {
		t.Errorf("child saw %q, want [][y]", got)
	}
}

func TestStartFails(t *testing.T) {
	if _, err := Start(Spec{Name: "none"}); err == nil {
		t.Error("Start without argv: no error")
	}
	if _, err := Start(Spec{Name: "missing", Argv: []string{"/nonexistent/program"}}); err == nil || !strings.Contains(err.Error(), "start missing") {
		t.Errorf("Start of a missing program: %v", err)
	}
}

// Kill takes the child's own children with it: the whole process group.
func TestKillProcessGroup(t *testing.T) {
	p := sh(t, nil, "parent", "sleep 300 & echo $! > child.pid; wait")
	child := readPID(t, filepath.Join(filepath.Dir(p.Log), "child.pid"))
	start := time.Now()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || !p.Killed() {
		t.Errorf("after Kill: Exited %v, Killed %v", p.Exited(), p.Killed())
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Err %v: want killed by SIGKILL", p.Err())
	}
	if err := Until(context.Background(), 10*time.Millisecond, func() error {
		if !gone(child) {
			return fmt.Errorf("child %d still runs", child)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Kill took %v", d)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

// Stop ends with SIGTERM a process that heeds it, before the grace is up.
func TestStopTerm(t *testing.T) {
	p := sh(t, nil, "term", "exec sleep 300")
	start := time.Now()
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Stop took %v: SIGTERM not delivered?", d)
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("Err %v: want terminated by SIGTERM", p.Err())
	}
}

// Stop kills after the grace a process that ignores SIGTERM.
func TestStopKillsAfterGrace(t *testing.T) {
	p := sh(t, nil, "stubborn", "trap '' TERM; echo ready > ready; sleep 300")
	ready := filepath.Join(filepath.Dir(p.Log), "ready")
	if err := Until(context.Background(), 10*time.Millisecond, func() error { _, err := os.Stat(ready); return err }); err != nil {
		t.Fatal(err)
	}
	const grace = 300 * time.Millisecond
	start := time.Now()
	if err := p.Stop(grace); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < grace {
		t.Errorf("Stop returned after %v, before the grace of %v", d, grace)
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Err %v: want killed by SIGKILL", p.Err())
	}
}

func TestGroupKillAllAndClose(t *testing.T) {
	g, err := NewGroup("procs-test-")
	if err != nil {
		t.Fatal(err)
	}
	var ps []*Proc
	for i := range 3 {
		name := fmt.Sprintf("p%d", i)
		p, err := g.Start(Spec{Name: name, Argv: []string{"sleep", "300"}, Dir: filepath.Join(g.Dir, name), Log: filepath.Join(g.Dir, name, "log")})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	exited := sh(t, g, "exited", "exit 0")
	waitDone(t, exited)
	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if !p.Exited() || !p.Killed() {
			t.Errorf("%s: Exited %v, Killed %v after KillAll", p.Name, p.Exited(), p.Killed())
		}
	}
	if exited.Killed() {
		t.Error("KillAll marked a process that had exited on its own as killed")
	}
	// KillAll forgot them: a later one is the only one Close kills.
	late, err := g.Start(Spec{Name: "late", Argv: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !late.Exited() {
		t.Error("Close left a process running")
	}
	if _, err := os.Stat(g.Dir); !os.IsNotExist(err) {
		t.Errorf("Close left %s: %v", g.Dir, err)
	}
}

func TestUntil(t *testing.T) {
	ctx := context.Background()
	n := 0
	err := Until(ctx, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("Until: %v after %d tries, want nil after 3", err, n)
	}

	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = Until(tctx, 10*time.Millisecond, func() error { return errors.New("still not") })
	var nr *NotReadyError
	if !errors.As(err, &nr) || !errors.Is(err, context.DeadlineExceeded) || nr.Last.Error() != "still not" {
		t.Errorf("Until past its context: %v", err)
	}

	// A try cut short by the end of ctx (a request in flight) does not hide
	// why the tries before it failed.
	cut, cancel3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel3()
	tries := 0
	err = Until(cut, time.Millisecond, func() error {
		if tries++; tries == 1 {
			return errors.New("503 starting")
		}
		<-cut.Done()
		return fmt.Errorf("get: %w", cut.Err())
	})
	if !errors.As(err, &nr) || nr.Last.Error() != "503 starting" {
		t.Errorf("Until whose last try ran out of time: %v, want the error before it", err)
	}

	p := sh(t, nil, "dies", "echo bye; exit 1")
	start := time.Now()
	err = Until(ctx, time.Hour, func() error { return errors.New("no") }, p)
	if err == nil || !strings.Contains(err.Error(), "dies (pid") || !strings.Contains(err.Error(), "  | bye") {
		t.Errorf("Until with a watched process that exits: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Until noticed the exit after %v", d)
	}
}

func TestWaitHTTP(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ready")
	}))
	defer srv.Close()
	p := sh(t, nil, "alive", "exec sleep 300")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitHTTP(ctx, srv.URL, 5*time.Millisecond, nil); err != nil || hits.Load() != 3 {
		t.Errorf("WaitHTTP: %v after %d requests, want nil after 3", err, hits.Load())
	}
	err := p.WaitHTTP(ctx, srv.URL, 5*time.Millisecond, func(status int, body []byte) error {
		if string(body) != "ready" {
			return fmt.Errorf("body %q", body)
		}
		return nil
	})
	if err != nil {
		t.Errorf("WaitHTTP with a check: %v", err)
	}

	// Long enough for a request to be answered on a busy machine; a request
	// in flight at the end does not hide why the earlier ones failed.
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	err = p.WaitHTTP(short, srv.URL, 5*time.Millisecond, func(int, []byte) error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "alive did not answer in time (last error: never)") {
		t.Errorf("WaitHTTP that never succeeds: %v", err)
	}

	dead := sh(t, nil, "dead", "exit 2")
	if err := dead.WaitHTTP(ctx, srv.URL+"/nothing", time.Hour, func(int, []byte) error { return errors.New("no") }); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("WaitHTTP on a process that exits: %v", err)
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	if got := Tail(path, 3); !strings.HasPrefix(got, "  (no log: ") {
		t.Errorf("Tail of a missing file: %q", got)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Tail(path, 3); got != "  (empty log)" {
		t.Errorf("Tail of an empty file: %q", got)
	}
	if err := os.WriteFile(path, []byte("a\nb\nc\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := Tail(path, 2), "  | c\n  | d"; got != want {
		t.Errorf("Tail: %q, want %q", got, want)
	}
}

func TestFreePort(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		port, err := FreePort(ip)
		if err != nil {
			t.Fatal(err)
		}
		if port <= 0 || port > 65535 {
			t.Fatalf("FreePort(%s) = %d", ip, port)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d from FreePort(%s) is not bindable: %v", port, ip, err)
		}
		l.Close()
	}
	addr, err := FreeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr %s is not bindable: %v", addr, err)
	}
	l.Close()
}
