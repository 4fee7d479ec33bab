package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/election"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
	"github.com/shoalmesh/shoal/scale"
)

// The scale runner through the agent's real load pipeline, on simulated
// time: each serving instance is a member whose CPU figure goes through
// its own metrics.EWMA (the monitor's, --half-life 5 s) and mesh.Moved
// (a member republishes only when its load moved past a bucket), and
// reaches the runner a second later (gossip); the runner (scaleRunner.step,
// with its Unsmoother) decides, and a provider that reports the count and
// the ready count (scale.ReadyReader) applies it. scale.Simulate drives it
// as a Scaler and measures the episodes.

// pipelineProvider stands for a resource whose counts the simulation
// sets each step.
type pipelineProvider struct {
	mu           sync.Mutex
	count, ready int
	desired      int
}

func (p *pipelineProvider) Name() string        { return "pipeline" }
func (p *pipelineProvider) Authoritative() bool { return true }
func (p *pipelineProvider) Current(ctx context.Context) (int, error) {
	c, err := p.Counts(ctx)
	return c.Current, err
}
func (p *pipelineProvider) Counts(context.Context) (scale.Counts, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return scale.Counts{Current: p.count, Ready: p.ready, ReadyKnown: true}, nil
}
func (p *pipelineProvider) Scale(_ context.Context, desired int, _ election.Lease, _ scale.Decision) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.desired = desired
	return nil
}

// pipelineScaler is the runner as a scale.Scaler.
type pipelineScaler struct {
	t     *testing.T
	rig   *runnerRig
	prov  *pipelineProvider
	ewmas []*metrics.EWMA // per instance, oldest first
	pub   []metrics.Load  // what each instance last published
	seen  [][]metrics.Load
	noise *rand.Rand
	start time.Time
}

func newPipelineScaler(t *testing.T, halfLife time.Duration) *pipelineScaler {
	prov := &pipelineProvider{}
	g := &runnerRig{t: t, clock: metrics.NewFakeClock(rigStart), leaving: func() bool { return false }}
	cfg := DefaultScaleConfig()
	cfg.Provider, cfg.Interval, cfg.Min, cfg.Max = "pipeline", Duration(time.Second), 1, 20
	h, err := scale.OpenHistory("", 100)
	if err != nil {
		t.Fatal(err)
	}
	deps := scaleDeps{
		node:            "self",
		members:         func() []mesh.Member { return g.members },
		announce:        func(mesh.ScaleTag) error { return nil },
		lease:           func() (election.Lease, bool) { return election.Lease{Holder: "self", Term: 1}, true },
		coordinator:     func() (string, uint64) { return "self", 1 },
		requestElection: func() {},
		leaving:         func() bool { return false },
		halfLife:        halfLife,
		sampleEvery:     time.Second,
	}
	r, err := newScaleRunner(cfg, deps, prov, h, g.clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	g.r = r
	return &pipelineScaler{t: t, rig: g, prov: prov, noise: rand.New(rand.NewPCG(16, 16))}
}

func (s *pipelineScaler) Name() string          { return "shoal through the agent's pipeline" }
func (s *pipelineScaler) Period() time.Duration { return time.Second }

func (s *pipelineScaler) Step(now time.Time, o scale.Observation) int {
	if s.start.IsZero() {
		s.start = now
	}
	// Serving instances are members; each smooths its own CPU (the
	// service's utilization, with 2% of its own noise) and publishes it
	// when it moved past a bucket.
	ready := o.Ready
	for len(s.ewmas) < ready {
		s.ewmas = append(s.ewmas, &metrics.EWMA{HalfLife: s.rig.r.deps.halfLife})
		s.pub = append(s.pub, metrics.Load{})
	}
	s.ewmas, s.pub = s.ewmas[:ready], s.pub[:ready]
	var latest []metrics.Load
	for i, e := range s.ewmas {
		cpu := min(max(o.Util*(1+0.02*s.noise.NormFloat64()), 0), 100)
		l := e.Update(metrics.Load{CPUPercent: cpu, MemPercent: 30, Cores: 1}, time.Second)
		if s.pub[i] == (metrics.Load{}) || mesh.Moved(s.pub[i], l) {
			s.pub[i] = l
		}
		latest = append(latest, s.pub[i])
	}
	// Gossip: the runner sees what was published a second ago.
	s.seen = append(s.seen, latest)
	view := s.seen[0]
	if len(s.seen) > 1 {
		view, s.seen = s.seen[len(s.seen)-2], s.seen[len(s.seen)-1:]
	}
	var ms []mesh.Member
	for i, l := range view {
		m := member(fmt.Sprintf("i%d", i), l.CPUPercent)
		if !o.Valid {
			m.Load = nil // a metrics dropout: no figures
		}
		ms = append(ms, m)
	}
	s.rig.members = ms
	s.prov.mu.Lock()
	s.prov.count, s.prov.ready, s.prov.desired = o.Current, o.Ready, o.Current
	s.prov.mu.Unlock()
	s.rig.clock.Advance(time.Second)
	s.rig.r.step(context.Background())
	s.prov.mu.Lock()
	defer s.prov.mu.Unlock()
	return s.prov.desired
}

func readShape(t *testing.T, name string) scale.Trace {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "scale", "testdata", "traces", "shapes", name+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := scale.ReadTrace(name, f)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestScalePipelineReacts runs the runner through the real pipeline on a
// flash crowd and a slow ramp at a 30 s boot, and checks that every
// episode is answered, that the runner does not take a scale-up back
// within the stabilization window, and that
// undoing the monitors' smoothing makes it answer no later than without.
// SHOAL_SCALE_FIGURES=1 runs every shape and seed at boot 0 and 30 s and
// prints the per-shape figures (docs/benchmarks.md).
func TestScalePipelineReacts(t *testing.T) {
	opts := func(boot time.Duration) scale.SimOptions {
		return scale.SimOptions{Start: 3, Target: 70, Tolerance: 0.1, Min: 1, Boot: boot, ReadyKnown: true}
	}
	if os.Getenv("SHOAL_SCALE_FIGURES") != "" {
		pipelineFigures(t, opts)
		return
	}
	cut := func(tr scale.Trace, n int) scale.Trace {
		tr.Demand = tr.Demand[:n]
		return tr
	}
	for _, tr := range []scale.Trace{cut(readShape(t, "flash-1"), 1500), cut(readShape(t, "ramp-slow-1"), 1500)} {
		with := scale.Simulate(tr, newPipelineScaler(t, 5*time.Second), opts(30*time.Second))
		// The same pipeline, the runner not told of the smoothing.
		without := scale.Simulate(tr, &smoothBlind{newPipelineScaler(t, 5*time.Second)}, opts(30*time.Second))
		if with.Episodes == 0 || (with.Answered < with.Episodes && with.UnansweredOver > 10) {
			t.Errorf("%s: %d episodes, %d answered (%d s above the band unanswered): %+v", tr.Name, with.Episodes, with.Answered, with.UnansweredOver, with.Log)
		}
		// No scale-down within the stabilization window after a
		// scale-up: nothing taken back that booting instances absorbed.
		for i := 1; i < len(with.Calls); i++ {
			a, b := with.Calls[i-1], with.Calls[i]
			if a.To > a.From && b.To < b.From && b.Second-a.Second < 300 {
				t.Errorf("%s: %+v reversed %+v after %d s", tr.Name, b, a, b.Second-a.Second)
			}
		}
		if w, wo := scale.Percentile(with.Reactions, 50), scale.Percentile(without.Reactions, 50); w > wo {
			t.Errorf("%s: median reaction %v s unsmoothed, %v s without: undoing the EWMA should not be slower", tr.Name, w, wo)
		}
	}
}

// smoothBlind is the pipeline with the runner's Unsmoother off (what the
// runner did before), for comparison.
type smoothBlind struct{ *pipelineScaler }

func (s *smoothBlind) Step(now time.Time, o scale.Observation) int {
	s.rig.r.unsmooth = nil
	return s.pipelineScaler.Step(now, o)
}

func pipelineFigures(t *testing.T, opts func(time.Duration) scale.SimOptions) {
	var b strings.Builder
	fmt.Fprintln(&b, "| shape | boot | episodes: answered / unanswered (s above the band) | reaction p50 / p99 / max s | actions (reversals) | under-provisioned s |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|")
	for _, boot := range []time.Duration{0, 30 * time.Second} {
		for _, shape := range []string{"diurnal", "flash", "ramp-slow", "osc40", "plateau", "dropout"} {
			var re []float64
			var ep, ans, uo, act, rev, under int
			for seed := 1; seed <= 3; seed++ {
				r := scale.Simulate(readShape(t, fmt.Sprintf("%s-%d", shape, seed)), newPipelineScaler(t, 5*time.Second), opts(boot))
				re = append(re, r.Reactions...)
				ep, ans, uo, act, rev, under = ep+r.Episodes, ans+r.Answered, uo+r.UnansweredOver, act+r.Actions, rev+r.Reversals, under+r.UnderSeconds
			}
			pct := func(p float64) string {
				if v := scale.Percentile(re, p); v == v {
					return fmt.Sprintf("%.0f", v)
				}
				return "–"
			}
			fmt.Fprintf(&b, "| %s | %v | %d / %d (%d) | %s / %s / %s | %d (%d) | %d |\n", shape, boot, ans, ep-ans, uo,
				pct(50), pct(99), pct(100), act, rev, under)
		}
	}
	t.Log("\n" + b.String())
}
