package scale

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is a pure simulation of a scaled service driven by a recorded
// load trace, and the two reference algorithms the policy is compared
// with: the Kubernetes HPA's (15 s sync, 300 s scale-down stabilization,
// its default step policies) and a naive threshold. The policy tests and
// cmd/shoal-scalebench run it.

// Trace is a load trace: Demand[i] is the demand at second i, in percent of
// one instance (250 = two and a half instances' worth of work).
type Trace struct {
	Name   string
	Demand []float64
}

// ReadTrace reads a trace in CSV: a header line, then "second,demand".
func ReadTrace(name string, r io.Reader) (Trace, error) {
	t := Trace{Name: name}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if line == 1 || s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		sec, dem, ok := strings.Cut(s, ",")
		if !ok {
			return t, fmt.Errorf("trace %s line %d: want second,demand", name, line)
		}
		i, err1 := strconv.Atoi(sec)
		v, err2 := strconv.ParseFloat(dem, 64)
		if err1 != nil || err2 != nil || i != len(t.Demand) || v < 0 {
			return t, fmt.Errorf("trace %s line %d: %q", name, line, s)
		}
		t.Demand = append(t.Demand, v)
	}
	return t, sc.Err()
}

// WriteTrace writes t in ReadTrace's format.
func WriteTrace(w io.Writer, t Trace) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "second,demand")
	for i, v := range t.Demand {
		fmt.Fprintf(bw, "%d,%.2f\n", i, v)
	}
	return bw.Flush()
}

// Scaler is an algorithm under simulation: every Period it sees the count
// and the observed utilization, and returns the count it asks for.
type Scaler interface {
	Name() string
	Period() time.Duration
	Step(now time.Time, current int, util float64) int
}

// PolicyScaler runs a Policy as the agent does: evaluate, and record the
// action when the count changes.
type PolicyScaler struct {
	Label string
	P     *Policy
	Every time.Duration
}

func (s *PolicyScaler) Name() string          { return s.Label }
func (s *PolicyScaler) Period() time.Duration { return s.Every }
func (s *PolicyScaler) Step(now time.Time, cur int, util float64) int {
	d := s.P.Evaluate(now, Input{Current: cur, Value: util, Valid: true})
	if d.Action != ActionNone {
		s.P.Record(Action{Time: now, From: cur, To: d.Desired})
	}
	return d.Desired
}

// HPA is the Kubernetes HPA's algorithm (pkg/controller/podautoscaler,
// autoscaling/v2 with default behavior): every Sync, desired =
// ceil(current × util/target) outside the tolerance; scale-up stabilization
// 0 s, scale-down stabilization DownWindow (the highest recommendation over
// it); scale-up limited to max(4 pods, 100%) per 15 s, scale-down to 100%
// per 15 s; min/max bounds.
type HPA struct {
	Target, Tolerance float64
	Sync, DownWindow  time.Duration
	Min, Max          int
	recs              []rec
	events            []Action
}

// NewHPA returns the HPA with its defaults (15 s sync, 300 s stabilization,
// 10% tolerance).
func NewHPA(target float64, minN, maxN int) *HPA {
	return &HPA{Target: target, Tolerance: 0.1, Sync: 15 * time.Second, DownWindow: 300 * time.Second, Min: minN, Max: maxN}
}

func (h *HPA) Name() string          { return "HPA (15 s sync, 300 s down stabilization)" }
func (h *HPA) Period() time.Duration { return h.Sync }
func (h *HPA) Step(now time.Time, cur int, util float64) int {
	ratio := util / h.Target
	r := cur
	if math.Abs(ratio-1) > h.Tolerance {
		r = int(math.Ceil(float64(cur) * ratio))
	}
	// stabilizeRecommendationWithBehaviors
	up, down := r, r
	for _, x := range h.recs {
		if !x.t.Before(now) { // scale-up window 0: only now
			up = min(up, x.n)
		}
		if x.t.After(now.Add(-h.DownWindow)) {
			down = max(down, x.n)
		}
	}
	h.recs = append(h.recs, rec{now, r})
	for len(h.recs) > 0 && !h.recs[0].t.After(now.Add(-h.DownWindow)) {
		h.recs = h.recs[1:]
	}
	want := cur
	if want < up {
		want = up
	}
	if want > down {
		want = down
	}
	// convertDesiredReplicasWithBehaviorRate, default policies, period 15 s.
	period := 15 * time.Second
	added, removed := 0, 0
	for _, e := range h.events {
		if e.Time.After(now.Add(-period)) {
			if e.To > e.From {
				added += e.To - e.From
			} else {
				removed += e.From - e.To
			}
		}
	}
	if want > cur {
		base := cur - added
		limit := max(base+4, base*2)
		want = min(want, limit)
	} else if want < cur {
		base := cur + removed
		limit := base - base // 100%: down to 0
		want = max(want, limit)
	}
	want = min(max(want, h.Min), h.Max)
	if want != cur {
		h.events = append(h.events, Action{Time: now, From: cur, To: want})
	}
	return want
}

// Naive is a threshold scaler with no windows and no cooldowns: every
// Every, +1 when util > Up, −1 when util < Down.
type Naive struct {
	Up, Down float64
	Every    time.Duration
	Min, Max int
}

func (s *Naive) Name() string {
	return fmt.Sprintf("naive threshold (+1 above %.0f%%, -1 below %.0f%%, every %v)", s.Up, s.Down, s.Every)
}
func (s *Naive) Period() time.Duration { return s.Every }
func (s *Naive) Step(now time.Time, cur int, util float64) int {
	switch {
	case util > s.Up && cur < s.Max:
		return cur + 1
	case util < s.Down && cur > s.Min:
		return cur - 1
	}
	return cur
}

// SimOptions describe the simulated service and how the scaler sees it.
type SimOptions struct {
	// Start is the instance count at second 0.
	Start int
	// Target and Tolerance define the crossings and the under-provisioned
	// seconds (utilization above Target × (1+Tolerance)).
	Target, Tolerance float64
	// Boot is how long a new instance takes before it carries load.
	Boot time.Duration
	// HalfLife smooths what the scaler sees (the agent's EWMA; 0: none)
	// and Delay delays it (gossip), both on a 1 s sample.
	HalfLife, Delay time.Duration
}

// SimResult is what one run measured.
type SimResult struct {
	Scaler string
	// Latencies are the seconds from each crossing (utilization rising
	// through Target) to the next scale-up call, for the crossings that got
	// one before utilization fell back; Crossings counts all of them.
	Latencies []float64
	Crossings int
	// BandLatencies and BandCrossings are the same for utilization rising
	// through the top of the tolerance band, Target × (1+Tolerance): the
	// level from which a scaler with a tolerance is meant to act.
	BandLatencies []float64
	BandCrossings int
	// Actions counts provider calls (Up + Down).
	Actions, Up, Down int
	// UnderSeconds: seconds with utilization above Target × (1+Tolerance);
	// OverloadSeconds: seconds with demand above the ready capacity.
	UnderSeconds, OverloadSeconds int
	// InstanceSeconds is the integral of the count (cost).
	InstanceSeconds float64
	// Counts is the count at every second.
	Counts []int
}

// Simulate runs s over tr, one step per second.
func Simulate(tr Trace, s Scaler, o SimOptions) SimResult {
	res := SimResult{Scaler: s.Name()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := o.Start
	type pending struct {
		at time.Duration
		k  int
	}
	var booting []pending
	ready := n
	every := max(int(s.Period()/time.Second), 1)
	delay := int(o.Delay / time.Second)
	seen := make([]float64, len(tr.Demand)) // what the scaler's input pipeline shows at each second
	ew := 0.0
	var cross, band crossing
	over := o.Target
	bandTop := o.Target * (1 + o.Tolerance)
	var lastUtil float64
	for i, dem := range tr.Demand {
		now := time.Duration(i) * time.Second
		// Instances that finished booting.
		kept := booting[:0]
		for _, b := range booting {
			if b.at <= now {
				ready += b.k
			} else {
				kept = append(kept, b)
			}
		}
		booting = kept
		ready = min(ready, n)
		util := dem / float64(max(ready, 1))
		measured := min(util, 100)
		if o.HalfLife > 0 {
			if i == 0 {
				ew = measured
			} else {
				a := 1 - math.Exp2(-1/o.HalfLife.Seconds())
				ew += a * (measured - ew)
			}
			seen[i] = ew
		} else {
			seen[i] = measured
		}
		obs := seen[max(i-delay, 0)]

		// Crossings of the target and of the band, on the true utilization.
		res.Crossings += cross.see(i, util, lastUtil, over)
		res.BandCrossings += band.see(i, util, lastUtil, bandTop)
		lastUtil = util

		if i%every == 0 {
			want := s.Step(t0.Add(now), n, obs)
			if want != n {
				res.Actions++
				if want > n {
					res.Up++
					if l, ok := cross.answer(i); ok {
						res.Latencies = append(res.Latencies, l)
					}
					if l, ok := band.answer(i); ok {
						res.BandLatencies = append(res.BandLatencies, l)
					}
					booting = append(booting, pending{now + o.Boot, want - n})
				} else {
					res.Down++
					ready = min(ready, want)
				}
				n = want
				if o.Boot == 0 {
					ready = n
					booting = booting[:0]
				}
			}
		}
		u := dem / float64(max(ready, 1))
		if u > o.Target*(1+o.Tolerance) {
			res.UnderSeconds++
		}
		if u > 100 {
			res.OverloadSeconds++
		}
		res.InstanceSeconds += float64(n)
		res.Counts = append(res.Counts, n)
	}
	return res
}

// crossing tracks utilization rising through a level until a scale-up
// call answers it or utilization falls back.
type crossing struct {
	open bool
	at   int
}

func (c *crossing) see(i int, util, last, level float64) int {
	switch {
	case !c.open && util > level && (i == 0 || last <= level):
		c.open, c.at = true, i
		return 1
	case c.open && util <= level:
		c.open = false
	}
	return 0
}

func (c *crossing) answer(i int) (float64, bool) {
	if !c.open {
		return 0, false
	}
	c.open = false
	return float64(i - c.at), true
}

// Percentile returns the p-th percentile (0..100) of xs by linear
// interpolation, and NaN for none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return Stat(Metric{Stat: "p", Pct: p}, slices.Clone(xs))
}
