package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a local mesh of several agents on 127.0.0.x with fast timings",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 5, Usage: "how many agents (1–50)"},
			&cli.IntFlag{Name: "http-port", Value: 7950, Usage: "API port of the first agent; the others count up"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (0: until Ctrl-C)"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			n := c.Int("nodes")
			if n < 1 || n > 50 {
				return usagef("--nodes %d: use 1–50", n)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if d := c.Duration("duration"); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			return runDev(ctx, c.App.Writer, n, c.Int("http-port"), c.String("log-level"))
		},
	}
}

func runDev(ctx context.Context, w io.Writer, n, httpPort int, level string) error {
	base, err := os.MkdirTemp("", "shoal-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	log := agent.NewLogger(os.Stderr, level, false)
	var agents []*agent.Agent
	defer func() {
		for _, a := range agents {
			a.Stop(true)
		}
	}()
	first := ""
	tw := table(w)
	row(tw, "NODE", "GOSSIP", "API", "TRY")
	for i := 1; i <= n; i++ {
		cfg := agent.DefaultConfig()
		cfg.NodeName = fmt.Sprintf("dev-%d", i)
		cfg.Bind = fmt.Sprintf("127.0.0.%d:7946", 10+i)
		cfg.Profile = "local"
		cfg.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", httpPort+i-1)
		cfg.DataDir = fmt.Sprintf("%s/%s", base, cfg.NodeName)
		cfg.Tags = map[string]string{"role": "dev"}
		cfg.Priority = i
		cfg.SampleInterval = agent.Duration(500 * time.Millisecond)
		if first != "" {
			cfg.Join = []string{first}
		}
		a, err := agent.New(cfg, agent.WithLogger(log.With(slog.String("dev", cfg.NodeName))))
		if err != nil {
			return err
		}
		if err := a.Start(ctx); err != nil {
			return fmt.Errorf("%s: %w", cfg.NodeName, err)
		}
		agents = append(agents, a)
		if first == "" {
			first = cfg.Bind
		}
		row(tw, cfg.NodeName, cfg.Bind, "http://"+cfg.HTTPAddr, fmt.Sprintf("shoal members --http-addr %s", cfg.HTTPAddr))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d agents running. Ask any of them: 'shoal members', 'shoal load', 'shoal info' (default API 127.0.0.1:%d), or curl http://127.0.0.1:%d/metrics. Ctrl-C stops.\n", n, httpPort, httpPort)
	<-ctx.Done()
	fmt.Fprintln(w, "stopping")
	return nil
}
