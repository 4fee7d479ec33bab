package main

import (
	"math"
	"math/rand/v2"

	"github.com/shoalmesh/shoal/scale"
)

// The traces are generated once from a fixed seed and committed under
// scale/testdata/traces (shoal-scalebench -gen DIR rewrites them). Demand is
// in percent of one instance; the service starts at 3 instances, so a base
// of 150 is 50% utilization, below the 70% target. Every trace has 3%
// multiplicative noise. Their shapes were chosen before any policy ran on
// them and are not tuned to any result.

const traceSeconds = 3600

func noise(r *rand.Rand, v float64) float64 {
	return math.Max(0, v*(1+0.03*r.NormFloat64()))
}

// stepTrace: every 240-420 s the demand jumps to 1.3-2.5× the base, holds
// 90-300 s, and drops back.
func stepTrace(r *rand.Rand) scale.Trace {
	d := make([]float64, traceSeconds)
	base := 150.0
	level := base
	next := 60 + r.IntN(120)
	until := -1
	for i := range d {
		if i == next {
			level = base * (1.3 + 1.2*r.Float64())
			until = i + 90 + r.IntN(210)
		}
		if i == until {
			level = base
			next = i + 150 + r.IntN(180)
		}
		d[i] = noise(r, level)
	}
	return scale.Trace{Name: "step", Demand: d}
}

// rampTrace: ramps from the base to 1.5-3× over 60-300 s, holds 60-180 s,
// ramps back down over 120-300 s, rests 120-300 s.
func rampTrace(r *rand.Rand) scale.Trace {
	d := make([]float64, 0, traceSeconds)
	base := 150.0
	for len(d) < traceSeconds {
		for range 120 + r.IntN(180) {
			d = append(d, base)
		}
		peak := base * (1.5 + 1.5*r.Float64())
		up := 60 + r.IntN(240)
		for k := range up {
			d = append(d, base+(peak-base)*float64(k+1)/float64(up))
		}
		for range 60 + r.IntN(120) {
			d = append(d, peak)
		}
		down := 120 + r.IntN(180)
		for k := range down {
			d = append(d, peak-(peak-base)*float64(k+1)/float64(down))
		}
	}
	d = d[:traceSeconds]
	for i := range d {
		d[i] = noise(r, d[i])
	}
	return scale.Trace{Name: "ramp", Demand: d}
}

// spikeTrace: spikes to 2-3.5× the base lasting 5-40 s, every 60-240 s.
func spikeTrace(r *rand.Rand) scale.Trace {
	d := make([]float64, traceSeconds)
	base := 150.0
	next := 30 + r.IntN(60)
	until := -1
	level := base
	for i := range d {
		if i == next {
			level = base * (2 + 1.5*r.Float64())
			until = i + 5 + r.IntN(36)
		}
		if i == until {
			level = base
			next = i + 60 + r.IntN(180)
		}
		d[i] = noise(r, level)
	}
	return scale.Trace{Name: "spike", Demand: d}
}

// oscillationTrace: a square wave between the base and 2× the base with a
// half-period of 20-60 s (drawn per half-period), the pattern that makes a
// scaler without hysteresis flap.
func oscillationTrace(r *rand.Rand) scale.Trace {
	d := make([]float64, 0, traceSeconds)
	base := 150.0
	high := false
	for len(d) < traceSeconds {
		v := base
		if high {
			v = 2 * base
		}
		for range 20 + r.IntN(41) {
			d = append(d, noise(r, v))
		}
		high = !high
	}
	return scale.Trace{Name: "oscillation", Demand: d[:traceSeconds]}
}

func generate(seed uint64) []scale.Trace {
	r := rand.New(rand.NewPCG(seed, 0x5ca1e))
	return []scale.Trace{stepTrace(r), rampTrace(r), spikeTrace(r), oscillationTrace(r)}
}
