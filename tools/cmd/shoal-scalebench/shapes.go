package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/shoalmesh/shoal/scale"
)

// The six trace shapes of issue 16, generated from seeds and committed
// under scale/testdata/traces/shapes (shoal-scalebench -gen-shapes DIR
// rewrites them; a test checks the files are what the generator makes).
// Every shape and its parameter ranges were fixed before any scaler ran on
// them, and are not tuned to any result. Demand is in percent of one
// instance; the service starts at 3 instances with a 70% target, so a
// demand of 210 is the target and 231 the band's top.

// Shapes, in table order.
var shapeNames = []string{"diurnal", "flash", "ramp-slow", "osc40", "plateau", "dropout"}

// shapeSeeds are the seeds each shape is generated with.
var shapeSeeds = []uint64{1, 2, 3}

// wander is a slow multiplicative random walk (AR(1), ~33 s memory, ~2%
// standard deviation) on top of white noise: load that drifts.
type wander struct {
	r *rand.Rand
	w float64
}

func (a *wander) next() float64 {
	a.w = 0.97*a.w + 0.005*a.r.NormFloat64()
	return 1 + a.w
}

func white(r *rand.Rand, v, sd float64) float64 { return math.Max(0, v*(1+sd*r.NormFloat64())) }

// diurnal: one compressed day in the hour: a raised cosine from a trough of
// 100-160 to a peak 3.5-6× the trough and back, its phase within ±5 min of
// starting at the trough; 2% wander, 3% noise.
func diurnal(r *rand.Rand) []float64 {
	d := make([]float64, traceSeconds)
	tr := 100 + 60*r.Float64()
	pk := tr * (3.5 + 2.5*r.Float64())
	ph := -300 + 600*r.Float64()
	w := wander{r: r}
	for i := range d {
		x := (1 - math.Cos(2*math.Pi*(float64(i)+ph)/traceSeconds)) / 2
		d[i] = white(r, (tr+(pk-tr)*x)*w.next(), 0.03)
	}
	return d
}

// flash: a base of 120-170; flash crowds of 2.5-5× the base, rising within
// 1-5 s, held 120-600 s, decaying back with a time constant of 60-300 s;
// the first at 300-900 s, then 900-1500 s after the previous one began;
// 3% noise.
func flash(r *rand.Rand) []float64 {
	d := make([]float64, traceSeconds)
	base := 120 + 50*r.Float64()
	extra := make([]float64, traceSeconds)
	for at := 300 + r.IntN(601); at < traceSeconds; at += 900 + r.IntN(601) {
		peak := base * (1.5 + 2.5*r.Float64()) // the excess over the base
		rise := 1 + r.IntN(5)
		hold := 120 + r.IntN(481)
		tau := 60 + 240*r.Float64()
		for i := at; i < traceSeconds; i++ {
			var e float64
			switch k := i - at; {
			case k < rise:
				e = peak * float64(k+1) / float64(rise)
			case k < rise+hold:
				e = peak
			default:
				e = peak * math.Exp(-float64(k-rise-hold)/tau)
			}
			extra[i] += e
		}
	}
	for i := range d {
		d[i] = white(r, base+extra[i], 0.03)
	}
	return d
}

// rampSlow: a base of 130-170 for 120-300 s, a linear ramp to 3-5× the base
// over 900-1800 s, held 300-600 s, a ramp back over 600-1200 s, then the
// base; 2% wander, 3% noise.
func rampSlow(r *rand.Rand) []float64 {
	base := 130 + 40*r.Float64()
	peak := base * (3 + 2*r.Float64())
	var v []float64
	for range 120 + r.IntN(181) {
		v = append(v, base)
	}
	up := 900 + r.IntN(901)
	for k := range up {
		v = append(v, base+(peak-base)*float64(k+1)/float64(up))
	}
	for range 300 + r.IntN(301) {
		v = append(v, peak)
	}
	down := 600 + r.IntN(601)
	for k := range down {
		v = append(v, peak-(peak-base)*float64(k+1)/float64(down))
	}
	for len(v) < traceSeconds {
		v = append(v, base)
	}
	v = v[:traceSeconds]
	w := wander{r: r}
	for i := range v {
		v[i] = white(r, v[i]*w.next(), 0.03)
	}
	return v
}

// osc40: a 40 s square wave with 2 s edges, between a low of 130-170 and a
// high of 1.6-2.2× it, at a random phase; 3% noise.
func osc40(r *rand.Rand) []float64 {
	d := make([]float64, traceSeconds)
	lo := 130 + 40*r.Float64()
	hi := lo * (1.6 + 0.6*r.Float64())
	ph := r.IntN(40)
	for i := range d {
		k := (i + ph) % 40
		var x float64
		switch {
		case k < 18:
			x = 0
		case k < 20:
			x = float64(k-17) / 3
		case k < 38:
			x = 1
		default:
			x = 1 - float64(k-37)/3
		}
		d[i] = white(r, lo+(hi-lo)*x, 0.03)
	}
	return d
}

// plateau: a level of 95-105% of the target on 3 instances (inside the
// band); 2% wander, 5% noise.
func plateau(r *rand.Rand) []float64 {
	d := make([]float64, traceSeconds)
	lvl := 3 * target * (0.95 + 0.10*r.Float64())
	w := wander{r: r}
	for i := range d {
		d[i] = white(r, lvl*w.next(), 0.05)
	}
	return d
}

// dropout: a level of 90-105% of the target on 3 instances; 30 s without
// load figures every 240-480 s, the first at 120-360 s; 2% wander, 3%
// noise.
func dropout(r *rand.Rand) ([]float64, []bool) {
	d := make([]float64, traceSeconds)
	lvl := 3 * target * (0.90 + 0.15*r.Float64())
	w := wander{r: r}
	for i := range d {
		d[i] = white(r, lvl*w.next(), 0.03)
	}
	miss := make([]bool, traceSeconds)
	for at := 120 + r.IntN(241); at < traceSeconds; at += 240 + r.IntN(241) {
		for i := at; i < min(at+30, traceSeconds); i++ {
			miss[i] = true
		}
	}
	return d, miss
}

// generateShape returns shape's trace for seed.
func generateShape(shape string, seed uint64) (scale.Trace, error) {
	idx := -1
	for i, s := range shapeNames {
		if s == shape {
			idx = i
		}
	}
	if idx < 0 {
		return scale.Trace{}, fmt.Errorf("unknown shape %q", shape)
	}
	r := rand.New(rand.NewPCG(seed, 0x5ca1e16+uint64(idx)))
	t := scale.Trace{Name: fmt.Sprintf("%s-%d", shape, seed)}
	switch shape {
	case "diurnal":
		t.Demand = diurnal(r)
	case "flash":
		t.Demand = flash(r)
	case "ramp-slow":
		t.Demand = rampSlow(r)
	case "osc40":
		t.Demand = osc40(r)
	case "plateau":
		t.Demand = plateau(r)
	case "dropout":
		t.Demand, t.NoMetrics = dropout(r)
	}
	return t, nil
}
