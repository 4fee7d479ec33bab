// Command shoal-scalebench compares Shoal's scale policy with the
// Kubernetes HPA's algorithm (scale/hpa.go) on load traces, per episode, and
// prints the tables that docs/benchmarks.md carries. From tools/, the runners'
// own module (../ is the repository root):
//
//	go run ./cmd/shoal-scalebench                       # both boot times, every table
//	go run ./cmd/shoal-scalebench -boot 30s             # one boot time
//	go run ./cmd/shoal-scalebench -gen-shapes ../scale/testdata/traces/shapes   # regenerate the six shapes
//	go run ./cmd/shoal-scalebench -gen ../scale/testdata/traces                 # regenerate the four older traces
//
// The traces: six shapes (diurnal, flash crowd, slow ramp, a 40 s
// oscillation, a noisy plateau inside the band, 30 s metrics dropouts),
// each from three seeds (shapes.go), and the four older traces (step, ramp,
// spike, oscillation; traces.go). Everything is simulated on a fake clock,
// one step per second (scale/sim.go), so a run gives the same figures
// every time on any machine.
package main

import (
	"errors"
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
	err := run(os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the usage is printed; asking for it is not a failure
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shoal-scalebench:", err)
		os.Exit(1)
	}
}

// Names of the older traces, in table order.
var traceNames = []string{"step", "ramp", "spike", "oscillation"}

// Simulation constants shared by every scaler.
const (
	target    = 70.0
	tolerance = 0.1
	startN    = 3
	minN      = 1
	maxN      = 20
)

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("shoal-scalebench", flag.ContinueOnError)
	dir := fs.String("traces", "../scale/testdata/traces", "directory of the older CSV traces")
	shapesDir := fs.String("shapes", "../scale/testdata/traces/shapes", "directory of the six shapes' CSV traces")
	gen := fs.String("gen", "", "write the older traces, freshly generated, into this directory and exit")
	genShapes := fs.String("gen-shapes", "", "write the six shapes' traces, freshly generated, into this directory and exit")
	seed := fs.Uint64("seed", 1, "with -gen: the seed")
	boot := fs.String("boot", "0s,30s", "instance boot times to run, comma-separated (the same for every scaler)")
	only := fs.String("shape", "", "run only this shape (and no older trace)")
	hpaLag := fs.Duration("hpa-lag", 30*time.Second, "metrics lag of the second HPA row (metrics-server's scrape and window)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *gen != "" {
		return writeTraces(*gen, generate(*seed))
	}
	if *genShapes != "" {
		var ts []scale.Trace
		for _, s := range shapeNames {
			for _, sd := range shapeSeeds {
				t, err := generateShape(s, sd)
				if err != nil {
					return err
				}
				ts = append(ts, t)
			}
		}
		return writeTraces(*genShapes, ts)
	}
	var boots []time.Duration
	for _, s := range strings.Split(*boot, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return fmt.Errorf("-boot %q: want durations such as 0s,30s", *boot)
		}
		boots = append(boots, d)
	}
	order := shapeNames
	if *only != "" {
		order = []string{*only}
	}
	shapes, err := readShapes(*shapesDir, order)
	if err != nil {
		return err
	}
	older, err := readTraces(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Target %v%% utilization, tolerance %v%%, %d instances at the start, bounds %d–%d; one step per second.\n\n",
		target, tolerance*100, startN, minN, maxN)
	for _, b := range boots {
		groups := map[string][]scale.Trace{}
		for _, t := range shapes {
			groups[shapeOf(t.Name)] = append(groups[shapeOf(t.Name)], t)
		}
		res, err := compare(specs(b, *hpaLag), order, groups)
		if err != nil {
			return err
		}
		printShapes(out, b, order, res)
		printTargets(out, b, order, res)
	}
	if *only != "" {
		return nil
	}
	groups := map[string][]scale.Trace{}
	for _, t := range older {
		groups[t.Name] = []scale.Trace{t}
	}
	for _, b := range boots {
		res, err := compare(specs(b, *hpaLag), traceNames, groups)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "### The four older traces, boot %v\n\n", b)
		printShapes(out, b, traceNames, res)
	}
	return nil
}

func writeTraces(dir string, ts []scale.Trace) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, t := range ts {
		f, err := os.Create(filepath.Join(dir, t.Name+".csv"))
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

func readTrace(path, name string) (scale.Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return scale.Trace{}, fmt.Errorf("trace %s: %w (run from the repository root, or set -traces / -shapes)", name, err)
	}
	defer f.Close()
	return scale.ReadTrace(name, f)
}

func readTraces(dir string) ([]scale.Trace, error) {
	var out []scale.Trace
	for _, n := range traceNames {
		t, err := readTrace(filepath.Join(dir, n+".csv"), n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func readShapes(dir string, shapes []string) ([]scale.Trace, error) {
	var out []scale.Trace
	for _, s := range shapes {
		for _, sd := range shapeSeeds {
			n := fmt.Sprintf("%s-%d", s, sd)
			t, err := readTrace(filepath.Join(dir, n+".csv"), n)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// shapeOf is the shape of a trace named SHAPE-SEED.
func shapeOf(name string) string {
	if i := strings.LastIndex(name, "-"); i > 0 {
		return name[:i]
	}
	return name
}

// The rows.
const (
	rowShoal   = "shoal"
	rowNoReady = "shoal-noready"
	rowAgent   = "shoal-agent"
	rowHPA     = "hpa"
	rowHPALag  = "hpa-lag"
)

type scalerSpec struct {
	key, label string
	make       func() (scale.Scaler, error)
	opts       scale.SimOptions
}

func specs(boot, hpaLag time.Duration) []scalerSpec {
	base := scale.SimOptions{Start: startN, Target: target, Tolerance: tolerance, Min: minN, Boot: boot, ReadyKnown: true}
	policy := func(label string, mod func(*scale.Config)) func() (scale.Scaler, error) {
		return func() (scale.Scaler, error) {
			cfg := scale.DefaultConfig()
			cfg.Target, cfg.Min, cfg.Max = target, minN, maxN
			if mod != nil {
				mod(&cfg)
			}
			p, err := scale.New(cfg)
			if err != nil {
				return nil, err
			}
			return &scale.PolicyScaler{Label: label, P: p, Every: time.Second}, nil
		}
	}
	noReady := base
	noReady.ReadyKnown = false
	agentView := base
	agentView.HalfLife, agentView.Delay, agentView.Unsmooth = 5*time.Second, time.Second, true
	lagged := base
	lagged.Delay = hpaLag
	return []scalerSpec{
		{rowShoal, "Shoal policy, defaults, ready count reported", policy("shoal", nil), base},
		{rowNoReady, "Shoal policy, no ready count, --scale-boot-time set to the boot time", policy("shoal-noready", func(c *scale.Config) { c.BootTime = boot }), noReady},
		{rowAgent, "Shoal through the agent's pipeline (5 s EWMA, 1 s gossip, unsmoothed by the adapter, ready count)",
			policy("shoal-agent", func(c *scale.Config) { c.MetricLag = scale.UnsmoothLag }), agentView},
		{rowHPA, "HPA (faithful: 15 s sync, unready pods, 300 s down stabilization; metrics without lag)", func() (scale.Scaler, error) { return scale.NewHPA(target, minN, maxN), nil }, base},
		{rowHPALag, fmt.Sprintf("HPA, metrics %v behind", hpaLag), func() (scale.Scaler, error) { return scale.NewHPA(target, minN, maxN), nil }, lagged},
	}
}

// agg is one scaler's results over one shape's traces.
type agg struct {
	episodes, answered, unansOver int
	reactions                     []float64
	actions, reversals            int
	under, over, overload         int
	instanceSeconds               float64
}

type results struct {
	specs []scalerSpec
	by    map[string]map[string]*agg // spec key → shape → agg
}

func compare(sp []scalerSpec, order []string, groups map[string][]scale.Trace) (results, error) {
	res := results{specs: sp, by: map[string]map[string]*agg{}}
	for _, s := range sp {
		res.by[s.key] = map[string]*agg{}
		for _, shape := range order {
			a := &agg{}
			for _, t := range groups[shape] {
				sc, err := s.make()
				if err != nil {
					return res, err
				}
				r := scale.Simulate(t, sc, s.opts)
				a.episodes += r.Episodes
				a.answered += r.Answered
				a.unansOver += r.UnansweredOver
				a.reactions = append(a.reactions, r.Reactions...)
				a.actions += r.Actions
				a.reversals += r.Reversals
				a.under += r.UnderSeconds
				a.over += r.OverSeconds
				a.overload += r.OverloadSeconds
				a.instanceSeconds += r.InstanceSeconds
			}
			res.by[s.key][shape] = a
		}
	}
	return res, nil
}

func fmtS(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func printShapes(w io.Writer, boot time.Duration, order []string, res results) {
	fmt.Fprintf(w, "#### Boot %v: per shape, summed over its traces\n\n", boot)
	fmt.Fprintln(w, "| shape | scaler | episodes: answered / unanswered (their s above the band) | reaction p50 / p99 / max s | actions (reversals) | under-provisioned s | over-provisioned s | overloaded s | instance-hours |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, shape := range order {
		for _, s := range res.specs {
			a := res.by[s.key][shape]
			fmt.Fprintf(w, "| %s | %s | %d / %d (%d) | %s / %s / %s | %d (%d) | %d | %d | %d | %.1f |\n", shape, s.label,
				a.answered, a.episodes-a.answered, a.unansOver, fmtS(scale.Percentile(a.reactions, 50)), fmtS(scale.Percentile(a.reactions, 99)),
				fmtS(scale.Percentile(a.reactions, 100)), a.actions, a.reversals, a.under, a.over, a.overload, a.instanceSeconds/3600)
		}
	}
	fmt.Fprintln(w)
}

// printTargets prints issue 16's targets per shape: reaction p99 ≤ 0.5× the
// HPA's, actions ≤ the HPA's, under-provisioned seconds ≤ 0.8× the HPA's,
// through the agent's pipeline p99 ≤ 10 s.
func printTargets(w io.Writer, boot time.Duration, order []string, res results) {
	fmt.Fprintf(w, "#### Boot %v: issue 16's targets against the faithful HPA (metrics without lag)\n\n", boot)
	fmt.Fprintln(w, "| shape | reaction p99: Shoal / HPA (≤ 0.5×) | actions: Shoal / HPA (≤) | under-provisioned s: Shoal / HPA (≤ 0.8×) | agent's pipeline p99 (≤ 10 s) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, shape := range order {
		s, h, ag := res.by[rowShoal][shape], res.by[rowHPA][shape], res.by[rowAgent][shape]
		sp, hp, ap := scale.Percentile(s.reactions, 99), scale.Percentile(h.reactions, 99), scale.Percentile(ag.reactions, 99)
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "**missed**"
		}
		react := "no episodes"
		if !math.IsNaN(sp) || !math.IsNaN(hp) {
			react = fmt.Sprintf("%s / %s: %s", fmtS(sp), fmtS(hp), verdict(nanZero(sp) <= 0.5*nanZero(hp)))
		}
		agent := "no episodes"
		if !math.IsNaN(ap) {
			agent = fmt.Sprintf("%s s: %s", fmtS(ap), verdict(ap <= 10))
		}
		fmt.Fprintf(w, "| %s | %s | %d / %d: %s | %d / %d: %s | %s |\n", shape, react,
			s.actions, h.actions, verdict(s.actions <= h.actions),
			s.under, h.under, verdict(float64(s.under) <= 0.8*float64(h.under)), agent)
	}
	fmt.Fprintln(w)
}

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
