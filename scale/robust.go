package scale

import (
	"math"
	"slices"
	"time"
)

// Robust statistics the policy's windows use: medians, the median absolute
// deviation, Theil–Sen slopes, and an EWMA inverse for the agent's smoothed
// load figures. Pure functions of their arguments.

// median returns the median of xs (not empty), leaving xs as it is.
func median(xs []float64) float64 { return medianInPlace(slices.Clone(xs)) }

// medianInPlace returns the median of s (not empty), reordering s.
func medianInPlace(s []float64) float64 {
	n := len(s)
	hi := selectK(s, n/2)
	if n%2 == 1 {
		return hi
	}
	// The lower middle is the largest of the elements left of n/2.
	return (slices.Max(s[:n/2]) + hi) / 2
}

// selectK reorders s so that s[k] is the value a sort would put there,
// with no larger value before it and no smaller after (quickselect), and
// returns s[k].
func selectK(s []float64, k int) float64 {
	lo, hi := 0, len(s)-1
	for lo < hi {
		// Median of three as the pivot.
		mid := lo + (hi-lo)/2
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}

// mad returns 1.4826 × the median absolute deviation of xs around m: a
// robust standard deviation (equal to it for Gaussian noise).
func mad(xs []float64, m float64) float64 {
	d := make([]float64, len(xs))
	for i, x := range xs {
		d[i] = math.Abs(x - m)
	}
	return 1.4826 * median(d)
}

// noiseLag is the lag, in samples, of the differences noiseSigma takes:
// more than one, so that noise correlated over a few samples (a smoothed
// input) is not mistaken for less noise.
const noiseLag = 3

// noiseSigma estimates the standard deviation of the noise on ys from its
// differences at noiseLag (robust to a trend, which shifts every
// difference alike, and to a step, which makes noiseLag outliers): 1.4826 ×
// MAD of the differences, over √2. It returns 0 for fewer than 2×noiseLag
// samples.
func noiseSigma(ys []float64) float64 {
	if len(ys) < 2*noiseLag {
		return 0
	}
	d := make([]float64, len(ys)-noiseLag)
	for i := range d {
		d[i] = ys[i+noiseLag] - ys[i]
	}
	return mad(d, median(d)) / math.Sqrt2
}

// theilSen fits y = a + b·x robustly: b is the median of the pairwise
// slopes, a the median of y − b·x. xs must be distinct and increasing; at
// least two points.
func theilSen(xs, ys []float64) (a, b float64) {
	n := len(xs)
	slopes := make([]float64, 0, n*(n-1)/2)
	for i := range n {
		for j := i + 1; j < n; j++ {
			if dx := xs[j] - xs[i]; dx > 0 {
				slopes = append(slopes, (ys[j]-ys[i])/dx)
			}
		}
	}
	if len(slopes) == 0 {
		return median(ys), 0
	}
	b = medianInPlace(slopes)
	r := slopes[:0] // reuse when large enough: the slopes are no longer needed
	if cap(r) < n {
		r = make([]float64, 0, n)
	}
	r = r[:n]
	for i := range n {
		r[i] = ys[i] - b*xs[i]
	}
	return medianInPlace(r), b
}

// Unsmoother undoes an exponentially weighted moving average of a known
// half-life: the agent's load figures are smoothed by each member's monitor
// (--half-life, 5 s by default) before they are gossiped, which delays a
// rise by several seconds. For y the smoothed value, the raw value is
// x = y + τ·dy/dt with τ = Interval × (1/α − 1), α = 1 − 2^(−Interval/HalfLife)
// (the EWMA's weight per sample); the slope is a Theil–Sen fit over the last
// Span of inputs, so that the noise the inversion amplifies stays bounded.
// The policy's own robust windows then smooth what is left. The zero value
// (HalfLife 0) passes its input through. Not safe for concurrent use.
type Unsmoother struct {
	// HalfLife is the smoothing to undo; Interval the smoother's sampling
	// interval (0: 1 s).
	HalfLife, Interval time.Duration
	// Span is how far back the slope is fitted (0: 2 s).
	Span time.Duration
	ts   []time.Time
	ys   []float64
}

// Tau returns the time constant the inversion uses.
func (u *Unsmoother) Tau() time.Duration {
	if u.HalfLife <= 0 {
		return 0
	}
	iv := u.Interval
	if iv <= 0 {
		iv = time.Second
	}
	a := 1 - math.Exp2(-iv.Seconds()/u.HalfLife.Seconds())
	return time.Duration(float64(iv) * (1/a - 1))
}

// Update takes the smoothed value y at t and returns the estimate of the raw
// value. Inputs must come in time order.
func (u *Unsmoother) Update(t time.Time, y float64) float64 {
	if u.HalfLife <= 0 {
		return y
	}
	span := u.Span
	if span <= 0 {
		span = 2 * time.Second
	}
	if n := len(u.ts); n > 0 && !t.After(u.ts[n-1]) {
		u.ys[n-1] = y // same instant: keep the newest
	} else {
		u.ts = append(u.ts, t)
		u.ys = append(u.ys, y)
	}
	cut := 0
	for cut < len(u.ts)-1 && t.Sub(u.ts[cut]) > span {
		cut++
	}
	if cut > 0 {
		u.ts = append(u.ts[:0], u.ts[cut:]...)
		u.ys = append(u.ys[:0], u.ys[cut:]...)
	}
	if len(u.ts) < 2 {
		return y
	}
	xs := make([]float64, len(u.ts))
	for i, ti := range u.ts {
		xs[i] = ti.Sub(t).Seconds()
	}
	_, b := theilSen(xs, u.ys)
	return y + u.Tau().Seconds()*b
}

// UnsmoothLag is how far behind the raw figures an Unsmoother's output
// runs with its default span, gossip and sampling included (the agent sets
// Config.MetricLag to at least this when it unsmooths).
const UnsmoothLag = 4 * time.Second

// Reset forgets the inputs (after a gap in the figures).
func (u *Unsmoother) Reset() { u.ts, u.ys = u.ts[:0], u.ys[:0] }
