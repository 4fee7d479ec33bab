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
// load trace, and the reference algorithms the policy is compared with: the
// Kubernetes HPA's (hpa.go) and a naive threshold. The policy tests and
// tools/cmd/shoal-scalebench run it.
//
// The service: every instance is asked for by a scale-up call and serves
// Boot later; the demand of each second is spread evenly over the serving
// instances, so the utilization is demand ÷ ready (what a scaler's metric
// shows is capped at 100%). A scale-down removes instances not yet serving
// first, then the newest (as a Kubernetes ReplicaSet does).

// Trace is a load trace: Demand[i] is the demand at second i, in percent of
// one instance (250 = two and a half instances' worth of work). NoMetrics,
// when not nil, marks the seconds whose load figures never reach the
// scaler (a metrics dropout); the demand goes on.
type Trace struct {
	Name      string
	Demand    []float64
	NoMetrics []bool
}

// ReadTrace reads a trace in CSV: a header line, then "second,demand" or
// "second,demand,metrics" where metrics is 1, or 0 for a second without
// load figures.
func ReadTrace(name string, r io.Reader) (Trace, error) {
	t := Trace{Name: name}
	sc := bufio.NewScanner(r)
	line := 0
	cols := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if line == 1 {
			cols = len(strings.Split(s, ","))
			if cols != 2 && cols != 3 {
				return t, fmt.Errorf("trace %s: header %q: want second,demand[,metrics]", name, s)
			}
			continue
		}
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Split(s, ",")
		if len(f) != cols {
			return t, fmt.Errorf("trace %s line %d: %q: want %d fields", name, line, s, cols)
		}
		i, err1 := strconv.Atoi(f[0])
		v, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil || i != len(t.Demand) || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return t, fmt.Errorf("trace %s line %d: %q", name, line, s)
		}
		t.Demand = append(t.Demand, v)
		if cols == 3 {
			switch f[2] {
			case "1":
				t.NoMetrics = append(t.NoMetrics, false)
			case "0":
				t.NoMetrics = append(t.NoMetrics, true)
			default:
				return t, fmt.Errorf("trace %s line %d: metrics %q: want 1 or 0", name, line, f[2])
			}
		}
	}
	return t, sc.Err()
}

// WriteTrace writes t in ReadTrace's format.
func WriteTrace(w io.Writer, t Trace) error {
	bw := bufio.NewWriter(w)
	if t.NoMetrics == nil {
		fmt.Fprintln(bw, "second,demand")
		for i, v := range t.Demand {
			fmt.Fprintf(bw, "%d,%.2f\n", i, v)
		}
		return bw.Flush()
	}
	fmt.Fprintln(bw, "second,demand,metrics")
	for i, v := range t.Demand {
		m := 1
		if i < len(t.NoMetrics) && t.NoMetrics[i] {
			m = 0
		}
		fmt.Fprintf(bw, "%d,%.2f,%d\n", i, v, m)
	}
	return bw.Flush()
}

// Instance is one simulated instance: when it was asked for and when it
// started serving (Serving false: still booting). Times are from the
// simulation's start; the instances there at the start were started long
// before.
type Instance struct {
	Start, ReadyAt time.Duration
	Serving        bool
}

// Observation is what a scaler sees at one step.
type Observation struct {
	// Current is the count asked for, booting instances included; Ready
	// how many serve. ReadyKnown tells whether the scaler is given Ready
	// (a provider that reports it); the HPA always sees its pods.
	Current, Ready int
	ReadyKnown     bool
	// Util is the utilization the scaler's metrics pipeline shows, per
	// serving instance; Valid false during a metrics dropout.
	Util  float64
	Valid bool
	// MetricAge is how old the figure is (the pipeline's delay).
	MetricAge time.Duration
	// Instances are the instances, oldest first.
	Instances []Instance
}

// Scaler is an algorithm under simulation: every Period it observes the
// service and returns the count it asks for.
type Scaler interface {
	Name() string
	Period() time.Duration
	Step(now time.Time, o Observation) int
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
func (s *PolicyScaler) Step(now time.Time, o Observation) int {
	in := Input{Current: o.Current, Value: o.Util, Valid: o.Valid, Ready: o.Ready, ReadyKnown: o.ReadyKnown}
	d := s.P.Evaluate(now, in)
	if d.Action != ActionNone {
		s.P.Record(Action{Time: now, From: o.Current, To: d.Desired})
	}
	return d.Desired
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
func (s *Naive) Step(now time.Time, o Observation) int {
	cur := o.Current
	switch {
	case !o.Valid:
	case o.Util > s.Up && cur < s.Max:
		return cur + 1
	case o.Util < s.Down && cur > s.Min:
		return cur - 1
	}
	return cur
}

// SimOptions describe the simulated service and how the scaler sees it.
type SimOptions struct {
	// Start is the instance count at second 0.
	Start int
	// Target and Tolerance define the band: an episode starts when the
	// utilization rises above Target × (1+Tolerance); Min is the lowest
	// count (no over-provisioning is counted at it).
	Target, Tolerance float64
	Min               int
	// Boot is how long a new instance takes before it serves.
	Boot time.Duration
	// ReadyKnown gives the scaler the ready count (Observation.Ready).
	ReadyKnown bool
	// HalfLife smooths what the scaler sees (the agent's EWMA; 0: none)
	// and Delay delays it (gossip; a metrics pipeline), both on a 1 s
	// sample. Unsmooth runs the agent's Unsmoother (HalfLife known) on
	// what arrives, as the agent's scale adapter does.
	HalfLife, Delay time.Duration
	Unsmooth        bool
	// ReversalWindow: an action against the direction of the one before,
	// less than this after it, is a reversal (0: 10 minutes).
	ReversalWindow time.Duration
}

// SimResult is what one run measured.
type SimResult struct {
	Scaler string
	// Episodes: each starts at the first second the utilization (of the
	// serving instances) is above the band's top since it was last at or
	// below the target, and ends when it is at or below the target again.
	// Reactions holds, per answered episode, the seconds from its start to
	// the first scale-up call (0 when a call made since the utilization was
	// last at or below the target anticipated it). An episode no call
	// answered has no reaction: Episodes − Answered counts them and
	// UnansweredOver sums their seconds above the band (all of which are
	// in UnderSeconds too).
	Episodes, Answered int
	Reactions          []float64
	UnansweredOver     int
	// Actions counts provider calls (Up + Down); Reversals the actions
	// against the direction of the one before, within ReversalWindow.
	Actions, Up, Down, Reversals int
	// UnderSeconds: seconds with the utilization of the serving instances
	// above the band's top; OverSeconds: seconds with the demand below the
	// band's bottom on the count asked for, above Min; OverloadSeconds:
	// utilization above 100%.
	UnderSeconds, OverSeconds, OverloadSeconds int
	// InstanceSeconds is the integral of the count asked for (cost).
	InstanceSeconds float64
	// Counts is the count asked for at every second.
	Counts []int
	// Calls are the provider calls; Log the episodes.
	Calls []Call
	Log   []Episode
}

// Episode is one episode of a simulation: its first and last second above
// the band, and the reaction (see SimResult.Reactions).
type Episode struct {
	Start, LastOver int
	Reaction        float64 // when Answered
	Answered        bool
	Over            int // seconds above the band
}

// Call is one provider call in a simulation.
type Call struct {
	Second   int
	From, To int
}

// episode tracks one episode (see SimResult).
type episode struct {
	open, answered  bool
	start, lastOver int
	reaction        float64
	over            int
}

// Simulate runs s over tr, one second at a time.
func Simulate(tr Trace, s Scaler, o SimOptions) SimResult {
	res := SimResult{Scaler: s.Name()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := make([]Instance, o.Start)
	for i := range inst {
		inst[i] = Instance{Start: -time.Hour, ReadyAt: -time.Hour, Serving: true}
	}
	every := max(int(s.Period()/time.Second), 1)
	delay := int(o.Delay / time.Second)
	revWin := o.ReversalWindow
	if revWin <= 0 {
		revWin = 10 * time.Minute
	}
	seen := make([]float64, len(tr.Demand)) // what the metrics pipeline shows at each second
	ew := 0.0
	un := Unsmoother{HalfLife: o.HalfLife}
	band := o.Target * (1 + o.Tolerance)
	low := o.Target * (1 - o.Tolerance)
	var ep episode
	lastLow, lastUp := -1, -1
	var lastAct Call
	hasAct := false
	closeEp := func() {
		if !ep.open {
			return
		}
		res.Episodes++
		e := Episode{Start: ep.start, LastOver: ep.lastOver, Reaction: ep.reaction, Answered: ep.answered, Over: ep.over}
		if !ep.answered {
			res.UnansweredOver += ep.over
		}
		res.Log = append(res.Log, e)
		ep = episode{}
	}
	readyCount := func() int {
		n := 0
		for _, x := range inst {
			if x.Serving {
				n++
			}
		}
		return n
	}
	utilOf := func(dem float64, ready int) float64 {
		if ready == 0 {
			if dem > 0 {
				return math.Inf(1)
			}
			return 0
		}
		return dem / float64(ready)
	}
	for i, dem := range tr.Demand {
		now := time.Duration(i) * time.Second
		for k := range inst {
			if !inst[k].Serving && inst[k].ReadyAt <= now {
				inst[k].Serving = true
			}
		}
		ready := readyCount()
		util := utilOf(dem, ready)
		measured := math.Min(util, 100)
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
		oi := max(i-delay, 0)
		obs, valid := seen[oi], tr.NoMetrics == nil || !tr.NoMetrics[oi]
		if o.Unsmooth && o.HalfLife > 0 {
			if valid {
				obs = math.Max(un.Update(t0.Add(now), obs), 0)
			} else {
				un.Reset()
			}
		}

		// Episodes, on the utilization the service has this second.
		switch {
		case util <= o.Target:
			lastLow = i
			closeEp()
		case util > band && !ep.open:
			ep = episode{open: true, start: i, lastOver: i, over: 1}
			if lastUp >= 0 && lastUp >= lastLow {
				ep.answered = true // anticipated
				res.Reactions = append(res.Reactions, 0)
				res.Answered++
			}
		case util > band:
			ep.lastOver = i
			ep.over++
		}

		if i%every == 0 {
			cur := len(inst)
			want := s.Step(t0.Add(now), Observation{Current: cur, Ready: ready, ReadyKnown: o.ReadyKnown, Util: obs, Valid: valid,
				MetricAge: time.Duration(i-oi) * time.Second, Instances: slices.Clone(inst)})
			want = max(want, 0)
			if want != cur {
				c := Call{Second: i, From: cur, To: want}
				res.Calls = append(res.Calls, c)
				res.Actions++
				if hasAct && (want > cur) != (lastAct.To > lastAct.From) && time.Duration(i-lastAct.Second)*time.Second < revWin {
					res.Reversals++
				}
				lastAct, hasAct = c, true
				if want > cur {
					res.Up++
					lastUp = i
					if ep.open && !ep.answered {
						ep.answered, ep.reaction = true, float64(i-ep.start)
						res.Reactions = append(res.Reactions, ep.reaction)
						res.Answered++
					}
					for range want - cur {
						inst = append(inst, Instance{Start: now, ReadyAt: now + o.Boot, Serving: o.Boot <= 0})
					}
				} else {
					res.Down++
					inst = removeInstances(inst, cur-want)
				}
			}
		}
		ready = readyCount()
		u := utilOf(dem, ready)
		if u > band {
			res.UnderSeconds++
		}
		if u > 100 {
			res.OverloadSeconds++
		}
		if n := len(inst); n > o.Min && dem/float64(n) < low {
			res.OverSeconds++
		}
		res.InstanceSeconds += float64(len(inst))
		res.Counts = append(res.Counts, len(inst))
	}
	closeEp()
	return res
}

// removeInstances removes k instances: booting ones first, newest first,
// then the newest serving ones.
func removeInstances(inst []Instance, k int) []Instance {
	for j := len(inst) - 1; j >= 0 && k > 0; j-- {
		if !inst[j].Serving {
			inst = slices.Delete(inst, j, j+1)
			k--
		}
	}
	for k > 0 && len(inst) > 0 {
		inst = inst[:len(inst)-1]
		k--
	}
	return inst
}

// Percentile returns the p-th percentile (0..100) of xs by linear
// interpolation, and NaN for none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return Stat(Metric{Stat: "p", Pct: p}, slices.Clone(xs))
}
