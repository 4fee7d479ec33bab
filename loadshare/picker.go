package loadshare

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// ErrNoCandidate is returned when no candidate is eligible: none alive, none
// with information younger than MaxAge, or none with a positive weight.
var ErrNoCandidate = errors.New("loadshare: no eligible candidate")

// Picker chooses where a piece of work goes.
//
// Concurrency: every Picker returned by New is safe for concurrent use by
// multiple goroutines; calls are serialised by a mutex held for the duration
// of one Pick (the *rand.Rand is not itself safe). Pick never modifies
// cands and never retains it after returning.
type Picker interface {
	// Pick returns one eligible candidate, or an error wrapping
	// ErrNoCandidate.
	Pick(cands []Candidate) (Candidate, error)
}

// Strategy names accepted by New.
const (
	// PowerOfTwo samples two distinct members in proportion to capacity
	// and keeps the one with more spare capacity (higher Share). The
	// comparison is trusted with probability 2^(−age/CompareHalfLife), age
	// being the older of the two members' ages; otherwise the first sample
	// is kept, which is capacity-weighted random. It is the default.
	PowerOfTwo = "p2c"
	// WeightedRandom picks at random in proportion to Weight.
	WeightedRandom = "weighted-random"
	// SmoothWeightedRoundRobin is nginx's smooth weighted round-robin over
	// Weight.
	SmoothWeightedRoundRobin = "swrr"
	// LocalFirst keeps work on the local member while its Load is below
	// Options.LocalThreshold, and otherwise offloads with PowerOfTwo.
	LocalFirst = "local-first"
	// RoundRobin cycles through eligible members in the order given
	// (baseline).
	RoundRobin = "round-robin"
	// Random picks uniformly among eligible members (baseline).
	Random = "random"
	// LeastLoaded always picks the member with the highest Share (baseline;
	// it herds when information is stale).
	LeastLoaded = "least-loaded"
	// Default is the strategy used when none is named.
	Default = PowerOfTwo
)

// Strategies lists the valid strategy names.
func Strategies() []string {
	return []string{PowerOfTwo, WeightedRandom, SmoothWeightedRoundRobin, LocalFirst, RoundRobin, Random, LeastLoaded}
}

// DefaultLocalThreshold is the Load below which LocalFirst keeps work local.
const DefaultLocalThreshold = 0.8

// Options configures a Picker. Only Rand is required.
type Options struct {
	// Rand is the random source; pass a seeded one in tests. The picker
	// takes ownership: do not use it elsewhere.
	Rand *rand.Rand
	// Params tunes weights, staleness and eligibility.
	Params WeightParams
	// Weigh overrides Weight for WeightedRandom and SmoothWeightedRoundRobin
	// (e.g. CapacityWeight for capacity-only baselines). It is only called
	// on eligible candidates.
	Weigh func(Candidate) float64
	// LocalThreshold is LocalFirst's Load threshold; 0 means
	// DefaultLocalThreshold.
	LocalThreshold float64
	// CompareHalfLife is the age at which PowerOfTwo trusts its comparison
	// of two members only half the time (see PowerOfTwo). 0 means
	// DefaultCompareHalfLife; negative means always trust it.
	CompareHalfLife time.Duration
}

// DefaultCompareHalfLife is the default Options.CompareHalfLife. It is much
// longer than DefaultHalfLife because a stale comparison can at most double
// a member's share of work (it must first be sampled), whereas a stale weight
// can multiply it without bound; see the simulation in package sim.
const DefaultCompareHalfLife = 30 * time.Second

// New returns a picker for the named strategy ("" means Default). An unknown
// name is an error that lists the valid ones.
func New(strategy string, opts Options) (Picker, error) {
	if opts.Rand == nil {
		return nil, errors.New("loadshare: Options.Rand is nil; pass rand.New(rand.NewPCG(seed, 0))")
	}
	if err := opts.Params.Validate(); err != nil {
		return nil, err
	}
	if opts.LocalThreshold < 0 || math.IsNaN(opts.LocalThreshold) {
		return nil, fmt.Errorf("loadshare: LocalThreshold %v is negative; use a load fraction such as %v", opts.LocalThreshold, DefaultLocalThreshold)
	}
	if opts.LocalThreshold == 0 {
		opts.LocalThreshold = DefaultLocalThreshold
	}
	opts.Params = opts.Params.withDefaults()
	if opts.CompareHalfLife == 0 {
		opts.CompareHalfLife = DefaultCompareHalfLife
	}
	if opts.Weigh == nil {
		p := opts.Params
		opts.Weigh = func(c Candidate) float64 { return weight(c, p) }
	}
	b := func() base { return base{o: opts} }
	switch strategy {
	case PowerOfTwo, "":
		return &p2c{base: b()}, nil
	case WeightedRandom:
		return &weightedRandom{base: b()}, nil
	case SmoothWeightedRoundRobin:
		return &swrr{base: b()}, nil
	case LocalFirst:
		return &localFirst{base: b(), off: &p2c{base: b()}}, nil
	case RoundRobin:
		return &roundRobin{base: b()}, nil
	case Random:
		return &uniform{base: b()}, nil
	case LeastLoaded:
		return &leastLoaded{base: b()}, nil
	}
	return nil, fmt.Errorf("loadshare: unknown strategy %q; valid strategies are %s", strategy, strings.Join(Strategies(), ", "))
}

// PickN returns n distinct candidates (by Name), picked one after another by
// p from what remains. If fewer than n are eligible it returns those it could
// pick together with an error wrapping ErrNoCandidate.
func PickN(p Picker, cands []Candidate, n int) ([]Candidate, error) {
	if n < 0 {
		return nil, fmt.Errorf("loadshare: PickN asked for %d candidates; n must be at least 0", n)
	}
	rest := append([]Candidate(nil), cands...)
	out := make([]Candidate, 0, n)
	for len(out) < n {
		c, err := p.Pick(rest)
		if err != nil {
			return out, fmt.Errorf("loadshare: PickN picked %d of %d: %w", len(out), n, err)
		}
		out = append(out, c)
		kept := rest[:0]
		for _, r := range rest {
			if r.Name != c.Name {
				kept = append(kept, r)
			}
		}
		rest = kept
	}
	return out, nil
}

// base holds what every picker shares: options, the lock and a scratch list
// of eligible candidates (indices into the caller's slice).
type base struct {
	o   Options
	mu  sync.Mutex
	idx []int
}

// eligible fills b.idx with the indices of eligible candidates. Callers hold
// b.mu.
func (b *base) eligible(cands []Candidate) []int {
	b.idx = b.idx[:0]
	for i := range cands {
		if eligible(cands[i], b.o.Params) {
			b.idx = append(b.idx, i)
		}
	}
	return b.idx
}

func noCandidate(cands []Candidate) error {
	return fmt.Errorf("%w among %d offered", ErrNoCandidate, len(cands))
}

// p2c is power-of-two-choices, sound under staleness: the two members are
// sampled by capacity (which does not go stale), and the comparison of their
// Share is trusted with probability 2^(−age/CompareHalfLife) for the older
// of the two ages.
// Otherwise the first sample is kept, which is capacity-weighted random. So
// the picker moves smoothly from two-choices on fresh information to
// weighted random on old information, and the herd a stale comparison can
// cause is bounded: a member's share of work is at most (1+conf) times its
// capacity share.
type p2c struct {
	base
	caps []float64
}

func (p *p2c) Pick(cands []Candidate) (Candidate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pickLocked(cands)
}

func (p *p2c) pickLocked(cands []Candidate) (Candidate, error) {
	idx := p.eligible(cands)
	switch len(idx) {
	case 0:
		return Candidate{}, noCandidate(cands)
	case 1:
		return cands[idx[0]], nil
	}
	p.caps = p.caps[:0]
	total := 0.0
	for _, i := range idx {
		c := cands[i].Cap()
		p.caps = append(p.caps, c)
		total += c
	}
	r := p.o.Rand
	a := sampleExcept(r, p.caps, total, -1)
	b := sampleExcept(r, p.caps, total-p.caps[a], a)
	ca, cb := cands[idx[a]], cands[idx[b]]
	age := max(ca.Age, cb.Age)
	if conf := confidence(age, WeightParams{HalfLife: p.o.CompareHalfLife, MaxAge: -1}); conf < 1 && r.Float64() >= conf {
		return ca, nil
	}
	sa, sb := Share(ca), Share(cb)
	switch {
	case sa > sb:
		return ca, nil
	case sb > sa:
		return cb, nil
	case r.IntN(2) == 0:
		return ca, nil
	}
	return cb, nil
}

// sampleExcept draws an index in proportion to w, skipping skip (whose weight
// is already removed from total).
func sampleExcept(r *rand.Rand, w []float64, total float64, skip int) int {
	x := r.Float64() * total
	last := -1
	for i, v := range w {
		if i == skip {
			continue
		}
		last = i
		if x < v {
			return i
		}
		x -= v
	}
	return last // rounding
}

type weightedRandom struct {
	base
	w []float64
}

func (p *weightedRandom) Pick(cands []Candidate) (Candidate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := p.eligible(cands)
	p.w = p.w[:0]
	total := 0.0
	for _, i := range idx {
		w := frac(p.o.Weigh(cands[i]))
		p.w = append(p.w, w)
		total += w
	}
	if total <= 0 {
		return Candidate{}, noCandidate(cands)
	}
	return cands[idx[sampleExcept(p.o.Rand, p.w, total, -1)]], nil
}

// swrr is nginx's smooth weighted round-robin: every pick adds each member's
// weight to its current value, takes the member with the largest current
// value (the first on a tie) and subtracts the total from it. Current values
// are kept by Name; members that leave the eligible set are forgotten.
type swrr struct {
	base
	names []string       // eligible members at the last pick, in order
	cur   []float64      // their current values
	pos   map[string]int // name → index in names
	spare []float64
}

func (p *swrr) Pick(cands []Candidate) (Candidate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := p.eligible(cands)
	same := len(idx) == len(p.names)
	for j := 0; same && j < len(idx); j++ {
		same = cands[idx[j]].Name == p.names[j]
	}
	if !same { // membership changed: carry current values over by name
		cur := p.spare[:0]
		names := make([]string, 0, len(idx))
		pos := make(map[string]int, len(idx))
		for j, i := range idx {
			name := cands[i].Name
			v := 0.0
			if k, found := p.pos[name]; found {
				v = p.cur[k]
			}
			names = append(names, name)
			cur = append(cur, v)
			pos[name] = j
		}
		p.spare, p.cur, p.names, p.pos = p.cur, cur, names, pos
	}
	total, best := 0.0, -1
	for j, i := range idx {
		w := frac(p.o.Weigh(cands[i]))
		if w <= 0 {
			continue
		}
		p.cur[j] += w
		total += w
		if best < 0 || p.cur[j] > p.cur[best] {
			best = j
		}
	}
	if best < 0 {
		return Candidate{}, noCandidate(cands)
	}
	p.cur[best] -= total
	return cands[idx[best]], nil
}

type localFirst struct {
	base
	off *p2c
	rem []Candidate
}

func (p *localFirst) Pick(cands []Candidate) (Candidate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	local := -1
	p.rem = p.rem[:0]
	for i, c := range cands {
		if c.Local {
			if eligible(c, p.o.Params) {
				local = i
			}
			continue
		}
		p.rem = append(p.rem, c)
	}
	if local >= 0 && Load(cands[local]) < p.o.LocalThreshold {
		return cands[local], nil
	}
	c, err := p.off.pickLocked(p.rem)
	if err != nil && local >= 0 {
		return cands[local], nil
	}
	if err != nil {
		return Candidate{}, noCandidate(cands)
	}
	return c, nil
}

type roundRobin struct {
	base
	next uint64
}

func (p *roundRobin) Pick(cands []Candidate) (Candidate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := p.eligible(cands)
	if len(idx) == 0 {
		return Candidate{}, noCandidate(cands)
	}
	c := cands[idx[p.next%uint64(len(idx))]]
	p.next++
	return c, nil
}

type uniform struct{ base }

func (p *uniform) Pick(cands []Candidate) (Candidate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := p.eligible(cands)
	if len(idx) == 0 {
		return Candidate{}, noCandidate(cands)
	}
	return cands[idx[p.o.Rand.IntN(len(idx))]], nil
}

type leastLoaded struct{ base }

func (p *leastLoaded) Pick(cands []Candidate) (Candidate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := p.eligible(cands)
	if len(idx) == 0 {
		return Candidate{}, noCandidate(cands)
	}
	best, bestShare, ties := -1, 0.0, 0
	for _, i := range idx {
		s := Share(cands[i])
		switch {
		case best < 0 || s > bestShare:
			best, bestShare, ties = i, s, 1
		case s == bestShare:
			ties++ // reservoir sampling among ties
			if p.o.Rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return cands[best], nil
}

// compile-time interface checks
var (
	_ Picker = (*p2c)(nil)
	_ Picker = (*weightedRandom)(nil)
	_ Picker = (*swrr)(nil)
	_ Picker = (*localFirst)(nil)
	_ Picker = (*roundRobin)(nil)
	_ Picker = (*uniform)(nil)
	_ Picker = (*leastLoaded)(nil)
)
