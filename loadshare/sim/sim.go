// Package sim is a discrete-event simulation of Shoal's load sharing: many
// independent senders place jobs on many hosts, each sender choosing through
// a loadshare.Picker over its own, independently refreshed (and so stale)
// copy of the hosts' gossiped load.
//
// # Model
//
// Time is measured in mean service times of a speed-1 host. There are
// len(Hosts.Speeds) hosts, each a FIFO single server whose jobs take an
// exponential time of mean 1/speed. Jobs arrive as one Poisson stream at
// Load × (sum of speeds); each comes from one of Senders senders chosen
// uniformly, so every sender is itself a Poisson source.
//
// A host gossips two figures: its queue length (jobs present, including the
// one in service), given to pickers as Candidate.LoadAvg with Cores = speed,
// and its busy fraction smoothed with time constant SmoothTau, given as
// Candidate.CPUPercent. A sender's copy of each host's figures is refreshed
// every Refresh time units at a phase drawn at random per (sender, host) pair,
// as gossip delivers members' updates independently; so information age is
// uniform on [0, Refresh). Candidate.Age is that age with one time unit
// mapped to TimeUnit. Refresh 0 means every sender sees the live state.
//
// Round-robin-like pickers are advanced by a random number of picks before
// the run, so that the senders do not start in step.
//
// # Figures
//
// For jobs arriving after Warmup: mean and 99th percentile of time in system.
// Sampling the hosts once per time unit after Warmup: the mean over samples
// of max/mean queue length across hosts, and of the coefficient of variation
// (standard deviation / mean) of queue lengths across hosts.
//
// Runs are deterministic for a given Config.
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoalmesh/shoal/loadshare"
)

// TimeUnit is the wall-clock duration one mean service time stands for when
// ages are handed to pickers (and so compared with their HalfLife).
const TimeUnit = time.Second

// HostSet is a named list of host speeds.
type HostSet struct {
	// Name labels the set in tables.
	Name string
	// Speeds holds one service rate per host (1 = one job per time unit).
	Speeds []float64
}

// EqualHosts returns n hosts of speed 1.
func EqualHosts(n int) HostSet {
	s := make([]float64, n)
	for i := range s {
		s[i] = 1
	}
	return HostSet{Name: "equal", Speeds: s}
}

// MixedHosts returns n hosts of which the first half have speed 1 and the
// rest speed 3.
func MixedHosts(n int) HostSet {
	s := make([]float64, n)
	for i := range s {
		s[i] = 1
		if i >= n/2 {
			s[i] = 3
		}
	}
	return HostSet{Name: "mixed", Speeds: s}
}

// PickerSpec names a picker and makes one per sender.
type PickerSpec struct {
	// Name labels the picker in tables.
	Name string
	// New makes one sender's picker from that sender's random source.
	New func(r *rand.Rand) (loadshare.Picker, error)
	// Stagger advances each sender's picker by a random number of picks,
	// up to Stagger, before the run (for round-robin forms).
	Stagger int
	// Role is RoleDefault, RoleRR, RoleRandom, RoleFailure or "".
	Role string
	// Blind marks pickers that read neither load nor age: the simulator
	// then leaves the snapshot alone (same result, less work), and a grid
	// runs them once per host set and load.
	Blind bool
}

// Config describes one simulation run.
type Config struct {
	// Hosts are the servers.
	Hosts HostSet
	// Senders is the number of independent senders (default 100).
	Senders int
	// Load is the arrival rate as a fraction of total capacity, in (0, 1).
	Load float64
	// Refresh is the period, in time units, at which each sender's copy of
	// each host's figures is refreshed; 0 means live information.
	Refresh float64
	// SmoothTau is the time constant of the gossiped busy fraction
	// (default 1).
	SmoothTau float64
	// Duration is the simulated time; Warmup the initial part left out of
	// the figures.
	Duration, Warmup float64
	// Seed seeds every random source of the run.
	Seed uint64
	// Picker is the strategy under test.
	Picker PickerSpec
}

// Result holds a run's figures; see the package doc.
type Result struct {
	// Jobs is the number of jobs measured.
	Jobs int
	// Mean and P99 are time in system, in mean service times.
	Mean, P99 float64
	// MaxOverMean is the mean over samples of max/mean queue length.
	MaxOverMean float64
	// CV is the mean over samples of the coefficient of variation of
	// queue lengths.
	CV float64
	// MaxOverMeanWork is MaxOverMean for work queued, queue length divided
	// by host speed (on equal hosts it equals MaxOverMean).
	MaxOverMeanWork float64
	// MeanQueue is the mean queue length per host.
	MeanQueue float64
}

type rec struct {
	t    float64
	q    int
	u    float64
	busy bool
}

type host struct {
	speed float64
	q     int
	jobs  []float64 // arrival times, FIFO; head at jobs[head]
	head  int
	// smoothed busy fraction: value u at time ut, moving toward busy
	u, ut float64
	hist  []rec
	hh    int // first live record in hist
}

func (h *host) uAt(t, tau float64) float64 {
	b := 0.0
	if h.q > 0 {
		b = 1
	}
	return b + (h.u-b)*math.Exp(-(t-h.ut)/tau)
}

// change records a queue change at t.
func (h *host) change(t, tau, keep float64, dq int) {
	h.u, h.ut = h.uAt(t, tau), t
	h.q += dq
	if keep < 0 {
		return
	}
	h.hist = append(h.hist, rec{t: t, q: h.q, u: h.u, busy: h.q > 0})
	for h.hh+1 < len(h.hist) && h.hist[h.hh+1].t <= t-keep {
		h.hh++
	}
	if h.hh > 1024 && h.hh > len(h.hist)/2 {
		n := copy(h.hist, h.hist[h.hh:])
		h.hist, h.hh = h.hist[:n], 0
	}
}

// at returns the gossiped figures as they were at time tau0 (≥ now−keep).
func (h *host) at(t0, tau float64) (q int, u float64) {
	live := h.hist[h.hh:]
	i := search(live, t0)
	if i < 0 {
		return 0, 0
	}
	r := live[i]
	b := 0.0
	if r.busy {
		b = 1
	}
	return r.q, b + (r.u-b)*math.Exp(-(t0-r.t)/tau)
}

// search returns the index of the last record with time ≤ t, or −1.
func search(rs []rec, t float64) int {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := (lo + hi) / 2
		if rs[m].t <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// departure heap: one pending departure per busy host.
type dep struct {
	t float64
	h int
}

type depHeap []dep

func (d *depHeap) push(x dep) {
	*d = append(*d, x)
	s := *d
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].t <= s[i].t {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (d *depHeap) pop() dep {
	s := *d
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].t < s[m].t {
			m = l
		}
		if r < n && s[r].t < s[m].t {
			m = r
		}
		if m == i {
			break
		}
		s[m], s[i] = s[i], s[m]
		i = m
	}
	*d = s
	return top
}

func (c *Config) validate() error {
	if len(c.Hosts.Speeds) < 2 {
		return fmt.Errorf("sim: %d hosts; need at least 2", len(c.Hosts.Speeds))
	}
	for i, s := range c.Hosts.Speeds {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("sim: host %d has speed %v; speeds must be positive and finite", i, s)
		}
	}
	if c.Senders == 0 {
		c.Senders = 100
	}
	if c.Senders < 0 {
		return fmt.Errorf("sim: Senders %d is negative", c.Senders)
	}
	if !(c.Load > 0 && c.Load < 1) {
		return fmt.Errorf("sim: Load %v is outside (0, 1)", c.Load)
	}
	if !(c.Refresh >= 0) || math.IsInf(c.Refresh, 0) {
		return fmt.Errorf("sim: Refresh %v must be a finite number ≥ 0", c.Refresh)
	}
	if c.SmoothTau == 0 {
		c.SmoothTau = 1
	}
	if !(c.SmoothTau > 0) {
		return fmt.Errorf("sim: SmoothTau %v must be positive", c.SmoothTau)
	}
	if !(c.Duration > c.Warmup && c.Warmup >= 0) {
		return fmt.Errorf("sim: Duration %v must exceed Warmup %v ≥ 0", c.Duration, c.Warmup)
	}
	if c.Picker.New == nil {
		return errors.New("sim: Picker.New is nil")
	}
	return nil
}

// Run simulates one configuration.
func Run(cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	n, ns := len(cfg.Hosts.Speeds), cfg.Senders
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	hosts := make([]host, n)
	names := make([]string, n)
	total := 0.0
	keep := -1.0
	if cfg.Refresh > 0 {
		keep = cfg.Refresh + 1
	}
	for i, s := range cfg.Hosts.Speeds {
		hosts[i] = host{speed: s}
		if keep >= 0 {
			hosts[i].hist = []rec{{t: 0}}
		}
		names[i] = fmt.Sprintf("h%03d", i)
		total += s
	}
	// Senders: picker, snapshot, per-entry refresh phase and epoch.
	pickers := make([]loadshare.Picker, ns)
	snaps := make([][]loadshare.Candidate, ns)
	phase := make([]float64, ns*n)
	epoch := make([]int64, ns*n)
	for s := range ns {
		p, err := cfg.Picker.New(rand.New(rand.NewPCG(cfg.Seed, uint64(s)+1)))
		if err != nil {
			return Result{}, fmt.Errorf("sim: picker %q: %w", cfg.Picker.Name, err)
		}
		snaps[s] = make([]loadshare.Candidate, n)
		for h := range n {
			snaps[s][h] = loadshare.Candidate{Name: names[h], Alive: true, Cores: hosts[h].speed}
			phase[s*n+h] = rng.Float64() * cfg.Refresh
			epoch[s*n+h] = math.MinInt64
		}
		if cfg.Picker.Stagger > 0 {
			for range rng.IntN(cfg.Picker.Stagger) {
				if _, err := p.Pick(snaps[s]); err != nil {
					return Result{}, err
				}
			}
		}
		pickers[s] = p
	}
	idx := make(map[string]int, n)
	for i, nm := range names {
		idx[nm] = i
	}

	lambda := cfg.Load * total
	nextArr := rng.ExpFloat64() / lambda
	var deps depHeap
	soj := make([]float64, 0, int(lambda*(cfg.Duration-cfg.Warmup)*1.05))
	nextSample := cfg.Warmup
	var sumMOM, sumMOMW, sumCV, sumQ float64
	samples := 0
	sample := func() {
		sum, sq, mx, sumW, mxW := 0.0, 0.0, 0, 0.0, 0.0
		for i := range hosts {
			q := hosts[i].q
			sum += float64(q)
			sq += float64(q * q)
			mx = max(mx, q)
			w := float64(q) / hosts[i].speed
			sumW += w
			mxW = max(mxW, w)
		}
		mean := sum / float64(n)
		samples++
		sumQ += mean
		if mean > 0 {
			sumMOM += float64(mx) / mean
			sumMOMW += mxW / (sumW / float64(n))
			sd := math.Sqrt(math.Max(0, sq/float64(n)-mean*mean))
			sumCV += sd / mean
		}
	}
	for {
		t := nextArr
		isDep := len(deps) > 0 && deps[0].t < t
		if isDep {
			t = deps[0].t
		}
		if t > cfg.Duration {
			break
		}
		for nextSample <= t {
			sample()
			nextSample++
		}
		if isDep {
			d := deps.pop()
			h := &hosts[d.h]
			arr := h.jobs[h.head]
			h.head++
			if h.head > 4096 && h.head > len(h.jobs)/2 {
				k := copy(h.jobs, h.jobs[h.head:])
				h.jobs, h.head = h.jobs[:k], 0
			}
			if arr >= cfg.Warmup {
				soj = append(soj, t-arr)
			}
			h.change(t, cfg.SmoothTau, keep, -1)
			if h.q > 0 {
				deps.push(dep{t + rng.ExpFloat64()/h.speed, d.h})
			}
			continue
		}
		// Arrival.
		nextArr = t + rng.ExpFloat64()/lambda
		s := rng.IntN(ns)
		snap := snaps[s]
		for h := range n {
			if cfg.Picker.Blind {
				break
			}
			c := &snap[h]
			if cfg.Refresh == 0 {
				c.LoadAvg = float64(hosts[h].q)
				c.CPUPercent = 100 * hosts[h].uAt(t, cfg.SmoothTau)
				c.Age = 0
				continue
			}
			ph := phase[s*n+h]
			k := int64(math.Floor((t - ph) / cfg.Refresh))
			t0 := ph + float64(k)*cfg.Refresh
			if k != epoch[s*n+h] {
				epoch[s*n+h] = k
				q, u := hosts[h].at(t0, cfg.SmoothTau)
				c.LoadAvg, c.CPUPercent = float64(q), 100*u
			}
			c.Age = time.Duration((t - t0) * float64(TimeUnit))
		}
		pick, err := pickers[s].Pick(snap)
		if err != nil {
			return Result{}, fmt.Errorf("sim: picker %q at t=%.1f: %w", cfg.Picker.Name, t, err)
		}
		hi := idx[pick.Name]
		h := &hosts[hi]
		h.jobs = append(h.jobs, t)
		h.change(t, cfg.SmoothTau, keep, +1)
		if h.q == 1 {
			deps.push(dep{t + rng.ExpFloat64()/h.speed, hi})
		}
	}
	res := Result{Jobs: len(soj)}
	if len(soj) == 0 {
		return res, fmt.Errorf("sim: no job completed after warm-up %v of %v", cfg.Warmup, cfg.Duration)
	}
	sum := 0.0
	for _, v := range soj {
		sum += v
	}
	res.Mean = sum / float64(len(soj))
	slices.Sort(soj)
	res.P99 = soj[int(math.Ceil(0.99*float64(len(soj))))-1]
	if samples > 0 {
		res.MaxOverMean = sumMOM / float64(samples)
		res.MaxOverMeanWork = sumMOMW / float64(samples)
		res.CV = sumCV / float64(samples)
		res.MeanQueue = sumQ / float64(samples)
	}
	return res, nil
}
