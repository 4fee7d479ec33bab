// Command shoal-failover measures coordinator failover on loopback: the time
// from a kill -9 of the coordinator to every survivor naming the same new
// one, for Shoal's bully election (shoal agent processes, lan profile) and,
// side by side in the same run, for hashicorp/raft v1.8 (one process per
// voter, raft's TCP transport, in-memory stores, raft.DefaultConfig).
//
// From tools/, the runners' own module (../ is the repository root):
//
//	go run ./cmd/shoal-failover -n 5,30 -out ../docs/benchmarks.md
//
// Each mesh (N agents, or N raft voters) is started fresh, a coordinator is
// established (Shoal: POST /v1/leader/elect on one agent, since the election
// is lazy; raft elects at start), then the coordinator is killed, the
// survivors are polled until they all name the same new one under a higher
// term, and that new coordinator is killed next, up to -kills times (at most
// (N-1)/2, so a majority survives). For Shoal the same polls also read when
// every survivor marks the victim failed (failure detection), since the
// target is failover no slower than failure detection plus 1 s. -rounds
// repeats with fresh meshes, alternating Shoal and raft.
//
// Shoal agents listen on 127.0.30.i (gossip :7946, API :7950), raft voters
// on 127.0.40.i (transport :8300, status :8301). The raft voters are this
// same binary run as 'shoal-failover raft-node'. Every process is killed at
// the end, also on error or Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Config is one run of the benchmark.
type Config struct {
	// Sizes are the mesh sizes to measure.
	Sizes []int
	// Kills is how many coordinators each mesh loses in a row (capped at
	// (N-1)/2); Rounds how many fresh meshes per size and implementation.
	Kills, Rounds int
	// Poll is the interval at which each survivor is asked.
	Poll time.Duration
	// Timeout bounds every wait.
	Timeout time.Duration
	// ShoalBin is a prebuilt shoal binary; else ShoalRev is built ("" builds
	// the working tree).
	ShoalBin, ShoalRev string
	// Profile is the Shoal agents' profile.
	Profile string
	// Out, when set, gets the Markdown section appended.
	Out string
	// Skip "shoal" or "raft" to measure only the other.
	Skip string
	// LogLevel is the Shoal agents' --log-level; Keep leaves the working
	// directory (agents' logs and data) in place and prints its path.
	LogLevel string
	Keep     bool
	Log      func(format string, a ...any)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "raft-node" {
		return runRaftNode(args[1:], stderr)
	}
	cfg := Config{Kills: 2, Rounds: 2, Poll: 50 * time.Millisecond, Timeout: 60 * time.Second, ShoalRev: "HEAD", Profile: "lan", LogLevel: "warn"}
	fs := flag.NewFlagSet("shoal-failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("n", "5,30", "comma-separated mesh sizes")
	fs.IntVar(&cfg.Kills, "kills", cfg.Kills, "coordinators killed in a row per mesh (at most (N-1)/2)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "fresh meshes per size and implementation")
	fs.DurationVar(&cfg.Poll, "poll", cfg.Poll, "interval between polls of one survivor")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on every wait")
	fs.StringVar(&cfg.ShoalBin, "shoal-bin", "", "use this shoal binary instead of building one")
	fs.StringVar(&cfg.ShoalRev, "shoal-rev", cfg.ShoalRev, `build shoal as committed at this git revision ("" builds the working tree)`)
	fs.StringVar(&cfg.Profile, "profile", cfg.Profile, "Shoal agents' profile: lan, wan or local")
	fs.StringVar(&cfg.Out, "out", "", "append the Markdown section to this file (e.g. docs/benchmarks.md)")
	fs.StringVar(&cfg.Skip, "skip", "", `"shoal" or "raft": measure only the other`)
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "Shoal agents' --log-level (debug logs every election step)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the working directory (agents' logs) and print its path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shoal-failover: unexpected arguments %q\n", fs.Args())
		return 2
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 || n > 200 {
			fmt.Fprintf(stderr, "shoal-failover: -n %q: want sizes 3–200\n", *sizes)
			return 2
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if cfg.Kills < 1 || cfg.Rounds < 1 || cfg.Poll <= 0 || cfg.Timeout <= 0 {
		fmt.Fprintln(stderr, "shoal-failover: -kills and -rounds must be >= 1, -poll and -timeout positive")
		return 2
	}
	switch cfg.Skip {
	case "", "shoal", "raft":
	default:
		fmt.Fprintf(stderr, "shoal-failover: -skip %q: use shoal or raft\n", cfg.Skip)
		return 2
	}
	cfg.Log = func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	res, err := Run(ctx, cfg, "cd tools && go run ./cmd/shoal-failover "+strings.Join(args, " "))
	if err != nil {
		fmt.Fprintf(stderr, "shoal-failover: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, res.Markdown())
	if cfg.Out != "" {
		f, err := os.OpenFile(cfg.Out, os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = io.WriteString(f, "\n"+res.Markdown())
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "shoal-failover: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "appended to %s\n", cfg.Out)
	}
	return 0
}
