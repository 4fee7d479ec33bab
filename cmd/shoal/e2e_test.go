package main

import (
	pollpkg "github.com/shoalmesh/shoal/internal/poll"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testbin"
)

var shoalBin string

func TestMain(m *testing.M) { testbin.Main(m, &shoalBin, "", testbin.Shoal) }

// freePort asks the kernel for a free TCP port on ip.
func freePort(t *testing.T, ip string) int { return testbin.FreePort(t, ip) }

type proc struct {
	cmd    *exec.Cmd
	http   string
	gossip string
	stderr *testbin.SyncBuffer
}

func startAgent(t *testing.T, name, ip string, join string, extra ...string) *proc {
	t.Helper()
	gport := freePort(t, ip)
	p := &proc{http: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")), gossip: fmt.Sprintf("%s:%d", ip, gport), stderr: &testbin.SyncBuffer{}}
	args := []string{"agent", "--node", name, "--bind", p.gossip, "--profile", "local", "--http-addr", p.http,
		"--data-dir", t.TempDir(), "--sample-interval", "200ms", "--log-level", "warn"}
	if join != "" {
		args = append(args, "--join", join)
	}
	args = append(args, extra...)
	p.cmd = exec.Command(shoalBin, args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
	poll(t, 10*time.Second, name+" API up", func() error {
		_, err := cliJSON[client.Info](p.http, "info")
		return err
	})
	return p
}

// cliJSON runs the shoal CLI against an agent and decodes its JSON output.
func cliJSON[T any](httpAddr string, args ...string) (T, error) {
	var out T
	cmd := exec.Command(shoalBin, append(args, "--http-addr", httpAddr, "--format", "json")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("shoal %v: %v: %s", args, err, stderr.String())
	}
	return out, json.Unmarshal(b, &out)
}

func poll(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	pollpkg.Until(t, d, what, cond)
}

func TestThreeProcessesSeeEachOtherAndAKill(t *testing.T) {
	a := startAgent(t, "p1", "127.0.0.21", "")
	b := startAgent(t, "p2", "127.0.0.22", a.gossip)
	c := startAgent(t, "p3", "127.0.0.23", a.gossip)
	procs := []*proc{a, b, c}
	poll(t, 15*time.Second, "all three list all three with load", func() error {
		for _, p := range procs {
			ms, err := cliJSON[[]client.Member](p.http, "members")
			if err != nil {
				return err
			}
			if len(ms) != 3 {
				return fmt.Errorf("%s lists %d members", p.http, len(ms))
			}
			for _, m := range ms {
				if m.Status != "alive" || m.Load == nil || m.Load.Cores <= 0 {
					return fmt.Errorf("%s: %s is %s with load %+v", p.http, m.Name, m.Status, m.Load)
				}
			}
		}
		return nil
	})
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, 15*time.Second, "kill -9 of p3 reported failed", func() error {
		for _, p := range procs[:2] {
			ms, err := cliJSON[[]client.Member](p.http, "members", "--status", "failed")
			if err != nil {
				return err
			}
			if len(ms) != 1 || ms[0].Name != "p3" {
				return fmt.Errorf("%s lists failed: %+v", p.http, ms)
			}
		}
		return nil
	})
	// SIGTERM leaves gracefully (leave-on-terminate is the default).
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("p2 exit after SIGTERM: %v\n%s", err, b.stderr)
	}
	poll(t, 15*time.Second, "SIGTERM seen as a leave", func() error {
		ms, err := cliJSON[[]client.Member](a.http, "members")
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Name == "p2" {
				if m.Status != "left" {
					return fmt.Errorf("p1 sees p2 %s", m.Status)
				}
				return nil
			}
		}
		return fmt.Errorf("p1 does not list p2 (%d members)", len(ms))
	})
}

// runCLI runs the binary and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(shoalBin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), so.String(), se.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, so.String(), se.String()
}

func TestBadInputExitsWithOneClearLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyUDP, err := net.ListenPacket("udp", "127.0.0.31:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"node_name": 5`), 0o600)
	unreadable := filepath.Join(t.TempDir(), "missing.json")
	base := []string{"agent", "--profile", "local", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0"}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"members", "--bogus"}, 2, "bogus"},
		{"unknown command", []string{"frobnicate"}, 2, "frobnicate"},
		{"bad format", []string{"members", "--format", "xml"}, 2, `"xml"`},
		{"malformed key", append(base, "--bind", "127.0.0.31:0", "--encrypt", "not-a-key!"), 2, "not valid base64"},
		{"short key", append(base, "--bind", "127.0.0.31:0", "--encrypt", "c2hvcnQ="), 2, "5 bytes"},
		{"bad tag", append(base, "--bind", "127.0.0.31:0", "--tag", "novalue"), 2, `"novalue"`},
		{"reserved tag", append(base, "--bind", "127.0.0.31:0", "--tag", "scale=1/1/0/1/9"), 2, `key "scale" is reserved`},
		{"gossip port in use", append(base, "--bind", busyUDP.LocalAddr().String()), 1, busyUDP.LocalAddr().String()},
		{"api port in use", []string{"agent", "--profile", "local", "--bind", "127.0.0.31:0", "--http-addr", busy.Addr().String()}, 1, busy.Addr().String()},
		{"unreadable config", append(base, "--config", unreadable), 2, "missing.json"},
		{"malformed config", append(base, "--config", bad), 2, "bad.json"},
		{"unreachable join", append(base, "--bind", "127.0.0.31:0", "--join", "127.0.0.32:9", "--retry-join", "--retry-max", "3", "--retry-interval", "50ms"), 1, "127.0.0.32:9"},
		{"open api without token", append(base, "--bind", "127.0.0.31:0", "--http-addr", "0.0.0.0:0"), 2, "API token"},
		{"bad profile", append(base, "--bind", "127.0.0.31:0", "--profile", "fast"), 2, `"fast"`},
		{"agent not running", []string{"members", "--http-addr", busy.Addr().String() + "0"}, 1, "cannot reach the agent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, c.code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "shoal: ") || !strings.Contains(last, c.want) {
				t.Errorf("last stderr line %q should start with 'shoal: ' and name %q", last, c.want)
			}
		})
	}
}

func TestKeygenMakesAKeyTheAgentTakes(t *testing.T) {
	code, out, _ := runCLI(t, "keygen")
	if code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	key := strings.TrimSpace(out)
	a := startAgent(t, "k1", "127.0.0.41", "", "--encrypt", key)
	// A joiner holding another key is told so, on one line, and exits 1.
	_, otherKey, _ := runCLI(t, "keygen")
	code, _, stderr := runCLI(t, "agent", "--node", "k-wrong", "--bind", "127.0.0.43:0", "--profile", "local",
		"--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--encrypt", strings.TrimSpace(otherKey), "--join", a.gossip)
	last := strings.TrimSpace(stderr)
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if want := "the mesh at " + a.gossip + " did not accept our gossip key"; code != 1 || !strings.Contains(last, want) {
		t.Errorf("wrong-key join: exit %d, last line %q; want exit 1 and %q", code, last, want)
	}
	b := startAgent(t, "k2", "127.0.0.42", a.gossip, "--encrypt", key)
	poll(t, 10*time.Second, "encrypted pair sees each other's load", func() error {
		ms, err := cliJSON[[]client.Member](b.http, "members")
		if err != nil {
			return err
		}
		if len(ms) != 2 || ms[0].Load == nil || ms[1].Load == nil {
			return fmt.Errorf("%+v", ms)
		}
		return nil
	})
	// Rotate: install a new key, make it primary, remove the old one.
	_, out2, _ := runCLI(t, "keygen")
	newKey := strings.TrimSpace(out2)
	for _, op := range [][]string{{"install", newKey}, {"use", newKey}, {"remove", key}} {
		if code, so, se := runCLI(t, "keys", op[0], "--http-addr", a.http, op[1]); code != 0 {
			t.Fatalf("keys %s: exit %d: %s %s", op[0], code, so, se)
		}
	}
	resp, err := cliJSON[client.KeysResponse](b.http, "keys", "list")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Keys) != 1 || resp.Keys[newKey] != 2 {
		t.Fatalf("after rotation: %+v", resp)
	}
	// The mesh keeps gossiping load under the new key.
	before, _ := cliJSON[client.Info](a.http, "info")
	poll(t, 10*time.Second, "load packets still accepted after rotation", func() error {
		in, err := cliJSON[client.Info](a.http, "info")
		if err != nil {
			return err
		}
		if in.Traffic.LoadPacketsIn < before.Traffic.LoadPacketsIn+5 {
			return fmt.Errorf("load packets in %d", in.Traffic.LoadPacketsIn)
		}
		if in.Traffic.Dropped != before.Traffic.Dropped {
			return fmt.Errorf("dropped %d -> %d", before.Traffic.Dropped, in.Traffic.Dropped)
		}
		return nil
	})
}
