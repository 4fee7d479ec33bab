package nemesis

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a fault.
type Kind string

// The faults.
const (
	Kill9        Kind = "kill-9"         // SIGKILL; restarted (same data dir) after Hold
	KillRestart  Kind = "kill-restart"   // SIGKILL; restarted after 1-3 s
	Stop1        Kind = "stop-one"       // SIGSTOP one node for Hold, then SIGCONT
	StopMajority Kind = "stop-majority"  // SIGSTOP a majority for Hold, then SIGCONT
	Partition    Kind = "partition"      // Nodes | the rest, both ways, for Hold
	OneWay       Kind = "partition-1way" // packets from Nodes to the rest dropped, for Hold
	Leave        Kind = "leave"          // SIGTERM (graceful leave); rejoins after Hold
)

// Kinds are the faults a random schedule draws from.
var Kinds = []Kind{Kill9, KillRestart, Stop1, StopMajority, Partition, OneWay, Leave}

// Fault is one step of a schedule. Nodes are indices (0-based) into the
// mesh; with Coord the coordinator at the time is made the first target
// (swapped in for Nodes[0] unless it is already a target).
type Fault struct {
	Seq   int
	Kind  Kind
	Nodes []int
	Coord bool
	Hold  time.Duration // how long the fault lasts
	Gap   time.Duration // quiet time after the heal, before the next fault
}

func (f Fault) String() string {
	var ns []string
	for _, i := range f.Nodes {
		ns = append(ns, fmt.Sprintf("n%d", i+1))
	}
	c := ""
	if f.Coord {
		c = " (+coordinator)"
	}
	return fmt.Sprintf("#%d %s [%s]%s hold %v gap %v", f.Seq, f.Kind, strings.Join(ns, " "), c, f.Hold, f.Gap)
}

// Generate draws a schedule from seed for a mesh of n nodes: faults until
// their holds and gaps add up to at least total. gap is the least quiet time
// after each heal (the liveness bound); one to three seconds are added.
func Generate(seed uint64, n int, total, gap time.Duration) []Fault {
	r := newRand(seed)
	dur := func(lo, hi time.Duration) time.Duration {
		ms := r.Int64N(int64((hi-lo)/time.Millisecond)+1) + int64(lo/time.Millisecond)
		return time.Duration(ms/100*100) * time.Millisecond // tenths of a second, for a readable schedule
	}
	pick := func(k int) []int { return r.Perm(n)[:k] }
	majority := n/2 + 1
	var out []Fault
	var sum time.Duration
	for i := 1; sum < total; i++ {
		f := Fault{Seq: i, Kind: Kinds[r.IntN(len(Kinds))], Coord: r.IntN(2) == 0}
		switch f.Kind {
		case Kill9:
			f.Nodes, f.Hold = pick(1), dur(3*time.Second, 8*time.Second)
		case KillRestart:
			f.Nodes, f.Hold = pick(1), dur(time.Second, 3*time.Second)
		case Stop1:
			f.Nodes, f.Hold = pick(1), dur(time.Second, 8*time.Second)
		case StopMajority:
			f.Nodes, f.Hold = pick(majority), dur(2*time.Second, 8*time.Second)
		case Partition, OneWay:
			// One side has 1..n/2 nodes (a minority); which side holds the
			// coordinator is drawn too.
			f.Nodes, f.Hold = pick(1+r.IntN(n/2)), dur(3*time.Second, 10*time.Second)
		case Leave:
			f.Nodes, f.Hold = pick(1), dur(2*time.Second, 5*time.Second)
		}
		f.Gap = gap + dur(time.Second, 3*time.Second)
		sum += f.Hold + f.Gap
		out = append(out, f)
	}
	return out
}

// FormatSchedule is the schedule, one fault a line.
func FormatSchedule(seed uint64, fs []Fault) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %d faults:\n", seed, len(fs))
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
