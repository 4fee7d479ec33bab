package scale

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// series evaluates p once a second over values (the metric per serving
// instance), with the ready count ready(i, cur) (nil: all serving; a
// negative answer: not reported), recording actions as the agent does. It
// returns the decisions that acted and the count after each second.
func series(p *Policy, start time.Time, cur int, values []float64, ready func(i, cur int) int) (acted []Decision, counts []int) {
	for i, v := range values {
		now := start.Add(time.Duration(i+1) * time.Second)
		in := Input{Current: cur, Value: v, Valid: true}
		if ready != nil {
			if r := ready(i, cur); r >= 0 {
				in.Ready, in.ReadyKnown = r, true
			}
		}
		d := p.Evaluate(now, in)
		if d.Action != ActionNone {
			p.Record(Action{Time: now, From: cur, To: d.Desired})
			cur = d.Desired
			acted = append(acted, d)
		}
		counts = append(counts, cur)
	}
	return acted, counts
}

func constant(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// noisy returns n seconds of level × (1 + sd·N(0,1)), seeded.
func noisy(seed uint64, level, sd float64, n int) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]float64, n)
	for i := range out {
		out[i] = max(0, level*(1+sd*r.NormFloat64()))
	}
	return out
}

// A jump is answered within half the up window (the median moves once more
// than half the window is above the band); a blip shorter than that is not.
func TestScaleUpOnAJumpNotOnABlip(t *testing.T) {
	p := newPolicy(t, nil) // 5 s up window
	vals := append(constant(60, 30), constant(95, 10)...)
	acted, _ := series(p, t0, 3, vals, nil)
	if len(acted) != 1 {
		t.Fatalf("want one scale-up, got %d: %+v", len(acted), acted)
	}
	// The first high sample is second 31; the median of 5 s is high once 3
	// of its samples are: second 33.
	if at := acted[0].Time.Sub(t0); at != 33*time.Second {
		t.Fatalf("scaled up %v in, want 33s (3 s after the jump)", at)
	}
	if acted[0].Desired != 5 { // ceil(3 × 95/70)
		t.Fatalf("scaled to %d, want 5: %s", acted[0].Desired, acted[0].Reason())
	}
	// A 2 s blip to 95% inside 60%: nothing.
	p2 := newPolicy(t, nil)
	vals = append(append(constant(60, 30), constant(95, 2)...), constant(60, 60)...)
	if acted, _ := series(p2, t0, 3, vals, nil); len(acted) != 0 {
		t.Fatalf("a 2 s blip scaled: %s", acted[0].Reason())
	}
}

// Noise on a plateau inside the band produces no action; the same noise
// with the level above the band is answered.
func TestPlateauNoiseProducesNoAction(t *testing.T) {
	seeds := uint64(5)
	if raceEnabled {
		seeds = 2
	}
	for seed := range seeds {
		p := newPolicy(t, func(c *Config) { c.Max = 20 })
		acted, _ := series(p, t0, 3, noisy(seed, 73, 0.05, 3600), nil)
		if len(acted) != 0 {
			t.Fatalf("seed %d: plateau at 73%% (band top 77%%) with 5%% noise acted: %s", seed, acted[0].Reason())
		}
	}
	p := newPolicy(t, func(c *Config) { c.Max = 20 })
	acted, _ := series(p, t0, 3, noisy(1, 82, 0.05, 600), nil)
	if len(acted) == 0 || acted[0].Action != ActionUp {
		t.Fatalf("82%% with 5%% noise: no scale-up in 10 min")
	}
}

// With a ready count, the policy does not scale again for load that
// instances still booting will absorb: one action during a 30 s boot,
// where a policy that counts booting instances as serving scales twice.
func TestNoDoubleScaleDuringBoot(t *testing.T) {
	const boot = 30
	// 3 instances, demand jumps to 400 (4 instances at 100%, i.e. 5.7 at
	// 70%). Utilization is demand over the serving instances, capped.
	run := func(p *Policy, reportReady bool) ([]Decision, []int) {
		var acted []Decision
		cur, up := 3, []struct{ at, to int }{}
		var counts []int
		for i := range 180 {
			now := t0.Add(time.Duration(i+1) * time.Second)
			ready := 3
			for _, u := range up {
				if i >= u.at+boot {
					ready = u.to
				}
			}
			ready = min(ready, cur)
			dem := 150.0
			if i >= 20 {
				dem = 400
			}
			in := Input{Current: cur, Value: min(dem/float64(ready), 100), Valid: true}
			if reportReady {
				in.Ready, in.ReadyKnown = ready, true
			}
			d := p.Evaluate(now, in)
			if d.Action != ActionNone {
				p.Record(Action{Time: now, From: cur, To: d.Desired})
				if d.Desired > cur {
					up = append(up, struct{ at, to int }{i, d.Desired})
				}
				cur = d.Desired
				acted = append(acted, d)
			}
			counts = append(counts, cur)
		}
		return acted, counts
	}
	// The ready count reported.
	acted, counts := run(newPolicy(t, func(c *Config) { c.Max = 20 }), true)
	ups := 0
	for _, d := range acted {
		if d.Action == ActionUp {
			ups++
		}
	}
	// The first step is bounded by the step limit (3 → 6 at most: 100%);
	// 6 instances carry 400 at 67%: one action is enough.
	if ups != 1 || counts[len(counts)-1] != 6 {
		t.Fatalf("with a ready count: %d scale-ups, ending at %d; want one, to 6: %v", ups, counts[len(counts)-1], reasons(acted))
	}
	for _, d := range acted {
		if d.Action == ActionDown {
			t.Fatalf("reversed: %s", d.Reason())
		}
	}
	// The booting instances were seen as such.
	if p := newPolicy(t, nil); p.BootEstimate() != 0 {
		t.Fatalf("boot estimate before any observation: %v", p.BootEstimate())
	}
	// No ready count, but the boot time configured: the same.
	acted, counts = run(newPolicy(t, func(c *Config) { c.Max, c.BootTime = 20, boot*time.Second }), false)
	if len(acted) != 1 || counts[len(counts)-1] != 6 {
		t.Fatalf("with --scale-boot-time: %d actions, ending at %d: %v", len(acted), counts[len(counts)-1], reasons(acted))
	}
	// Neither: the booting instances count as serving while the serving
	// ones stay at 100%, and the policy scales again after the cooldown:
	// what the two above avoid.
	acted, _ = run(newPolicy(t, func(c *Config) { c.Max = 20 }), false)
	if len(acted) < 2 {
		t.Fatalf("without readiness the policy should scale twice during the boot (that is the failure the ready count prevents); got %v", reasons(acted))
	}
}

// Boot times are learnt from the ready count.
func TestBootTimeObserved(t *testing.T) {
	p := newPolicy(t, nil)
	p.Record(Action{Time: t0, From: 3, To: 5})
	for i := 1; i <= 40; i++ {
		r := 3
		if i >= 25 {
			r = 5
		}
		p.Evaluate(t0.Add(time.Duration(i)*time.Second), Input{Current: 5, Value: 50, Valid: true, Ready: r, ReadyKnown: true})
	}
	if got := p.BootEstimate(); got != 25*time.Second {
		t.Fatalf("boot estimate %v, want 25s", got)
	}
}

// On a ramp, the trend scales up before the utilization reaches the band's
// top; on steps and an oscillation of the same amplitude it does not act
// on a trend.
func TestTrendFiresBeforeTheBandOnARamp(t *testing.T) {
	// 3 instances; demand from 150 (50%) rising 0.25/s with 2% noise: it
	// reaches the band's top (231, 77%) after 324 s.
	r := rand.New(rand.NewPCG(3, 3))
	var vals, truth []float64
	for i := range 600 {
		dem := 150 + 0.25*float64(i)
		truth = append(truth, dem/3)
		vals = append(vals, dem/3*(1+0.02*r.NormFloat64()))
	}
	p := newPolicy(t, func(c *Config) { c.Max = 20 })
	acted, _ := series(p, t0, 3, vals, nil)
	if len(acted) == 0 {
		t.Fatal("no scale-up on the ramp")
	}
	first := acted[0]
	i := int(first.Time.Sub(t0)/time.Second) - 1
	if !strings.Contains(first.Reason(), "trend:") || truth[i] >= 77 {
		t.Fatalf("first scale-up at %d s with the utilization at %.1f%%: want a trend call before 77%%: %s", i, truth[i], first.Reason())
	}
	// Steps from 50% to 75% and back every 40 s (inside the band), and a
	// one-off step: no action, and no trend in any reason that acted.
	for name, vals := range map[string][]float64{
		"oscillation": func() []float64 {
			var v []float64
			for k := range 1800 {
				lvl := 50.0
				if (k/20)%2 == 1 {
					lvl = 75
				}
				v = append(v, lvl*(1+0.02*r.NormFloat64()))
			}
			return v
		}(),
		"step": append(noisy(4, 55, 0.02, 300), noisy(5, 75, 0.02, 600)...),
	} {
		p := newPolicy(t, func(c *Config) { c.Max = 20 })
		if acted, _ := series(p, t0, 3, vals, nil); len(acted) != 0 {
			t.Errorf("%s inside the band acted: %v", name, reasons(acted))
		}
	}
}

// While the demand rises, the policy does not scale down into it.
func TestNoScaleDownIntoARisingTrend(t *testing.T) {
	// 10 instances at 50%, the demand rising 0.5/s (from 350 to 650 over
	// 600 s): below the band's bottom for the first 400 s, yet rising.
	var vals []float64
	for i := range 600 {
		vals = append(vals, (350+0.5*float64(i))/10)
	}
	p := newPolicy(t, func(c *Config) { c.Max = 20 })
	acted, _ := series(p, t0, 10, vals, nil)
	for _, d := range acted {
		if d.Action == ActionDown {
			t.Fatalf("scaled down into a rising load: %s", d.Reason())
		}
	}
}

// After the ready count rises, a metric that lags (MetricLag) still
// describes the instances that served before: no second scale-up on the
// stale figures.
func TestMetricLagAfterReadiness(t *testing.T) {
	p := newPolicy(t, func(c *Config) { c.Max, c.MetricLag = 20, 5*time.Second })
	cur := 5
	// Serving went 3 → 5 at second 1; the metric shows 90% for 5 more
	// seconds (the old 3 instances' load), then 54%.
	for i := 1; i <= 60; i++ {
		v := 54.0
		if i <= 5 {
			v = 90
		}
		ready := 5
		if i < 1 {
			ready = 3
		}
		if i == 1 {
			p.Evaluate(t0, Input{Current: 5, Value: 90, Valid: true, Ready: 3, ReadyKnown: true})
		}
		d := p.Evaluate(t0.Add(time.Duration(i)*time.Second), Input{Current: cur, Value: v, Valid: true, Ready: ready, ReadyKnown: true})
		if d.Action == ActionUp {
			t.Fatalf("second %d: scaled up on the lagging figure: %s", i, d.Reason())
		}
	}
}

// A cpu figure at its ceiling is a lower bound: the policy asks for twice
// the serving instances, within the step limits.
func TestSaturatedFigureDoublesTheStep(t *testing.T) {
	p := newPolicy(t, func(c *Config) { c.Max = 50 })
	acted, _ := series(p, t0, 4, append(constant(60, 20), constant(100, 10)...), nil)
	if len(acted) != 1 || acted[0].Desired != 8 || !strings.Contains(acted[0].Reason(), "ceiling") {
		t.Fatalf("want one step to 8 (twice 4), got %v", reasons(acted))
	}
	// A named metric has no ceiling.
	p = newPolicy(t, func(c *Config) { c.Max, c.Metric = 50, "tag:rps" })
	acted, _ = series(p, t0, 4, append(constant(60, 20), constant(100, 10)...), nil)
	if len(acted) != 1 || acted[0].Desired != 6 {
		t.Fatalf("tag:rps at 100 vs 70: want ceil(4 × 100/70) = 6, got %v", reasons(acted))
	}
}

// No ready instance: the figures describe none; nothing is decided.
func TestNoReadyInstanceHolds(t *testing.T) {
	d := newPolicy(t, nil).Evaluate(t0, Input{Current: 3, Value: 100, Valid: true, Ready: 0, ReadyKnown: true})
	if d.Action != ActionNone || !strings.Contains(d.Reason(), "serves yet") {
		t.Fatalf("%+v", d)
	}
}

func reasons(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Time.Sub(t0).String()+": "+d.Reason())
	}
	return out
}

func TestRobustHelpers(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := 1 + r.IntN(40)
		s := make([]float64, n)
		for i := range s {
			s[i] = float64(r.IntN(10))
		}
		c := slices.Clone(s)
		slices.Sort(c)
		want := c[n/2]
		if n%2 == 0 {
			want = (c[n/2-1] + c[n/2]) / 2
		}
		if got := median(s); got != want {
			t.Fatalf("median %v = %v, want %v", s, got, want)
		}
	}
	// Theil–Sen ignores an outlier that least squares would not.
	xs := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	ys := []float64{1, 3, 5, 7, 9, 11, 13, 15, 17, 1000}
	if a, b := theilSen(xs, ys); b != 2 || a != 1 {
		t.Fatalf("theilSen = %v + %v·x, want 1 + 2·x", a, b)
	}
}

// The Unsmoother undoes an EWMA: a step through a 5 s half-life EWMA is
// back within a few percent two seconds after it, when the EWMA itself is
// not half way.
func TestUnsmootherUndoesAnEWMA(t *testing.T) {
	u := Unsmoother{HalfLife: 5 * time.Second}
	alpha := 1 - 1/1.148698354997035 // 1 − 2^(−1/5)
	y := 50.0
	var got, smooth []float64
	for i := range 40 {
		x := 50.0
		if i >= 10 {
			x = 90
		}
		y += alpha * (x - y)
		got = append(got, u.Update(t0.Add(time.Duration(i)*time.Second), y))
		smooth = append(smooth, y)
	}
	if smooth[12] > 70 {
		t.Fatalf("test broken: the EWMA is at %.1f two seconds after the step", smooth[12])
	}
	for i := 12; i < 40; i++ {
		if got[i] < 86 || got[i] > 94 {
			t.Fatalf("second %d: unsmoothed %.1f, want 90 ± 4 (EWMA %.1f)", i, got[i], smooth[i])
		}
	}
	var z Unsmoother
	if z.Update(t0, 42) != 42 {
		t.Fatal("zero Unsmoother must pass its input through")
	}
}
