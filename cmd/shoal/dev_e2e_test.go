package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testbin"
)

// freePortRun finds n consecutive free TCP ports on 127.0.0.1 and returns
// the first (dev numbers its agents' API ports up from --http-port).
func freePortRun(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		first := freePort(t, "127.0.0.1")
		var ls []net.Listener
		ok := true
		for p := first; p < first+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// TestDevMesh runs `shoal dev --nodes 3` on the default profile and on p2p
// and polls every agent's member list until all three are alive; on p2p the
// member names are peer IDs, the dev names their alias tags, and gossip is
// encrypted with the key dev made. Ctrl-C (SIGINT) then stops the mesh.
func TestDevMesh(t *testing.T) {
	for _, c := range []struct{ profile, ip string }{{"", "127.0.0.201"}, {"p2p", "127.0.0.205"}} {
		name := c.profile
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			port := freePortRun(t, 3)
			proxy := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
			backendPort := freePort(t, c.ip)
			args := []string{"dev", "--nodes", "3", "--bind-ip", c.ip, "--http-port", fmt.Sprint(port), "--log-level", "warn",
				"--backend-port", fmt.Sprint(backendPort), "--proxy", proxy}
			if c.profile != "" {
				args = append(args, "--profile", c.profile)
			}
			cmd := exec.Command(shoalBin, args...)
			var stdout, stderr testbin.SyncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
			})
			var addrs []string
			for i := range 3 {
				addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port+i))
			}
			start := time.Now()
			var last []client.Member
			poll(t, 20*time.Second, "every dev agent lists three alive", func() error {
				select {
				case err := <-done:
					done <- err
					return fmt.Errorf("shoal dev exited: %v\n%s", err, stderr.String())
				default:
				}
				for _, a := range addrs {
					ms, err := cliJSON[[]client.Member](a, "members")
					if err != nil {
						return err
					}
					alive := 0
					for _, m := range ms {
						if m.Status == "alive" {
							alive++
						}
					}
					if alive != 3 {
						return fmt.Errorf("%s lists %d alive of %d", a, alive, len(ms))
					}
					last = ms
				}
				return nil
			})
			t.Logf("three alive everywhere %.2fs after start", time.Since(start).Seconds())

			aliases := map[string]bool{}
			for _, m := range last {
				if c.profile == "p2p" {
					if !strings.HasPrefix(m.Name, "12D3KooW") {
						t.Errorf("p2p member name %q is not a peer ID", m.Name)
					}
					aliases[m.Tags["alias"]] = true
				} else {
					aliases[m.Name] = true
				}
			}
			for i := 1; i <= 3; i++ {
				if !aliases[fmt.Sprintf("dev-%d", i)] {
					t.Errorf("dev-%d missing from %+v", i, last)
				}
			}
			in, err := cliJSON[client.Info](addrs[0], "info")
			if err != nil {
				t.Fatal(err)
			}
			if c.profile == "p2p" {
				if in.Profile != "p2p" || !in.Encrypted || in.P2P == nil || len(in.P2P.Addrs) == 0 {
					t.Errorf("first agent's info: profile %q, encrypted %v, p2p %+v", in.Profile, in.Encrypted, in.P2P)
				}
				if !strings.Contains(stdout.String(), "gossip key ") {
					t.Errorf("dev did not print the gossip key:\n%s", stdout.String())
				}
			} else if in.Profile != "local" {
				t.Errorf("default dev profile %q, want local", in.Profile)
			}

			// The README walkthrough: pick a member for service=web, and
			// reach a backend through dev-1's proxy.
			// (A member is eligible once its first load sample has arrived.)
			poll(t, 10*time.Second, "pick --service web names a member at its backend port", func() error {
				picked, err := cliJSON[[]client.Picked](addrs[0], "pick", "--service", "web")
				if err == nil && (len(picked) != 1 || !strings.HasSuffix(picked[0].Addr, fmt.Sprintf(":%d", backendPort))) {
					err = fmt.Errorf("picked %+v; want one member at port %d", picked, backendPort)
				}
				return err
			})
			poll(t, 10*time.Second, "the proxy reaches a dev backend", func() error {
				resp, err := http.Get("http://" + proxy + "/")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "hello from dev-") {
					return fmt.Errorf("proxy answered %d %q", resp.StatusCode, b)
				}
				return nil
			})

			if c.profile == "" {
				// Each agent is its own process: kill -9 dev-3, see it
				// failed, restart it with the script dev printed, see it back.
				pid, script := devRow(t, stdout.String(), "dev-3")
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				poll(t, 20*time.Second, "dev-1 sees dev-3 failed", func() error { return memberStatus(addrs[0], "dev-3", "failed") })
				// dev keeps failed members listed (--reconnect-timeout 1h), so
				// force-leave can be tried on it.
				if code, so, se := runCLI(t, "force-leave", "--http-addr", addrs[0], "dev-3"); code != 0 {
					t.Fatalf("force-leave dev-3: exit %d: %s %s", code, so, se)
				}
				poll(t, 10*time.Second, "dev-1 sees dev-3 left after force-leave", func() error { return memberStatus(addrs[0], "dev-3", "left") })
				restart := exec.Command("sh", script)
				if err := restart.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = restart.Process.Kill(); _ = restart.Wait() })
				poll(t, 20*time.Second, "dev-3 alive again after its restart script", func() error { return memberStatus(addrs[0], "dev-3", "alive") })
			}

			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				done <- err
				if err != nil {
					t.Fatalf("shoal dev after SIGINT: %v\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Signal(syscall.SIGQUIT)
				t.Fatalf("shoal dev still running 15s after SIGINT")
			}
		})
	}
}

func TestDevRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"dev", "--profile", "lan"},
		{"dev", "--bind-ip", "10.0.0.1"},
		{"dev", "--bind-ip", "127.0.0.250", "--nodes", "10"},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != 2 || !strings.Contains(stderr, "shoal: ") {
			t.Errorf("shoal %s: exit %d, stderr %q; want exit 2 and one clear line", strings.Join(args, " "), code, stderr)
		}
	}
}

// devRow reads dev's table for an agent's PID and restart script.
func devRow(t *testing.T, out, name string) (int, string) {
	t.Helper()
	for _, ln := range strings.Split(out, "\n") {
		f := strings.Fields(ln)
		if len(f) >= 7 && f[0] == name {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("dev row %q: PID %q", ln, f[1])
			}
			return pid, f[len(f)-1]
		}
	}
	t.Fatalf("no row for %s in dev's output:\n%s", name, out)
	return 0, ""
}

func memberStatus(api, name, want string) error {
	ms, err := cliJSON[[]client.Member](api, "members")
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Name == name {
			if m.Status != want {
				return fmt.Errorf("%s is %s", name, m.Status)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not listed", name)
}
