// Command lssim runs loadshare's load-sharing simulation over the full grid
// (two host sets, three loads, five refresh periods, every picker) and prints
// the table. The same simulator, on a reduced grid, is asserted by
// TestSimulationBounds in package sim.
//
// From tools/, the runners' own module:
//
//	go run ./cmd/lssim [-duration 6000] [-warmup 1000] [-seed 1] [-workers 0]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/shoalmesh/shoal/loadshare/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lssim:", err)
		os.Exit(1)
	}
}

func run() error {
	g := sim.DefaultGrid()
	flag.Float64Var(&g.Duration, "duration", g.Duration, "simulated time per run, in mean service times")
	flag.Float64Var(&g.Warmup, "warmup", g.Warmup, "initial time left out of the figures")
	flag.Uint64Var(&g.Seed, "seed", g.Seed, "random seed")
	flag.IntVar(&g.Workers, "workers", 0, "runs at once (0 = GOMAXPROCS)")
	theory := flag.Float64("theory-duration", 20000, "duration of the theory check runs")
	flag.Parse()

	start := time.Now()
	fmt.Println("Theory check: 100 equal hosts, 90% load, live information (supermarket model)")
	for _, c := range sim.TheoryChecks() {
		r, err := sim.Run(c.Config(*theory, *theory/10, g.Seed))
		if err != nil {
			return err
		}
		fmt.Printf("  %-16s mean time in system %6.3f  theory %6.3f  (%+.1f%%)\n", c.Name, r.Mean, c.Want, 100*(r.Mean/c.Want-1))
	}
	fmt.Printf("\nGrid: %d senders, Poisson arrivals, exponential service, FIFO per host; times in mean service\n", 100)
	fmt.Println("times of a speed-1 host; refresh = gossip period per (sender, host), information age uniform")
	fmt.Println("on [0, refresh); p99/rr and p99/rnd = p99 over the round-robin / random baseline's p99;")
	fmt.Println("max/mn = max/mean queue length, maxw/mn = same for queue length / host speed; cv = std/mean")
	fmt.Printf("of queue lengths. duration %g, warm-up %g, seed %d.\n\n", g.Duration, g.Warmup, g.Seed)
	rows, err := sim.RunGrid(g)
	if err != nil {
		return err
	}
	if err := sim.WriteTable(os.Stdout, rows); err != nil {
		return err
	}
	fmt.Printf("\n(%s)\n", time.Since(start).Round(time.Second))
	return nil
}
