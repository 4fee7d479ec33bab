package scale

import (
	"fmt"
	"math"
	"time"
)

// HPA is the Kubernetes HorizontalPodAutoscaler's algorithm for a CPU
// utilization target (pkg/controller/podautoscaler, autoscaling/v2 with the
// default behavior), as a Scaler:
//
//   - every Sync (15 s) it reads the pods and their metrics; without
//     metrics (a dropout) it does not scale and records nothing;
//   - groupPods: a pod not yet ready is unready; a ready pod within
//     CPUInitializationPeriod (300 s) of its start is unready until one
//     MetricWindow of metrics was collected after it became ready; after
//     that period, a pod is unready only while not ready and never ready
//     within InitialReadinessDelay (30 s) of its start (in this simulation
//     a booting instance has never been ready, so the delay changes
//     nothing; it is kept for the record);
//   - the utilization over the counted pods, in whole percent (the HPA
//     truncates), over the target; within Tolerance (0.1): keep the count;
//     else ceil(ratio × counted). On a scale-up with unready pods, those
//     are counted at 0% and the ratio is computed again; a result within
//     the tolerance, or one that would change direction, keeps the count;
//   - stabilization: scale-up window 0 s, scale-down window DownWindow
//     (300 s): the highest recommendation over it;
//   - rate limits: up by at most max(4 pods, 100%) per 15 s, down by 100%
//     per 15 s (the default policies, selectPolicy Max), then Min/Max.
//
// It starts as a controller that has been running: its recommendation
// history holds the starting count, so it does not scale down before it
// has DownWindow of recommendations, as the policy does not.
//
// The metrics pipeline (metrics-server's scrape and window, 15–60 s in
// practice) is not part of it: the simulation's SimOptions.Delay adds it,
// and Observation.MetricAge tells groupPods how old the figures are.
type HPA struct {
	Target, Tolerance       float64
	Sync                    time.Duration
	DownWindow              time.Duration
	Min, Max                int
	CPUInitializationPeriod time.Duration
	InitialReadinessDelay   time.Duration
	MetricWindow            time.Duration
	// Label overrides Name.
	Label string

	started bool
	t0      time.Time // the simulation's start: Instance times count from it
	recs    []rec
	events  []Action
}

// NewHPA returns the HPA with its defaults: 15 s sync, 300 s scale-down
// stabilization, 10% tolerance, 300 s CPU initialization period, 30 s
// initial readiness delay, 15 s metric window (metrics-server's
// resolution).
func NewHPA(target float64, minN, maxN int) *HPA {
	return &HPA{Target: target, Tolerance: 0.1, Sync: 15 * time.Second, DownWindow: 300 * time.Second, Min: minN, Max: maxN,
		CPUInitializationPeriod: 300 * time.Second, InitialReadinessDelay: 30 * time.Second, MetricWindow: 15 * time.Second}
}

func (h *HPA) Name() string {
	if h.Label != "" {
		return h.Label
	}
	return "HPA (15 s sync, 300 s down stabilization)"
}

func (h *HPA) Period() time.Duration { return h.Sync }

// counted splits the pods as groupPods does: counted (ready, with a usable
// metric) and unready.
func (h *HPA) counted(now time.Duration, o Observation) (counted, unready int) {
	metricAt := now - o.MetricAge
	for _, p := range o.Instances {
		switch {
		case !p.Serving:
			unready++ // Pending, or not Ready
		case p.Start+h.CPUInitializationPeriod > now:
			// Within the initialization period: ignored until one window
			// of metrics was collected since it became ready.
			if metricAt < p.ReadyAt+h.MetricWindow {
				unready++
			} else {
				counted++
			}
		default:
			// Ready now: only a pod not ready counts as unready after the
			// period, so a serving pod is counted.
			counted++
		}
	}
	return counted, unready
}

// Replicas is the replica calculator's answer for o at now (since the
// start), and false when it has no answer (no metrics, no counted pod).
func (h *HPA) Replicas(now time.Duration, o Observation) (int, bool) {
	cur := o.Current
	if !o.Valid {
		return cur, false
	}
	counted, unready := h.counted(now, o)
	if counted == 0 {
		return cur, false // "did not receive metrics for targeted pods"
	}
	target := math.Round(h.Target)
	util := math.Floor(o.Util) // currentUtilization is an int32 percentage
	ratio := util / target
	within := func(r float64) bool { return 1-h.Tolerance <= r && r <= 1+h.Tolerance }
	if !(unready > 0 && ratio > 1) {
		if within(ratio) {
			return cur, true
		}
		return int(math.Ceil(ratio * float64(counted))), true
	}
	// Scale-up with unready pods: they count at 0%.
	all := counted + unready
	nu := math.Floor(util*float64(counted)/float64(all)) / target
	if within(nu) || (ratio < 1 && nu > 1) || (ratio > 1 && nu < 1) {
		return cur, true
	}
	n := int(math.Ceil(nu * float64(all)))
	if (nu < 1 && n > cur) || (nu > 1 && n < cur) {
		return cur, true
	}
	return n, true
}

func (h *HPA) Step(now time.Time, o Observation) int {
	cur := o.Current
	if !h.started {
		h.started, h.t0 = true, now
		h.recs = append(h.recs, rec{now, cur})
	}
	// reconcileAutoscaler: out-of-range counts are brought back first.
	switch {
	case cur == 0:
		return cur // scaling disabled
	case cur > h.Max:
		return h.apply(now, cur, h.Max)
	case cur < h.Min:
		return h.apply(now, cur, h.Min)
	}
	desired, ok := h.Replicas(now.Sub(h.t0), o)
	if !ok {
		return cur
	}
	// stabilizeRecommendationWithBehaviors: up window 0, down DownWindow.
	up, down := desired, desired
	for _, x := range h.recs {
		if x.t.After(now) {
			up = min(up, x.n)
		}
		if x.t.After(now.Add(-h.DownWindow)) {
			down = max(down, x.n)
		}
	}
	h.recs = append(h.recs, rec{now, desired})
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
	// convertDesiredReplicasWithBehaviorRate: default policies, 15 s.
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
	switch start := cur - added + removed; {
	case want > cur:
		limit := max(start+4, int(math.Ceil(float64(start)*2)))
		limit = max(limit, cur)
		want = min(want, limit, h.Max)
	case want < cur:
		// 100% per period: the limit is 0, so only Min bounds it.
		want = max(want, h.Min)
	}
	return h.apply(now, cur, want)
}

func (h *HPA) apply(now time.Time, cur, want int) int {
	if want != cur {
		h.events = append(h.events, Action{Time: now, From: cur, To: want})
		for len(h.events) > 0 && now.Sub(h.events[0].Time) > time.Minute {
			h.events = h.events[1:]
		}
	}
	return want
}

// String describes the settings.
func (h *HPA) String() string {
	return fmt.Sprintf("HPA target %v%% tolerance %v sync %v down window %v cpu-init %v readiness delay %v metric window %v",
		h.Target, h.Tolerance, h.Sync, h.DownWindow, h.CPUInitializationPeriod, h.InitialReadinessDelay, h.MetricWindow)
}
