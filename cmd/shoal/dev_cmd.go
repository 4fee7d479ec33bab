package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/mesh"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a local mesh of several agents on 127.0.0.x with fast timings",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 5, Usage: "how many agents (1–50)"},
			&cli.IntFlag{Name: "http-port", Value: 7950, Usage: "API port of the first agent; the others count up"},
			&cli.StringFlag{Name: "bind-ip", Value: "127.0.0.11", Usage: "gossip address of the first agent (port 7946); the others count up"},
			&cli.StringFlag{Name: "profile", Value: mesh.ProfileLocal, Usage: "local (memberlist on UDP/TCP) or p2p (libp2p: a fresh gossip key, the others join the first agent's multiaddr)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (0: until Ctrl-C)"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error"},
			&cli.IntFlag{Name: "backend-port", Value: 8080, Usage: "port of each agent's tiny web backend, on the agent's gossip IP (tagged service=web)"},
			&cli.StringFlag{Name: "proxy", Value: "127.0.0.1:8080", Usage: "dev-1 runs the forwarding proxy for service=web here (empty: none)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			o := devOptions{n: c.Int("nodes"), httpPort: c.Int("http-port"), profile: c.String("profile"), level: c.String("log-level"),
				backendPort: c.Int("backend-port"), proxy: c.String("proxy")}
			if o.backendPort < 1 || o.backendPort > 65535 {
				return usagef("--backend-port %d: use 1–65535", o.backendPort)
			}
			if o.n < 1 || o.n > 50 {
				return usagef("--nodes %d: use 1–50", o.n)
			}
			if o.profile != mesh.ProfileLocal && o.profile != mesh.ProfileP2P {
				return usagef("--profile %q: use local or p2p", o.profile)
			}
			ip := net.ParseIP(c.String("bind-ip")).To4()
			if ip == nil || !ip.IsLoopback() || int(ip[3])+o.n-1 > 254 {
				return usagef("--bind-ip %q: use an IPv4 loopback address with room for %d agents from it on (e.g. 127.0.0.11)", c.String("bind-ip"), o.n)
			}
			o.ip = ip
			if o.httpPort < 1 || o.httpPort+o.n-1 > 65535 {
				return usagef("--http-port %d: no room for %d ports", o.httpPort, o.n)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if d := c.Duration("duration"); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			return runDev(ctx, c.App.Writer, o)
		},
	}
}

type devOptions struct {
	n, httpPort    int
	backendPort    int
	proxy          string // dev-1's proxy listen address ("" for none)
	ip             net.IP // the first agent's gossip address
	profile, level string
}

// nthIP is the gossip address of agent i (1-based).
func (o devOptions) nthIP(i int) string {
	ip := append(net.IP(nil), o.ip...)
	ip[3] += byte(i - 1)
	return ip.String()
}

// devAgent is one agent of the dev mesh: a child process of this binary,
// so that it can be killed (kill -9 PID) and restarted (the script it
// names) on its own while the rest of the mesh runs on.
type devAgent struct {
	name, gossip, http, backend string
	args                        []string
	cmd                         *exec.Cmd
	exited                      chan struct{}
}

func runDev(ctx context.Context, w io.Writer, o devOptions) error {
	base, err := os.MkdirTemp("", "shoal-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("dev runs this binary as its agents: %w", err)
	}
	var agents []*devAgent
	defer func() {
		for _, a := range agents {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, a := range agents {
			select {
			case <-a.exited:
			case <-time.After(10 * time.Second):
				_ = a.cmd.Process.Kill()
				<-a.exited
			}
		}
	}()
	p2p := o.profile == mesh.ProfileP2P
	var key string
	if p2p {
		// The p2p profile admits only peers that hold the mesh key: a
		// fresh one per dev mesh, as 'shoal keygen' makes.
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return err
		}
		key = base64.StdEncoding.EncodeToString(k)
	}
	first := "" // what the others join: the first agent's gossip address, or on p2p its multiaddr
	for i := 1; i <= o.n; i++ {
		a := &devAgent{
			name:   fmt.Sprintf("dev-%d", i), // on p2p the alias tag; the node name is the peer ID
			gossip: net.JoinHostPort(o.nthIP(i), "7946"),
			http:   fmt.Sprintf("127.0.0.1:%d", o.httpPort+i-1),
		}
		// A tiny backend per agent, tagged service=web and port=N, so that
		// 'shoal pick --service web' and the proxy have somewhere to send work.
		bl, err := net.Listen("tcp", net.JoinHostPort(o.nthIP(i), strconv.Itoa(o.backendPort)))
		if err != nil {
			return fmt.Errorf("%s: backend: %w (choose another --backend-port)", a.name, err)
		}
		a.backend = bl.Addr().String()
		srv := &http.Server{Handler: devBackend(a.name), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(bl)
		defer srv.Close()

		a.args = []string{"agent", "--node", a.name, "--bind", a.gossip, "--profile", o.profile,
			"--http-addr", a.http, "--data-dir", filepath.Join(base, a.name), "--log-level", o.level,
			"--tag", "role=dev", "--tag", "service=web", "--tag", "port=" + strconv.Itoa(o.backendPort),
			"--priority", strconv.Itoa(i), "--sample-interval", "500ms",
			// A killed agent stays listed as failed, so force-leave can be tried.
			"--reconnect-timeout", "1h"}
		if i == 1 && o.proxy != "" {
			a.args = append(a.args, "--proxy-listen", o.proxy, "--proxy-service", "web")
		}
		if p2p {
			// The test hooks the local profile serves (POST /v1/debug/load,
			// /v1/leader/act), and Go's profiler; the API is on loopback.
			a.args = append(a.args, "--encrypt", key, "--enable-debug", "--p2p-fast-timings")
		}
		if first != "" {
			a.args = append(a.args, "--join", first)
		}
		if err := a.start(exe, base); err != nil {
			return err
		}
		agents = append(agents, a)
		in, err := waitDevAgent(ctx, a)
		if err != nil {
			return err
		}
		if first == "" {
			first = a.gossip
			if p2p {
				if in.P2P == nil {
					return fmt.Errorf("%s: the agent reports no p2p addresses", a.name)
				}
				if first, err = p2pJoinAddr(in.P2P.Addrs); err != nil {
					return fmt.Errorf("%s: %w", a.name, err)
				}
			}
		}
	}
	tw := table(w)
	row(tw, "NODE", "PID", "GOSSIP", "API", "BACKEND", "RESTART AFTER kill -9 PID")
	for _, a := range agents {
		row(tw, a.name, a.cmd.Process.Pid, a.gossip, "http://"+a.http, a.backend, "sh "+filepath.Join(base, a.name+".sh"))
	}
	tw.Flush()
	if p2p {
		fmt.Fprintf(w, "\np2p mesh: gossip key %s; the others joined %s\n", key, first)
		next := "127.0.0.X"
		if int(o.ip[3])+o.n <= 254 {
			next = o.nthIP(o.n + 1)
		}
		fmt.Fprintf(w, "Another agent joins with: shoal agent --profile p2p --encrypt %s --join %s --bind %s:7946 --http-addr 127.0.0.1:%d --data-dir DIR\n",
			key, first, next, o.httpPort+o.n)
	}
	fmt.Fprintf(w, "\n%d agents running, each its own process. Ask any of them: 'shoal members', 'shoal load', 'shoal pick --service web' (default API 127.0.0.1:%d), or curl http://127.0.0.1:%d/metrics.\n", o.n, o.httpPort, o.httpPort)
	if o.proxy != "" {
		fmt.Fprintf(w, "dev-1 proxies http://%s to the members tagged service=web: curl -s http://%s/\n", o.proxy, o.proxy)
	}
	fmt.Fprintln(w, "Ctrl-C stops them all.")
	<-ctx.Done()
	fmt.Fprintln(w, "stopping")
	return nil
}

// start runs the agent and writes the script that restarts it.
func (a *devAgent) start(exe, base string) error {
	script := "#!/bin/sh\n# restart " + a.name + " of a shoal dev mesh (it joins the others again)\nexec " + shellQuote(exe)
	for _, s := range a.args {
		script += " " + shellQuote(s)
	}
	if err := os.WriteFile(filepath.Join(base, a.name+".sh"), []byte(script+"\n"), 0o700); err != nil {
		return err
	}
	a.cmd = exec.Command(exe, a.args...)
	a.cmd.Stdout = os.Stderr
	a.cmd.Stderr = &prefixWriter{w: os.Stderr, prefix: a.name + ": "}
	// Ctrl-C reaches only dev's process group; dev stops its agents itself
	// (SIGTERM: each leaves gracefully) and waits for them.
	a.cmd.SysProcAttr = devProcAttr()
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	a.exited = make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(a.exited) }()
	return nil
}

// waitDevAgent polls the agent's API until it answers (10 s at most).
func waitDevAgent(ctx context.Context, a *devAgent) (client.Info, error) {
	cl := client.New(a.http, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		in, err := cl.Info(rctx)
		cancel()
		if err == nil {
			return in, nil
		}
		select {
		case <-a.exited:
			return in, fmt.Errorf("%s exited before its API answered (see its log above)", a.name)
		case <-ctx.Done():
			return in, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return in, fmt.Errorf("%s: API at %s not up after 10s: %w", a.name, a.http, err)
		}
	}
}

// devBackend answers every request with the node's name: what the proxy
// and pick walkthrough show.
func devBackend(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", name)
	})
}

// prefixWriter prefixes each line written with the agent's name.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	mid    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for _, c := range b {
		if !p.mid {
			out = append(out, p.prefix...)
			p.mid = true
		}
		out = append(out, c)
		if c == '\n' {
			p.mid = false
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// p2pJoinAddr picks the multiaddr others join through: QUIC, libp2p's first
// choice, else the first one.
func p2pJoinAddr(addrs []string) (string, error) {
	if len(addrs) == 0 {
		return "", errors.New("p2p: the agent reports no multiaddr to join")
	}
	for _, a := range addrs {
		if strings.Contains(a, "/quic-v1/") {
			return a, nil
		}
	}
	return addrs[0], nil
}
