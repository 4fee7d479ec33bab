package scale

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// ModeTarget: the HPA's proportional rule on the demand (the load per
// serving instance × the serving instances), with readiness, a robust
// scale-up test and a trend.
//
//   - Readiness. The demand is Value × Ready, and the count it is compared
//     with is Current, booting instances included: the policy does not
//     scale again for load that instances still booting will absorb. Ready
//     comes from the input (a provider that reports it) or, without it,
//     from the boot time: instances added less than BootEstimate ago are
//     taken as booting. Boot times are observed from the ready counts.
//   - Scale-up test. The median demand over the last UpWindow (then 2×,
//     4×, … up to TrendWindow) must exceed the band's top, Current ×
//     Target × (1+Tolerance), by 2.5 standard errors of that median, the
//     noise being measured over the last TrendWindow: a large jump is
//     answered within half the up window, a small excess once a longer
//     window tells it from noise, and a noisy plateau inside the band not
//     at all.
//   - Trend. A Theil–Sen line over the last TrendWindow, projected over the
//     boot time plus Lookahead plus MetricLag; the policy scales up for the
//     projected demand when it crosses the band and the fit is significant
//     and consistent (see Config.TrendWindow), unless instances asked for
//     earlier still boot.
//   - Saturation. A cpu or mem figure pinned at 100% says only that the
//     demand is at least that: when the scale-up test passes and the
//     median over the up window is pinned (≥ 99.5%), the policy asks for
//     twice the serving instances (the step limits, the HPA's by default,
//     bound it).
//   - Scale-down is the HPA's stabilization: the highest recommendation
//     over DownWindow; while the trend rises, the recommendation is the
//     count, so the policy does not scale down into a rising load.

type sample struct {
	t time.Time
	d float64
}

type readyAt struct {
	t time.Time
	n int
}

type pendingUp struct {
	t  time.Time
	to int
}

const (
	zLevel      = 2.5    // standard errors the median must clear the band by
	zTrend      = 4.0    // standard errors the slope must clear zero by
	zConsistent = 2.5    // how far the two halves' slopes may differ
	seMedian    = 1.2533 // standard error of a median, per σ/√n
	seQuartile  = 1.3626 // standard error of a quartile, per σ/√n
	seTheilSen  = 1.1    // Theil–Sen's slope, relative to least squares
	maxBoots    = 5      // observed boot times kept
	maxFit      = 64     // points a trend is fitted on (thinned beyond)
)

// BootEstimate returns the boot time the policy assumes: the median of the
// boot times it observed (Input.Ready reaching an action's count), else
// Config.BootTime.
func (p *Policy) BootEstimate() time.Duration {
	if len(p.boots) == 0 {
		return p.cfg.BootTime
	}
	s := slices.Clone(p.boots)
	slices.Sort(s)
	return s[len(s)/2]
}

// noteAction follows a recorded action's instances until they are ready.
func (p *Policy) noteAction(a Action) {
	if a.To > a.From {
		p.pending = append(p.pending, pendingUp{a.Time, a.To})
		return
	}
	// A scale-down: counts asked for earlier above the new one will not
	// be reached by those instances.
	kept := p.pending[:0]
	for _, u := range p.pending {
		if u.to <= a.To {
			kept = append(kept, u)
		}
	}
	p.pending = kept
}

// observeReady takes boot times from a reported ready count.
func (p *Policy) observeReady(now time.Time, ready int) {
	kept := p.pending[:0]
	for _, u := range p.pending {
		switch {
		case ready >= u.to:
			if b := now.Sub(u.t); b >= 0 {
				p.boots = append(p.boots, b)
				if len(p.boots) > maxBoots {
					p.boots = p.boots[1:]
				}
			}
		case now.Sub(u.t) > time.Hour:
			// Never became ready: no boot time to learn.
		default:
			kept = append(kept, u)
		}
	}
	p.pending = kept
}

// readiness returns the serving instances: reported, or estimated from the
// actions within the boot time.
func (p *Policy) readiness(now time.Time, in Input) (int, string) {
	if in.ReadyKnown {
		return in.Ready, fmt.Sprintf("%d of %d ready (reported)", in.Ready, in.Current)
	}
	boot := p.BootEstimate()
	if boot <= 0 {
		return in.Current, ""
	}
	booting := 0
	for _, a := range p.actions {
		if a.To > a.From && now.Sub(a.Time) < boot {
			booting += a.To - a.From
		}
	}
	if booting == 0 {
		return in.Current, ""
	}
	ready := max(in.Current-booting, 0)
	return ready, fmt.Sprintf("%d of %d taken as ready (%d added less than the %v boot time ago)", ready, in.Current, booting, boot)
}

// settled returns the ready count the metric describes: the lowest within
// MetricLag, since after a rise the metric still describes the instances
// that served before.
func (p *Policy) settled(now time.Time, ready int) int {
	lag := p.cfg.MetricLag
	if lag <= 0 {
		return ready
	}
	p.readies = append(p.readies, readyAt{now, ready})
	cut := 0
	for cut < len(p.readies)-1 && now.Sub(p.readies[cut].t) > lag {
		cut++
	}
	p.readies = append(p.readies[:0], p.readies[cut:]...)
	low := ready
	for _, r := range p.readies {
		low = min(low, r.n)
	}
	return low
}

// pruneSeries keeps the samples the windows reach, plus the newest one at
// or before the longest window's start (so that coverage can be told).
func (p *Policy) pruneSeries(now time.Time) {
	keep := max(p.cfg.TrendWindow, p.cfg.UpWindow, p.noiseWindow())
	cut := 0
	for i := 0; i+1 < len(p.series) && !p.series[i+1].t.After(now.Add(-keep)); i++ {
		cut = i + 1
	}
	if cut > 0 {
		p.series = append(p.series[:0], p.series[cut:]...)
	}
}

// window returns the demand samples within (now−w, now] (the latest alone
// for w 0), the count of distinct consecutive values among them (repeats of
// an unchanged figure are not new evidence), and whether the series reaches
// back to the window's start.
func (p *Policy) window(now time.Time, w time.Duration) (vals []float64, distinct int, covered bool) {
	n := len(p.series)
	if n == 0 {
		return nil, 0, false
	}
	if w <= 0 {
		return []float64{p.series[n-1].d}, 1, true
	}
	start := now.Add(-w)
	covered = !p.series[0].t.After(start)
	for i, s := range p.series {
		if !s.t.After(start) {
			continue
		}
		vals = append(vals, s.d)
		if len(vals) == 1 || s.d != p.series[i-1].d {
			distinct++
		}
	}
	return vals, max(distinct, 1), covered
}

// trendFit is the Theil–Sen line over the trend window.
type trendFit struct {
	ok       bool    // enough points over enough of the window
	level    float64 // the fitted demand now
	slope    float64 // per second
	residual float64 // robust σ of the residuals
	n        int
	xs, ys   []float64 // the points (seconds before now), for the halves
}

func (p *Policy) fitTrend(now time.Time) trendFit {
	tw := p.cfg.TrendWindow
	if tw <= 0 || len(p.series) == 0 {
		return trendFit{}
	}
	var xs, ys []float64
	start := now.Add(-tw)
	for i, s := range p.series {
		if !s.t.After(start) || (i > 0 && len(ys) > 0 && s.d == p.series[i-1].d) {
			continue
		}
		xs = append(xs, s.t.Sub(now).Seconds())
		ys = append(ys, s.d)
	}
	if len(xs) < 8 || -xs[0] < tw.Seconds()/2 {
		return trendFit{}
	}
	if len(xs) > maxFit {
		// Thin evenly, keeping the newest point.
		tx, ty := make([]float64, 0, maxFit), make([]float64, 0, maxFit)
		for k := range maxFit {
			i := len(xs) - 1 - (maxFit-1-k)*(len(xs)-1)/(maxFit-1)
			tx, ty = append(tx, xs[i]), append(ty, ys[i])
		}
		xs, ys = tx, ty
	}
	a, b := theilSen(xs, ys)
	r := make([]float64, len(xs))
	for i := range xs {
		r[i] = ys[i] - a - b*xs[i]
	}
	return trendFit{ok: true, level: a, slope: b, residual: mad(r, median(r)), n: len(xs), xs: xs, ys: ys}
}

// slopeSE is the standard error of a slope fitted on xs under noise σ.
func slopeSE(xs []float64, sigma float64) float64 {
	m := 0.0
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	sxx := 0.0
	for _, x := range xs {
		sxx += (x - m) * (x - m)
	}
	if sxx <= 0 {
		return math.Inf(1)
	}
	return seTheilSen * sigma / math.Sqrt(sxx)
}

// rising reports whether the fit is a significant, consistent rise: the
// slope clears zero by zTrend standard errors of noise sigma, and each half
// of the window rises at the whole window's rate, within what the
// short-term noise (shortSigma) allows. A ramp passes; a step, which a
// Theil–Sen line over the whole window takes for a steep slope while each
// half is nearly flat, fails, and so does an oscillation.
func (f trendFit) rising(sigma, shortSigma float64) (bool, string) {
	if !f.ok || f.slope <= 0 {
		return false, ""
	}
	se := slopeSE(f.xs, sigma)
	if f.slope < zTrend*se {
		return false, fmt.Sprintf("trend %+.2f/s not significant (standard error %.2f)", f.slope, se)
	}
	h := len(f.xs) / 2
	_, b1 := theilSen(f.xs[:h], f.ys[:h])
	_, b2 := theilSen(f.xs[h:], f.ys[h:])
	se1, se2 := slopeSE(f.xs[:h], shortSigma), slopeSE(f.xs[h:], shortSigma)
	if math.Abs(b1-f.slope) > zConsistent*se1 || math.Abs(b2-f.slope) > zConsistent*se2 {
		return false, fmt.Sprintf("trend %+.2f/s not a steady rise over the window (halves %+.2f/s, %+.2f/s)", f.slope, b1, b2)
	}
	return true, ""
}

// noise returns the σ the tests use: the larger of the short-term noise
// (from differences, see noiseSigma, the larger over the trend window and
// over noiseSpan of them) and the trend's residuals (which also hold
// slower wander), and the short-term noise alone; both at least 0.1% of the
// capacity.
func (p *Policy) noise(now time.Time, f trendFit, capacity float64) (all, short float64) {
	floor := 1e-3 * capacity
	short = floor
	// Over the trend window and over noiseSpan of them: a quiet stretch
	// of one window is no reason to trust a slope more.
	for _, w := range []time.Duration{p.noiseWindow() / noiseSpan, p.noiseWindow()} {
		vals, _, _ := p.window(now, w)
		var ys []float64
		for i, v := range vals {
			if i == 0 || v != vals[i-1] {
				ys = append(ys, v)
			}
		}
		short = max(short, noiseSigma(ys))
	}
	all = short
	if f.ok {
		all = max(all, f.residual)
	}
	return all, short
}

// noiseSpan is how many trend windows the noise is measured over.
const noiseSpan = 5

func (p *Policy) noiseWindow() time.Duration {
	w := p.cfg.TrendWindow
	if w <= 0 {
		w = 8 * p.cfg.UpWindow
	}
	return noiseSpan * w
}

// levelTest looks for the shortest window, from UpWindow doubling up to
// TrendWindow, whose demand clears band by zLevel standard errors: the
// median over windows shorter than 4× UpWindow (a jump; a blip shorter
// than half the window does not move it), the upper quartile over longer
// ones (demand above the band a quarter of the time, as the peaks of an
// oscillation are, is under-provisioning too). It returns the demand to
// size the scale-up for (the window's upper quartile, at least the
// statistic), the window and which statistic passed.
func (p *Policy) levelTest(now time.Time, band, sigma float64) (m float64, w time.Duration, stat string, ok bool) {
	w = p.cfg.UpWindow
	limit := max(p.cfg.TrendWindow, w)
	for {
		vals, n, covered := p.window(now, w)
		if !covered || len(vals) == 0 {
			return 0, 0, "", false
		}
		stat, q, se := "median", 0.5, seMedian
		if w >= 4*p.cfg.UpWindow && w > 0 {
			stat, q, se = "upper quartile", 0.75, seQuartile
		}
		m = Percentile(vals, q*100)
		if m-zLevel*se*sigma/math.Sqrt(float64(n)) > band {
			// Sized on the upper quartile: after a jump, the window
			// still holds some of the level before it.
			return max(m, Percentile(vals, 75)), w, stat, true
		}
		if w <= 0 || 2*w > limit {
			return 0, 0, "", false
		}
		w *= 2
	}
}

// evaluateTarget is Evaluate in ModeTarget, for valid figures.
func (p *Policy) evaluateTarget(now time.Time, in Input, d Decision) Decision {
	c := &p.cfg
	cur := in.Current
	if in.ReadyKnown {
		p.observeReady(now, in.Ready)
	}
	ready, how := p.readiness(now, in)
	d.Ready = ready
	if how != "" {
		d.Reasons = append(d.Reasons, how)
	}
	if cur <= 0 {
		d.Recommendation = 0
		d.Reasons = append(d.Reasons, "no instances: the bounds decide")
		return p.bound(now, d)
	}
	if ready <= 0 {
		d.Recommendation = cur
		d.Reasons = append(d.Reasons, fmt.Sprintf("none of the %d instances serves yet: the load figures describe none; holding", cur))
		return p.bound(now, d)
	}
	eff := p.settled(now, ready)
	if eff < ready {
		d.Reasons = append(d.Reasons, fmt.Sprintf("the metric lags by %v: still taken over %d instances", c.MetricLag, eff))
	}
	p.series = append(p.series, sample{now, in.Value * float64(eff)})
	p.pruneSeries(now)

	capacity := float64(cur) * c.Target // the demand cur instances carry at target
	band := capacity * (1 + c.Tolerance)
	fit := p.fitTrend(now)
	sigma, shortSigma := p.noise(now, fit, capacity)

	// The recommendation: the median demand over the up window.
	vals, _, _ := p.window(now, c.UpWindow)
	lvl := median(vals)
	per := lvl / float64(eff) // as a value per serving instance
	r := cur
	if ratio := lvl / capacity; math.Abs(ratio-1) <= c.Tolerance {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s %.1f on %d serving: demand within %.0f%% of %d × target %v: keep %d",
			c.Metric, per, eff, c.Tolerance*100, cur, c.Target, cur))
	} else {
		r = int(math.Ceil(lvl / c.Target))
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s %.1f vs target %v: ceil(%d × %.3f) = %d", c.Metric, per, c.Target, eff, per/c.Target, r))
	}
	if eff < cur && in.Value > c.Target*(1+c.Tolerance) && r <= cur {
		d.Reasons = append(d.Reasons, fmt.Sprintf("the %d booting instances will absorb it", cur-eff))
	}

	// Scale-up evidence: the level test, then the trend.
	up, hold := 0, 0
	var upWhy string
	if m, w, stat, ok := p.levelTest(now, band, shortSigma); ok {
		up = int(math.Ceil(m / c.Target))
		upWhy = fmt.Sprintf("%s of the demand over %v clears the band's top %.0f by %.1f standard errors (noise σ %.1f); sized for %.0f, its upper quartile",
			stat, w, band, zLevel, shortSigma, m)
	}
	// Saturated: more than half of the up window pinned at the ceiling
	// (its median there), not merely near it.
	if saturated := p.ceiling > 0 && per >= 0.995*p.ceiling; saturated && up > 0 && 2*eff > up {
		// A figure pinned at its ceiling is a lower bound of the demand.
		up = 2 * eff
		upWhy += fmt.Sprintf("; %s is at its ceiling (%.0f), so the demand is at least that: asking for twice the %d serving instances", c.Metric, p.ceiling, eff)
	}
	if ok, why := fit.rising(sigma, shortSigma); ok {
		h := min(p.BootEstimate()+c.Lookahead+c.MetricLag, c.TrendWindow)
		proj := fit.level + fit.slope*h.Seconds()
		// Once it fires, it asks for the demand a Lookahead further on, so
		// that a ramp is followed in steps that last, not one instance at a
		// time.
		size := proj + fit.slope*min(c.Lookahead, c.TrendWindow).Seconds()
		// A rising demand holds any scale-down back.
		hold = cur
		switch n := int(math.Ceil(size / c.Target)); {
		case proj <= band:
		case ready < cur:
			// Instances asked for on an earlier projection still boot:
			// the projection over their boot time included them.
			if n > cur {
				d.Reasons = append(d.Reasons, fmt.Sprintf("trend: projected %.0f, but %d instances still boot: waiting for them", proj, cur-ready))
			}
		case n > up:
			up = n
			upWhy = fmt.Sprintf("trend: demand %.0f rising %.2f/s, projected %.0f in %v (boot %v + lookahead %v + metric lag %v), above the band's top %.0f; sized for %.0f, a lookahead later",
				fit.level, fit.slope, proj, h, p.BootEstimate(), c.Lookahead, c.MetricLag, band, size)
		}
	} else if why != "" && r > cur {
		d.Reasons = append(d.Reasons, why)
	}
	rr := max(r, up, hold)
	if hold > r && r < cur {
		d.Reasons = append(d.Reasons, fmt.Sprintf("trend: demand rising %.2f/s: no scale-down while it rises", fit.slope))
	}
	d.Recommendation = rr
	p.recs = append(p.recs, rec{now, rr})
	p.prune(now)

	want := cur
	switch {
	case up > cur:
		want = up
		d.Reasons = append(d.Reasons, upWhy)
	case r > cur:
		d.Reasons = append(d.Reasons, fmt.Sprintf("scale-up test: the demand is not above the band's top %.0f with confidence yet (noise σ %.1f)", band, shortSigma))
	case r < cur:
		if hi, ok := p.held(now, c.DownWindow, true); !ok {
			d.Reasons = append(d.Reasons, fmt.Sprintf("scale-down stabilization: recommendations do not cover %v yet", c.DownWindow))
		} else if hi < cur {
			want = hi
			if hi > r {
				d.Reasons = append(d.Reasons, fmt.Sprintf("scale-down stabilization: highest recommendation over %v is %d", c.DownWindow, hi))
			}
		} else {
			d.Reasons = append(d.Reasons, fmt.Sprintf("scale-down stabilization: recommendation was %d within the last %v", hi, c.DownWindow))
		}
	}
	d.Desired = want
	return p.bound(now, d)
}
