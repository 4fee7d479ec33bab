package loadshare

import (
	"math"
	"time"
)

// Candidate is one member of the mesh as seen from the gossiped load table: a
// possible destination for a piece of work. The figures are as the member last
// reported them; Age says how old that report is.
type Candidate struct {
	// Name is the member's unique node name. Pickers that keep state per
	// member (smooth weighted round-robin) key it by Name.
	Name string
	// Addr is where work is sent, host:port.
	Addr string
	// Tags are the member's gossiped tags (service=…, region=…, capacity=…).
	Tags map[string]string
	// Alive is false for members the failure detector suspects or has
	// declared dead; they are never picked.
	Alive bool
	// Local marks the member this process runs on.
	Local bool
	// CPUPercent is the smoothed CPU busy fraction, 0–100.
	CPUPercent float64
	// MemPercent is memory in use, 0–100.
	MemPercent float64
	// Cores is the number of CPUs (or the CPU quota of the container).
	Cores float64
	// Capacity is a relative capacity from the "capacity" tag; 0 means use
	// Cores.
	Capacity float64
	// LoadAvg is the amount of work present on the member: its run queue
	// (load average) or requests in flight, in the same units as Cores.
	// 0 means idle or unknown.
	LoadAvg float64
	// NetRxBps and NetTxBps are received and transmitted bytes per second.
	NetRxBps, NetTxBps float64
	// NetCapacityBps is the link speed in bytes per second; 0 means unknown,
	// and then the network does not count toward load.
	NetCapacityBps float64
	// Age is how old the figures above are: the time since the member took
	// the sample, as far as the local agent can tell.
	Age time.Duration
}

// Cap returns the candidate's capacity: Capacity when set, else Cores, else 1.
// A zero, negative or non-finite figure counts as unset.
func (c Candidate) Cap() float64 {
	if c.Capacity > 0 && c.Capacity <= math.MaxFloat64 {
		return c.Capacity
	}
	if c.Cores > 0 && c.Cores <= math.MaxFloat64 {
		return c.Cores
	}
	return 1
}

// Load returns the fraction of the candidate's capacity in use: the largest
// of its CPU busy fraction, its run queue per core, its memory fraction and
// its network utilisation (when the link speed is known). It is 0 for an idle
// member and may exceed 1 when work is queued.
func Load(c Candidate) float64 {
	l := frac(c.CPUPercent / 100)
	cores := c.Cores
	if !(cores > 0 && cores <= math.MaxFloat64) {
		cores = c.Cap()
	}
	l = math.Max(l, frac(c.LoadAvg/cores))
	l = math.Max(l, frac(c.MemPercent/100))
	if ok(c.NetCapacityBps) && c.NetCapacityBps > 0 {
		l = math.Max(l, frac(math.Max(c.NetRxBps, c.NetTxBps)/c.NetCapacityBps))
	}
	return l
}

// Share returns the service rate a new unit of work can expect on the
// candidate: its capacity divided by one plus the work already there
// (Cap / (1 + Cap·Load)). With a FIFO queue of q jobs on a server of speed s
// it is s/(1+q), the inverse of the expected time in system. Higher is
// better; power-of-two-choices and least-loaded compare it.
func Share(c Candidate) float64 {
	cp := c.Cap()
	return cp / (1 + cp*Load(c))
}

func ok(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// frac maps NaN, ±Inf and negatives to 0.
func frac(f float64) float64 {
	if !ok(f) || f < 0 {
		return 0
	}
	return f
}

// Predicate selects candidates; see Filter.
type Predicate func(Candidate) bool

// Filter returns the candidates for which every predicate holds, in their
// original order. It allocates a new slice and leaves cands unchanged.
func Filter(cands []Candidate, preds ...Predicate) []Candidate {
	out := make([]Candidate, 0, len(cands))
next:
	for _, c := range cands {
		for _, p := range preds {
			if !p(c) {
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

// HasTag selects candidates whose tag key equals value, e.g.
// HasTag("service", "api") or HasTag("region", "eu-west").
func HasTag(key, value string) Predicate {
	return func(c Candidate) bool {
		v, found := c.Tags[key]
		return found && v == value
	}
}

// IsAlive selects members the failure detector considers alive.
func IsAlive(c Candidate) bool { return c.Alive }

// IsRemote selects every member but the local one.
func IsRemote(c Candidate) bool { return !c.Local }

// FresherThan selects candidates whose information is at most maxAge old.
func FresherThan(maxAge time.Duration) Predicate {
	return func(c Candidate) bool { return c.Age <= maxAge }
}
