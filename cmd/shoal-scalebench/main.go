// Command shoal-scalebench compares Shoal's scale policy with the plain
// Kubernetes HPA algorithm and a naive threshold on the recorded load traces
// in scale/testdata/traces (step, ramp, spike, oscillation), and prints the
// table that docs/benchmarks.md carries:
//
//	go run ./cmd/shoal-scalebench               # markdown table on stdout
//	go run ./cmd/shoal-scalebench -boot 30s     # instances take 30 s to boot
//	go run ./cmd/shoal-scalebench -gen scale/testdata/traces   # regenerate the traces (seed 1)
//
// Everything is simulated on a fake clock, one step per second, so a run
// takes well under a second and gives the same figures every time.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoalmesh/shoal/scale"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "shoal-scalebench:", err)
		os.Exit(1)
	}
}

// Names of the traces, in table order.
var traceNames = []string{"step", "ramp", "spike", "oscillation"}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("shoal-scalebench", flag.ContinueOnError)
	dir := fs.String("traces", "scale/testdata/traces", "directory of the CSV traces")
	gen := fs.String("gen", "", "write freshly generated traces into this directory and exit")
	seed := fs.Uint64("seed", 1, "with -gen: the seed")
	boot := fs.Duration("boot", 0, "time a new instance takes before it carries load (same for every scaler)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *gen != "" {
		if err := os.MkdirAll(*gen, 0o755); err != nil {
			return err
		}
		for _, t := range generate(*seed) {
			f, err := os.Create(filepath.Join(*gen, t.Name+".csv"))
			if err != nil {
				return err
			}
			if err := scale.WriteTrace(f, t); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		return nil
	}
	traces, err := readTraces(*dir)
	if err != nil {
		return err
	}
	rows, err := compare(traces, *boot)
	if err != nil {
		return err
	}
	printMarkdown(out, rows, *boot)
	return nil
}

func readTraces(dir string) ([]scale.Trace, error) {
	var out []scale.Trace
	for _, n := range traceNames {
		f, err := os.Open(filepath.Join(dir, n+".csv"))
		if err != nil {
			return nil, fmt.Errorf("trace %s: %w (run from the repository root, or set -traces)", n, err)
		}
		t, err := scale.ReadTrace(n, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Simulation constants shared by every scaler.
const (
	target    = 70.0
	tolerance = 0.1
	startN    = 3
	minN      = 1
	maxN      = 20
)

type scalerSpec struct {
	label string
	make  func() (scale.Scaler, error)
	opts  scale.SimOptions
}

func specs(boot time.Duration) []scalerSpec {
	base := scale.SimOptions{Start: startN, Target: target, Tolerance: tolerance, Boot: boot}
	shoal := func(label string) func() (scale.Scaler, error) {
		return func() (scale.Scaler, error) {
			cfg := scale.DefaultConfig()
			cfg.Target, cfg.Min, cfg.Max = target, minN, maxN
			p, err := scale.New(cfg)
			if err != nil {
				return nil, err
			}
			return &scale.PolicyScaler{Label: label, P: p, Every: time.Second}, nil
		}
	}
	agentView := base
	agentView.HalfLife, agentView.Delay = 5*time.Second, time.Second
	return []scalerSpec{
		{"Shoal policy, defaults (1 s evaluation)", shoal("shoal"), base},
		{"Shoal as the agent sees it (+5 s EWMA, 1 s gossip)", shoal("shoal-agent"), agentView},
		{"HPA algorithm (15 s sync, 300 s down stabilization)", func() (scale.Scaler, error) { return scale.NewHPA(target, minN, maxN), nil }, base},
		{"naive threshold (+1 above 70%, -1 below 50%, every 1 s)", func() (scale.Scaler, error) {
			return &scale.Naive{Up: target, Down: target - 20, Every: time.Second, Min: minN, Max: maxN}, nil
		}, base},
	}
}

type row struct {
	label     string
	perTrace  map[string]scale.SimResult
	latencies []float64
	crossings int
	band      []float64
	bandCross int
}

func compare(traces []scale.Trace, boot time.Duration) ([]row, error) {
	var rows []row
	for _, sp := range specs(boot) {
		r := row{label: sp.label, perTrace: map[string]scale.SimResult{}}
		for _, t := range traces {
			s, err := sp.make()
			if err != nil {
				return nil, err
			}
			res := scale.Simulate(t, s, sp.opts)
			r.perTrace[t.Name] = res
			r.latencies = append(r.latencies, res.Latencies...)
			r.crossings += res.Crossings
			r.band = append(r.band, res.BandLatencies...)
			r.bandCross += res.BandCrossings
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func fmtS(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f s", v)
}

func fmtLat(xs []float64) string {
	return fmt.Sprintf("%s / %s / %s", fmtS(scale.Percentile(xs, 50)), fmtS(scale.Percentile(xs, 99)), fmtS(scale.Percentile(xs, 100)))
}

func printMarkdown(w io.Writer, rows []row, boot time.Duration) {
	fmt.Fprintf(w, "Target 70%% utilization, tolerance 10%%, 3 instances at the start, bounds 1–20, instance boot time %v.\n\n", boot)
	fmt.Fprintln(w, "| scaler | crossing 70% → scale-up call p50 / p99 / max | answered | crossing 77% (band) → call p50 / p99 / max | answered | actions on oscillation | actions (step / ramp / spike) | under-provisioned s | overloaded s | instance-hours |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		under, overl, inst := 0, 0, 0.0
		for _, res := range r.perTrace {
			under += res.UnderSeconds
			overl += res.OverloadSeconds
			inst += res.InstanceSeconds
		}
		fmt.Fprintf(w, "| %s | %s | %d / %d | %s | %d / %d | %d | %d / %d / %d | %d | %d | %.1f |\n", r.label,
			fmtLat(r.latencies), len(r.latencies), r.crossings, fmtLat(r.band), len(r.band), r.bandCross,
			r.perTrace["oscillation"].Actions,
			r.perTrace["step"].Actions, r.perTrace["ramp"].Actions, r.perTrace["spike"].Actions,
			under, overl, inst/3600)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Per trace: p50 / p99 from crossing 70% to the scale-up call; the same from crossing 77%; under-provisioned seconds; actions.")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| scaler | %s |\n", strings.Join(traceNames, " | "))
	fmt.Fprintf(w, "|---|%s\n", strings.Repeat("---|", len(traceNames)))
	for _, r := range rows {
		cells := make([]string, 0, len(traceNames))
		for _, n := range traceNames {
			res := r.perTrace[n]
			cells = append(cells, fmt.Sprintf("%s / %s; %s / %s; %d s; %d", fmtS(scale.Percentile(res.Latencies, 50)), fmtS(scale.Percentile(res.Latencies, 99)),
				fmtS(scale.Percentile(res.BandLatencies, 50)), fmtS(scale.Percentile(res.BandLatencies, 99)), res.UnderSeconds, res.Actions))
		}
		fmt.Fprintf(w, "| %s | %s |\n", r.label, strings.Join(cells, " | "))
	}
}
