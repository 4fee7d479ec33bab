package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/agent"
	"github.com/shoalmesh/shoal/internal/testenv"
)

// tmux runs a tmux command on the test's own server socket.
func tmux(t *testing.T, sock string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
	return string(out), err
}

// TestTopInTmux drives 'shoal top' in a real terminal (tmux): it shows the
// members and the aggregate, refreshes in place (a killed member turns
// failed), and exits 0 on q.
func TestTopInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		testenv.RequireOrSkip(t, "tmux not found: install it (apt-get install tmux) to drive 'shoal top' in a terminal")
	}
	a := startAgent(t, "top-1", "127.0.0.191", "")
	b := startAgent(t, "top-2", "127.0.0.192", a.gossip)
	c := startAgent(t, "top-3", "127.0.0.193", a.gossip)
	_ = b
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	exitFile := filepath.Join(dir, "exit")
	cmd := fmt.Sprintf("%s top --http-addr %s --interval 300ms; echo exit=$? > %s", shoalBin, a.http, exitFile)
	if out, err := tmux(t, sock, "new-session", "-d", "-s", "top", "-x", "150", "-y", "30", cmd); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = tmux(t, sock, "kill-server") })
	var screen string
	capture := func() string {
		s, _ := tmux(t, sock, "capture-pane", "-p", "-t", "top")
		return s
	}
	poll(t, 15*time.Second, "top shows three members alive with load", func() error {
		screen = capture()
		for _, want := range []string{"shoal top", "top-1 *", "top-2", "top-3", "members 3: alive 3, failed 0", "aggregate over 3", "%"} {
			if !strings.Contains(screen, want) {
				return fmt.Errorf("no %q on screen:\n%s", want, screen)
			}
		}
		return nil
	})
	t.Logf("screen:\n%s", screen)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, 15*time.Second, "top shows top-3 failed", func() error {
		screen = capture()
		if !strings.Contains(screen, "failed 1") || !strings.Contains(screen, "failed ") {
			return fmt.Errorf("screen:\n%s", screen)
		}
		for _, ln := range strings.Split(screen, "\n") {
			if strings.HasPrefix(ln, "top-3") && strings.Contains(ln, "failed") {
				return nil
			}
		}
		return fmt.Errorf("no failed row for top-3:\n%s", screen)
	})
	if out, err := tmux(t, sock, "send-keys", "-t", "top", "q"); err != nil {
		t.Fatalf("send-keys: %v %s", err, out)
	}
	poll(t, 5*time.Second, "top exits 0 on q", func() error {
		b, err := os.ReadFile(exitFile)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "exit=0" {
			return fmt.Errorf("%s", b)
		}
		return nil
	})
}

func TestTopPlainWhenNotATerminal(t *testing.T) {
	a := startAgent(t, "plain-1", "127.0.0.194", "")
	poll(t, 10*time.Second, "plain top lists the member with load", func() error {
		out, err := exec.Command(shoalBin, "top", "--http-addr", a.http).Output()
		if err != nil {
			return err
		}
		s := string(out)
		if strings.Contains(s, "\x1b") {
			return fmt.Errorf("escape sequences in plain output: %q", s)
		}
		if !strings.Contains(s, "plain-1 *") || !strings.Contains(s, "members 1: alive 1") || !strings.Contains(s, "%") {
			return fmt.Errorf("output:\n%s", s)
		}
		return nil
	})
}

// TestMonitorStreamsEventsAndDebugLog: 'shoal monitor --level debug
// --format json' sees a member join and debug records, while the agent
// itself logs at warn (its stderr has no debug line).
func TestMonitorStreamsEventsAndDebugLog(t *testing.T) {
	a := startAgent(t, "mon-1", "127.0.0.196", "")
	mon := exec.Command(shoalBin, "monitor", "--http-addr", a.http, "--level", "debug", "--format", "json")
	stdout, err := mon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = mon.Process.Kill()
		_ = mon.Wait()
	})
	entries := make(chan agent.StreamEntry, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e agent.StreamEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				entries <- e
			}
		}
		close(entries)
	}()
	// The stream has no history: wait until the agent counts the monitor as
	// a listener before the join.
	poll(t, 10*time.Second, "monitor connected", func() error {
		resp, err := http.Get("http://" + a.http + "/metrics")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "\nshoal_monitor_listeners 1\n") {
			return fmt.Errorf("no monitor listener yet")
		}
		return nil
	})
	startAgent(t, "mon-2", "127.0.0.197", a.gossip)
	var sawJoin, sawDebug bool
	deadline := time.After(15 * time.Second)
	for !(sawJoin && sawDebug) {
		select {
		case e, ok := <-entries:
			if !ok {
				t.Fatal("monitor ended")
			}
			if e.Kind == "event" && e.Type == "member-join" && e.Member == "mon-2" {
				sawJoin = true
			}
			if e.Kind == "log" && e.Level == "DEBUG" && e.Node == "mon-1" {
				sawDebug = true
			}
		case <-deadline:
			t.Fatalf("join seen %v, debug seen %v", sawJoin, sawDebug)
		}
	}
	if strings.Contains(a.stderr.String(), "level=DEBUG") {
		t.Errorf("the agent's own log (level warn) has debug lines")
	}
	// Ctrl-C ends the monitor with status 0.
	_ = mon.Process.Signal(os.Interrupt)
	if err := mon.Wait(); err != nil {
		t.Errorf("monitor after SIGINT: %v", err)
	}
	// Bad input is a usage error.
	if code, _, stderr := runCLI(t, "monitor", "--http-addr", a.http, "--level", "loud"); code != 2 || !strings.Contains(stderr, "loud") {
		t.Errorf("--level loud: exit %d, %q", code, stderr)
	}
}
