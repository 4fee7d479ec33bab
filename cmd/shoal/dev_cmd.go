package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
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
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			o := devOptions{n: c.Int("nodes"), httpPort: c.Int("http-port"), profile: c.String("profile"), level: c.String("log-level")}
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
	ip             net.IP // the first agent's gossip address
	profile, level string
}

// nthIP is the gossip address of agent i (1-based).
func (o devOptions) nthIP(i int) string {
	ip := append(net.IP(nil), o.ip...)
	ip[3] += byte(i - 1)
	return ip.String()
}

func runDev(ctx context.Context, w io.Writer, o devOptions) error {
	base, err := os.MkdirTemp("", "shoal-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	log := agent.NewLogger(os.Stderr, o.level, false)
	var agents []*agent.Agent
	defer func() {
		for _, a := range agents {
			a.Stop(true)
		}
	}()
	p2p := o.profile == mesh.ProfileP2P
	var key string
	var opts []agent.Option
	if p2p {
		// The p2p profile admits only peers that hold the mesh key: a
		// fresh one per dev mesh, as 'shoal keygen' makes.
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return err
		}
		key = base64.StdEncoding.EncodeToString(k)
		opts = append(opts, agent.WithP2PFastTimings())
	}
	first := "" // what the others join: the first agent's gossip address, or on p2p its multiaddr
	tw := table(w)
	if p2p {
		row(tw, "NODE", "PEER ID", "GOSSIP", "API", "TRY")
	} else {
		row(tw, "NODE", "GOSSIP", "API", "TRY")
	}
	for i := 1; i <= o.n; i++ {
		cfg := agent.DefaultConfig()
		cfg.NodeName = fmt.Sprintf("dev-%d", i) // on p2p the alias tag; the node name is the peer ID
		cfg.Bind = net.JoinHostPort(o.nthIP(i), "7946")
		cfg.Profile = o.profile
		cfg.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", o.httpPort+i-1)
		cfg.DataDir = fmt.Sprintf("%s/%s", base, cfg.NodeName)
		cfg.Tags = map[string]string{"role": "dev"}
		cfg.Priority = i
		cfg.SampleInterval = agent.Duration(500 * time.Millisecond)
		if p2p {
			cfg.EncryptKey = key
			// The test hooks the local profile serves (POST /v1/debug/load,
			// /v1/leader/act), and Go's profiler; the API is on loopback.
			cfg.EnableDebug = true
		}
		if first != "" {
			cfg.Join = []string{first}
		}
		a, err := agent.New(cfg, append(opts, agent.WithLogger(log.With(slog.String("dev", cfg.NodeName))))...)
		if err != nil {
			return err
		}
		if err := a.Start(ctx); err != nil {
			return fmt.Errorf("%s: %w", cfg.NodeName, err)
		}
		agents = append(agents, a)
		try := fmt.Sprintf("shoal members --http-addr %s", cfg.HTTPAddr)
		if !p2p {
			if first == "" {
				first = cfg.Bind
			}
			row(tw, cfg.NodeName, cfg.Bind, "http://"+cfg.HTTPAddr, try)
			continue
		}
		if first == "" {
			if first, err = p2pJoinAddr(a.Mesh().P2PAddrs()); err != nil {
				return fmt.Errorf("%s: %w", cfg.NodeName, err)
			}
		}
		row(tw, cfg.NodeName, a.Mesh().LocalName(), cfg.Bind, "http://"+cfg.HTTPAddr, try)
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
	fmt.Fprintf(w, "\n%d agents running. Ask any of them: 'shoal members', 'shoal load', 'shoal info' (default API 127.0.0.1:%d), or curl http://127.0.0.1:%d/metrics. Ctrl-C stops.\n", o.n, o.httpPort, o.httpPort)
	<-ctx.Done()
	fmt.Fprintln(w, "stopping")
	return nil
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
