// Command shoal-scenario runs benchmark scenarios against real agent
// processes on loopback. Run it from tools/, the runners' own module (../ is
// the repository root, where it builds ./cmd/shoal and keeps .cache):
//
//	go run ./cmd/shoal-scenario mesh -n 30 -idle 20s -out ../docs/benchmarks.md
//
// The mesh scenario starts N Shoal agents and N stock serf agents (built from
// the module proxy at the serf version in go.mod) side by side, and measures
// both the same way: resident memory and idle CPU from /proc, gossip bytes
// from iptables accounting on lo, the time until every member sees a new
// member, and the time until every member marks a kill -9'ed member failed.
// For Shoal it also samples the age of the gossiped load.
//
//	go run ./cmd/shoal-scenario p2p -n 10
//
// The p2p scenario starts N agents with --profile lan and N with --profile
// p2p (same binary, same gossip key) side by side and measures both the same
// way: resident memory (with its anonymous and file-backed parts, PSS and the
// Go runtime's own figures), idle CPU, gossip bytes, join time and failure
// detection.
//
//	go run ./cmd/shoal-scenario footprint -n 30 -variant old=BIN1 -variant new=BIN2
//
// The footprint scenario runs a mesh per Shoal binary (and per profile and
// mesh size, NAME=BIN[:PROFILE[:N]]) and one of stock serf side by side and
// reports memory (RSS, its anonymous and file-backed parts, PSS, Go heap)
// and idle CPU per agent as ratios to serf, and the cost of one more peer
// where variants differ only in N. See docs/benchmarks.md.
//
//	go run ./cmd/shoal-scenario large -n 1000 -model
//
// The large scenario runs N real mesh stacks in this process on the
// in-memory network (internal/largen), Shoal's and stock serf's one after
// the other, and the dissemination model on the same links (issue 14).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: shoal-scenario mesh|p2p|footprint|large|model [flags]

scenarios:
  mesh   N Shoal agents and N stock serf agents side by side: memory, idle CPU,
         convergence, failure detection, gossip bytes; load age for Shoal
  p2p    N Shoal agents on --profile lan and N on --profile p2p side by side:
         memory (RSS, its parts, Go heap), idle CPU, gossip bytes, join time,
         failure detection
  footprint
         meshes of several Shoal binaries (builds, commits, profiles, sizes)
         and of stock serf side by side: memory and idle CPU per agent, as
         ratios to serf, and the cost of one more peer
  large  N real mesh stacks (Shoal's, and stock serf's as the baseline) in
         this process on the in-memory network, with per-link latency, loss
         and starved hosts: convergence, failure detection, false failures,
         load age, bytes and packets per node, push/pull, CPU and memory
         per node; -model puts the dissemination model beside it
  model  the load dissemination model (mesh.SimulateDissemination) alone,
         on the large scenario's links, at up to N=10,000

run 'shoal-scenario SCENARIO -h' for its flags
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "mesh":
	case "p2p":
		return runP2PCmd(args, stdout, stderr)
	case "footprint":
		return runFootprintCmd(args, stdout, stderr)
	case "large":
		return runLargeCmd(args, stdout, stderr)
	case "model":
		return runModelCmd(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "shoal-scenario: unknown scenario %q\n", args[0])
		usage(stderr)
		return 2
	}
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("mesh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.N, "n", cfg.N, "agents per implementation")
	fs.DurationVar(&cfg.Idle, "idle", cfg.Idle, "idle window for CPU and gossip bytes, after the mesh converged")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "pause between convergence and the idle window, so join traffic dies down")
	fs.StringVar(&cfg.Out, "out", cfg.Out, "write the results here: *.json as JSON, anything else as Markdown (e.g. docs/benchmarks.md)")
	fs.IntVar(&cfg.Trials, "trials", cfg.Trials, "join and kill -9 trials per implementation (alternating Shoal, serf)")
	fs.IntVar(&cfg.LoadRounds, "load-rounds", cfg.LoadRounds, "rounds of /v1/members sampling for the load age")
	fs.DurationVar(&cfg.LoadWindow, "load-window", cfg.LoadWindow, "time over which the load-age rounds are spread")
	fs.DurationVar(&cfg.Poll, "poll", cfg.Poll, "interval between polls of one member's member list")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on every wait (start, convergence, join, failure detection)")
	fs.StringVar(&cfg.ShoalNet, "shoal-net", cfg.ShoalNet, "first three octets of the Shoal agents' addresses")
	fs.StringVar(&cfg.SerfNet, "serf-net", cfg.SerfNet, "first three octets of the serf agents' addresses")
	fs.StringVar(&cfg.ShoalBin, "shoal-bin", "", "use this shoal binary instead of building ./cmd/shoal")
	fs.StringVar(&cfg.ShoalRev, "shoal-rev", "", "build shoal as committed at this git revision (e.g. HEAD) instead of from the working tree")
	fs.StringVar(&cfg.SerfBin, "serf-bin", "", "use this serf binary instead of building it from the module proxy")
	fs.BoolVar(&cfg.NoIptables, "no-iptables", false, "do not use iptables accounting (fall back to Shoal's own counters; serf: n/a)")
	return runScenario(fs, args, stdout, stderr, &cfg.Command, &cfg.Log, func(ctx context.Context) (report, error) {
		return RunMesh(ctx, cfg)
	}, &cfg.Out)
}

// report is what a scenario run returns.
type report interface {
	Table() string
	WriteFile(path string) error
}

// runScenario parses the flags, runs the scenario under a context that
// SIGINT/SIGTERM/SIGHUP cancel, prints its table and writes *out if set.
func runScenario(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, command *string, logf *func(string, ...any), runIt func(context.Context) (report, error), out *string) int {
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shoal-scenario %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return 2
	}
	*command = "cd tools && go run ./cmd/shoal-scenario " + strings.Join(args, " ")
	*logf = func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	res, err := runIt(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "shoal-scenario: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, res.Table())
	if *out != "" {
		if err := res.WriteFile(*out); err != nil {
			fmt.Fprintf(stderr, "shoal-scenario: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "wrote %s\n", *out)
	}
	return 0
}

func runP2PCmd(args []string, stdout, stderr io.Writer) int {
	cfg := DefaultP2PConfig()
	fs := flag.NewFlagSet("p2p", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.N, "n", cfg.N, "agents per profile")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "pause after both meshes converged, before the idle window")
	fs.DurationVar(&cfg.Idle, "idle", cfg.Idle, "idle window for CPU and gossip bytes; memory is read at its end")
	fs.IntVar(&cfg.Trials, "trials", cfg.Trials, "join and kill -9 trials per profile (alternating lan, p2p)")
	fs.DurationVar(&cfg.Poll, "poll", cfg.Poll, "interval between polls of one member's member list")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on every wait (start, convergence, join, failure detection)")
	fs.StringVar(&cfg.ShoalNet, "lan-net", cfg.ShoalNet, "first three octets of the lan agents' addresses")
	fs.StringVar(&cfg.P2PNet, "p2p-net", cfg.P2PNet, "first three octets of the p2p agents' addresses")
	fs.StringVar(&cfg.ShoalBin, "shoal-bin", "", "use this shoal binary instead of building ./cmd/shoal")
	fs.StringVar(&cfg.ShoalRev, "shoal-rev", "", "build shoal as committed at this git revision (e.g. HEAD) instead of from the working tree")
	fs.BoolVar(&cfg.NoIptables, "no-iptables", false, "do not count gossip bytes with iptables")
	fs.StringVar(&cfg.Out, "out", "", "also write the results here: *.json as JSON, anything else as a Markdown section")
	return runScenario(fs, args, stdout, stderr, &cfg.Command, &cfg.Log, func(ctx context.Context) (report, error) {
		return RunP2P(ctx, cfg)
	}, &cfg.Out)
}
