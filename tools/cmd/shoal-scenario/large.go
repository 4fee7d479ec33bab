package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoalmesh/shoal/internal/largen"
	"github.com/shoalmesh/shoal/mesh"
)

// LargeResult is what the large scenario measured: the in-process harness
// (internal/largen) on each stack asked for, and the model
// (mesh.SimulateDissemination) on the same links, if asked for.
type LargeResult struct {
	Command string           `json:"command"`
	Cores   int              `json:"cores"`
	Runs    []*largen.Result `json:"runs"`
	// Model is the dissemination model at the same N, latency, loss,
	// starved share and change rate (nil without -model).
	Model   *mesh.SimResult `json:"model,omitempty"`
	Elapsed float64         `json:"elapsed_s"`
}

type largeFlags struct {
	cfg     largen.Config
	stacks  string
	model   bool
	out     string
	command string
	log     func(string, ...any)
}

func runLargeCmd(args []string, stdout, stderr io.Writer) int {
	f := largeFlags{cfg: largen.Defaults()}
	c := &f.cfg
	fs := flag.NewFlagSet("large", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.N, "n", c.N, "nodes, each a real stack in this process on the in-memory network")
	fs.StringVar(&f.stacks, "stack", "shoal,serf", "stacks to run, one after the other: shoal (mesh package, lan profile), serf (stock serf and memberlist, LAN defaults: memberlist alone)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the links, the starved hosts, the loads and the victims")
	fs.DurationVar(&c.LatencyMin, "latency-min", c.LatencyMin, "least one-way latency of a link (each link's is drawn once)")
	fs.DurationVar(&c.LatencyMax, "latency-max", c.LatencyMax, "greatest one-way latency of a link")
	fs.DurationVar(&c.Jitter, "jitter", c.Jitter, "up to this much more per packet")
	fs.Float64Var(&c.Loss, "loss", c.Loss, "share of packets lost")
	fs.Float64Var(&c.Starved, "starved", c.Starved, "share of hosts short of CPU (their packets wait up to -starved-delay more, in and out)")
	fs.DurationVar(&c.StarvedJitter, "starved-delay", c.StarvedJitter, "extra wait of a starved host's packets")
	fs.DurationVar(&c.ChangeEvery, "change-every", c.ChangeEvery, "mean time between a node's load moving past a bucket")
	fs.IntVar(&c.JoinBatch, "join-batch", c.JoinBatch, "nodes started and joined at once")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "pause after convergence, before the idle window")
	fs.DurationVar(&c.Idle, "idle", c.Idle, "idle window: bytes, packets, CPU, load ages, false failures; memory at its end")
	fs.IntVar(&c.KillTrials, "kills", c.KillTrials, "nodes shut down without leaving after the idle window, one at a time")
	fs.IntVar(&c.JoinTrials, "joins", c.JoinTrials, "nodes added after the kills, one at a time")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound on every wait")
	fs.BoolVar(&f.model, "model", false, "also run mesh.SimulateDissemination on the same links and loads, and print it beside the harness")
	fs.StringVar(&f.out, "out", "", "also write the results here as JSON")
	return runScenario(fs, args, stdout, stderr, &f.command, &f.log, func(ctx context.Context) (report, error) {
		return runLarge(ctx, f)
	}, &f.out)
}

func runLarge(ctx context.Context, f largeFlags) (*LargeResult, error) {
	t0 := time.Now()
	res := &LargeResult{Command: f.command, Cores: runtime.NumCPU()}
	for _, st := range strings.Split(f.stacks, ",") {
		cfg := f.cfg
		cfg.Stack = strings.TrimSpace(st)
		cfg.Logf = f.log
		r, err := largen.Run(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s at N=%d: %w", cfg.Stack, cfg.N, err)
		}
		res.Runs = append(res.Runs, r)
		runtime.GC() // the next stack starts from a clean heap
	}
	if f.model {
		f.log("model: N=%d", f.cfg.N)
		m := mesh.SimulateDissemination(largen.ModelConfig(f.cfg))
		res.Model = &m
	}
	res.Elapsed = time.Since(t0).Seconds()
	return res, nil
}

func durs(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(s, ", ") + " s"
}

// Table prints one column per stack (and the model's where it has one).
func (r *LargeResult) Table() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%d cores; run took %.0f s\n\n", r.Command, r.Cores, r.Elapsed)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	head := []string{"metric"}
	for _, x := range r.Runs {
		head = append(head, fmt.Sprintf("%s N=%d", x.Stack, x.N))
	}
	if r.Model != nil {
		head = append(head, "model")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	row := func(label string, model string, cell func(x *largen.Result) string) {
		cells := []string{label}
		for _, x := range r.Runs {
			cells = append(cells, cell(x))
		}
		if r.Model != nil {
			cells = append(cells, model)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	shoal := func(x *largen.Result, s string) string {
		if x.Stack != largen.StackShoal {
			return "n/a"
		}
		return s
	}
	var m mesh.SimResult
	if r.Model != nil {
		m = *r.Model
	}
	row("join convergence (all list all)", "", func(x *largen.Result) string { return fmt.Sprintf("%.1f s", x.Converged.Seconds()) })
	row("one join, until all list it", "", func(x *largen.Result) string { return durs(x.Join) })
	row("failure detection, first", "", func(x *largen.Result) string { return durs(x.DetectFirst) })
	row("failure detection, all", "", func(x *largen.Result) string { return durs(x.DetectAll) })
	row("false failures idle / whole run (members)", "", func(x *largen.Result) string {
		return fmt.Sprintf("%d / %d (%d)", x.FalseIdle, x.FalseFailures, x.FalseMembers)
	})
	row("bytes/node/s out (all, 28 B IP/UDP a packet)", "", func(x *largen.Result) string { return fmt.Sprintf("%.0f", x.BytesOut) })
	row("packets/node/s out", "", func(x *largen.Result) string { return fmt.Sprintf("%.1f", x.PacketsOut) })
	row("load gossip bytes/node/s", fmt.Sprintf("%.0f", m.BytesPerNodePerSec), func(x *largen.Result) string { return shoal(x, fmt.Sprintf("%.0f", x.LoadBytes)) })
	row("load gossip packets/node/s", fmt.Sprintf("%.1f", m.PacketsPerNodePerSec), func(x *largen.Result) string { return shoal(x, fmt.Sprintf("%.1f", x.LoadPackets)) })
	row("push/pull (stream) bytes/node/s", "", func(x *largen.Result) string { return fmt.Sprintf("%.0f", x.StreamBytes) })
	row("load age p50 / p99 / max", fmt.Sprintf("%.2f / %.2f / %.2f s", m.AgeP50.Seconds(), m.AgeP99.Seconds(), m.AgeMax.Seconds()), func(x *largen.Result) string {
		return shoal(x, fmt.Sprintf("%.2f / %.2f / %.2f s", x.AgeP50.Seconds(), x.AgeP99.Seconds(), x.AgeMax.Seconds()))
	})
	row("load pairs sampled / without load", fmt.Sprintf("– / %d", m.Missing), func(x *largen.Result) string { return shoal(x, fmt.Sprintf("%d / %d", x.AgePairs, x.AgeMissing)) })
	row("wants / answers per node/s", fmt.Sprintf("%.1f / %.1f", m.WantsPerNodePerSec, m.AnswersPerNodePerSec), func(x *largen.Result) string { return shoal(x, fmt.Sprintf("%.1f / %.1f", x.Wants, x.Answers)) })
	row("CPU per node (% of a core)", "", func(x *largen.Result) string { return fmt.Sprintf("%.3f", x.CPUPercent) })
	row("Go heap / runtime memory per node", "", func(x *largen.Result) string { return fmt.Sprintf("%.2f / %.2f MB", x.HeapMB, x.SysMB) })
	row("goroutines (all nodes)", "", func(x *largen.Result) string { return fmt.Sprint(x.Goroutines) })
	row("load average start → end", "", func(x *largen.Result) string { return x.LoadAvg[0] + " → " + x.LoadAvg[1] })
	tw.Flush()
	for _, x := range r.Runs {
		if len(x.Warnings) == 0 {
			continue
		}
		keys := make([]string, 0, len(x.Warnings))
		for k := range x.Warnings {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { return x.Warnings[b] - x.Warnings[a] })
		fmt.Fprintf(&b, "\n%s warnings and errors (by message):\n", x.Stack)
		for i, k := range keys {
			if i == 8 {
				fmt.Fprintf(&b, "  … %d more kinds\n", len(keys)-i)
				break
			}
			fmt.Fprintf(&b, "  %6d  %s\n", x.Warnings[k], k)
		}
	}
	return b.String()
}

// WriteFile writes the result as JSON.
func (r *LargeResult) WriteFile(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
