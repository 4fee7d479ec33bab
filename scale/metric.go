package scale

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MemberLoad is one alive member's load, as the policy sees it: the agent
// fills it from the View (scale knows nothing of the mesh or gopsutil).
type MemberLoad struct {
	Name string
	// CPU and Mem are percentages, 0..100; Net is bytes per second,
	// received plus sent.
	CPU, Mem, Net float64
	// Named holds named metrics (from numeric member tags), by name.
	Named map[string]float64
}

// Metric is a parsed metric name: a source and a statistic over members.
type Metric struct {
	// Source is cpu, mem, net, or a named metric.
	Source string
	// Named is true for a named metric ("tag:NAME").
	Named bool
	// Stat is mean, max, min, or a percentile 0..100 (Pct).
	Stat string
	Pct  float64
}

// ParseMetric reads "SOURCE[:STAT]" where SOURCE is cpu, mem, net or
// tag:NAME (a numeric member tag) and STAT is mean (default), max, min or
// pNN (a percentile, e.g. p90). Examples: "cpu", "cpu:p90", "mem:max",
// "tag:queue_depth:mean".
func ParseMetric(s string) (Metric, error) {
	bad := func(why string) (Metric, error) {
		return Metric{}, fmt.Errorf("%w: scale-metric %q: %s; use cpu, mem, net or tag:NAME, optionally with :mean, :max, :min or :pNN (e.g. cpu:p90)", ErrConfig, s, why)
	}
	parts := strings.Split(s, ":")
	var m Metric
	switch parts[0] {
	case "cpu", "mem", "net":
		m.Source = parts[0]
		parts = parts[1:]
	case "tag":
		if len(parts) < 2 || parts[1] == "" {
			return bad("tag needs a name")
		}
		m.Source, m.Named = parts[1], true
		parts = parts[2:]
	default:
		return bad(fmt.Sprintf("unknown source %q", parts[0]))
	}
	m.Stat = "mean"
	switch len(parts) {
	case 0:
	case 1:
		m.Stat = parts[0]
	default:
		return bad("too many parts")
	}
	switch {
	case m.Stat == "mean" || m.Stat == "max" || m.Stat == "min":
	case strings.HasPrefix(m.Stat, "p"):
		v, err := strconv.ParseFloat(m.Stat[1:], 64)
		if err != nil || v < 0 || v > 100 {
			return bad(fmt.Sprintf("percentile %q: want p0..p100", m.Stat))
		}
		m.Pct = v
	default:
		return bad(fmt.Sprintf("statistic %q", m.Stat))
	}
	return m, nil
}

func (m Metric) String() string {
	src := m.Source
	if m.Named {
		src = "tag:" + src
	}
	return src + ":" + m.Stat
}

// Aggregate computes metric over the members. ok is false when no member
// has a figure for it (then the policy holds).
func Aggregate(metric string, ms []MemberLoad) (v float64, ok bool, err error) {
	m, err := ParseMetric(metric)
	if err != nil {
		return 0, false, err
	}
	vals := make([]float64, 0, len(ms))
	for _, x := range ms {
		var f float64
		switch {
		case m.Named:
			var has bool
			if f, has = x.Named[m.Source]; !has {
				continue
			}
		case m.Source == "cpu":
			f = x.CPU
		case m.Source == "mem":
			f = x.Mem
		default:
			f = x.Net
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		vals = append(vals, f)
	}
	if len(vals) == 0 {
		return 0, false, nil
	}
	return Stat(m, vals), true, nil
}

// Stat applies m's statistic to vals (not empty). Percentiles interpolate
// linearly between closest ranks.
func Stat(m Metric, vals []float64) float64 {
	switch m.Stat {
	case "mean":
		s := 0.0
		for _, v := range vals {
			s += v
		}
		return s / float64(len(vals))
	case "max":
		return slices.Max(vals)
	case "min":
		return slices.Min(vals)
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	pos := m.Pct / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}
