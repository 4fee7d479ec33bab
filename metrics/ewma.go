package metrics

import (
	"math"
	"time"
)

// EWMA smooths a stream of Loads with an exponentially weighted moving
// average whose weight depends on the time between samples, so irregular
// sampling (a late tick, a failed read) does not change how fast it
// follows. A sample dt after the previous one gets the weight
//
//	alpha = 1 − exp(−dt·ln2 / HalfLife)
//
// so that a step change is half absorbed after one half-life whatever the
// sampling interval. Every float field of Load is smoothed, and MemAvailable
// as well (kept as a float inside so rounding does not drift). Taken is the
// newest sample's.
//
// The zero value, with HalfLife zero, does no smoothing. An EWMA is not safe
// for concurrent use.
type EWMA struct {
	// HalfLife is the time for the average to move half way to a new steady
	// value. Zero or negative means no smoothing.
	HalfLife time.Duration

	value  Load
	memAv  float64
	primed bool
}

// NewEWMA returns an EWMA with the given half-life.
func NewEWMA(halfLife time.Duration) *EWMA { return &EWMA{HalfLife: halfLife} }

// Alpha returns the weight a new sample gets dt after the previous one with
// the given half-life: 1 − exp(−dt·ln2/halfLife). It is 1 (no smoothing) for
// halfLife <= 0 and 0 for dt <= 0.
func Alpha(dt, halfLife time.Duration) float64 {
	if halfLife <= 0 {
		return 1
	}
	if dt <= 0 {
		return 0
	}
	return 1 - math.Exp(-dt.Seconds()*math.Ln2/halfLife.Seconds())
}

// Update folds in sample, taken dt after the previous one, and returns the
// smoothed Load. The first sample is taken as it is.
func (e *EWMA) Update(sample Load, dt time.Duration) Load {
	if !e.primed || e.HalfLife <= 0 {
		e.value, e.memAv, e.primed = sample, float64(sample.MemAvailable), true
		return e.value
	}
	a := Alpha(dt, e.HalfLife)
	mix := func(old, new float64) float64 { return old + a*(new-old) }
	v := &e.value
	v.CPUPercent = mix(v.CPUPercent, sample.CPUPercent)
	v.MemPercent = mix(v.MemPercent, sample.MemPercent)
	v.NetRxBps = mix(v.NetRxBps, sample.NetRxBps)
	v.NetTxBps = mix(v.NetTxBps, sample.NetTxBps)
	v.Load1 = mix(v.Load1, sample.Load1)
	v.Cores = mix(v.Cores, sample.Cores)
	e.memAv = mix(e.memAv, float64(sample.MemAvailable))
	v.MemAvailable = uint64(math.Round(e.memAv))
	v.Taken = sample.Taken
	return e.value
}

// Value returns the current smoothed Load; ok is false before the first
// Update.
func (e *EWMA) Value() (l Load, ok bool) { return e.value, e.primed }

// Reset forgets all samples.
func (e *EWMA) Reset() { e.value, e.memAv, e.primed = Load{}, 0, false }
