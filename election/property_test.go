package election

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestProperty drives many seeded random meshes through failures, recoveries,
// partitions (seen by the failure detector or not yet), heals, pauses and
// resumes the detector does not see, quick restarts, joins, leaves, requests
// and message loss and delay, then
// lets each settle without loss and checks it against the naive reference.
// Throughout, the Sim checks that no two holders act under one term and that
// no node acts on a minority side.
func TestProperty(t *testing.T) {
	runs := *propertyRuns
	if testing.Short() {
		runs = min(runs, 60)
	}
	checked := 0
	for seed := range uint64(runs) {
		for _, preempt := range []bool{true, false} {
			switch err := propertyRun(seed, preempt); err {
			case nil:
				checked++
			case errNoMajority:
			default:
				t.Fatalf("seed %d preempt=%t: %v", seed, preempt, err)
			}
		}
	}
	t.Logf("%d of %d runs ended with a side that holds a quorum (checked against the reference)", checked, 2*runs)
	if checked < runs {
		t.Errorf("only %d of %d runs could be checked against the reference", checked, 2*runs)
	}
}

var propertyRuns = flag.Int("property-runs", 300, "seeds for TestProperty (each run twice: Preempt on and off)")

// TestPropertyRegressions replays seeds that once failed TestProperty
// (found with -property-runs 3000 and more), whatever -property-runs is.
func TestPropertyRegressions(t *testing.T) {
	for _, c := range []struct {
		seed    uint64
		preempt bool
		why     string
	}{
		// Each fails if the fix it names is undone (checked when added).
		{208, false, "did not settle: a member that suspected the coordinator refused its renewal under the number it had promised a lower rank"},
		{344, true, "did not settle: the same, with Preempt"},
		{48, false, "did not settle: a member kept the winner's own claim deferred after granting its lease"},
		{140, true, "did not settle: the same, with Preempt"},
		{1637, true, "minority violation: a revived coordinator was checked before its view showed the partition"},
		{338, false, "did not settle: a member refused every renewal under a stale promise to a claimant that never won"},
		{863, true, "did not settle: the same, with Preempt"},
		// The generator once drew these outside the membership assumption.
		{1407, false, "did not settle: a member joined while another was paused"},
		{4528, false, "one term number won twice: two joins while no coordinator acted"},
	} {
		if err := propertyRun(c.seed, c.preempt); err != nil && err != errNoMajority {
			t.Errorf("seed %d preempt=%t (once: %s): %v", c.seed, c.preempt, c.why, err)
		}
	}
}

var debugRun bool

var traceHook func(string)

var errNoMajority = errors.New("no side holds a quorum")

func propertyRun(seed uint64, preempt bool) error {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	cfg := FastConfig()
	cfg.Preempt = preempt
	cfg.PreemptDelay = rng.IntN(4)
	s := NewSim(SimConfig{Seed: seed, Loss: rng.Float64() * 0.3, MaxDelay: rng.IntN(3), Node: cfg})
	if debugRun {
		s.Trace = func(l string) { fmt.Println(l) }
	}
	if traceHook != nil {
		s.Trace = traceHook
	}
	next := 0
	add := func() error {
		next++
		_, err := s.AddNode(fmt.Sprintf("n%02d", next), rng.IntN(3))
		return err
	}
	for range 3 + rng.IntN(7) {
		if err := add(); err != nil {
			return err
		}
	}
	pick := func(up bool) string {
		var c []string
		for _, n := range s.Names() {
			if s.Up(n) == up {
				c = append(c, n)
			}
		}
		if len(c) == 0 {
			return ""
		}
		return c[rng.IntN(len(c))]
	}
	var trace []string
	var paused []string
	partitioned := false
	for range 10 + rng.IntN(30) {
		switch op := rng.IntN(16); {
		case op < 2:
			if n := pick(true); n != "" {
				trace = append(trace, "kill "+n)
				_ = s.Kill(n)
			}
		case op < 4:
			if n := pick(false); n != "" {
				trace = append(trace, "revive "+n)
				_ = s.Revive(n)
			}
		case op < 5:
			names := s.Names()
			rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			k := 1 + rng.IntN(len(names))
			trace = append(trace, fmt.Sprintf("partition %v / %v", names[:k], names[k:]))
			_ = s.Partition(names[:k], names[k:])
			partitioned = true
		case op < 6:
			trace = append(trace, "heal")
			s.Heal()
			partitioned = false
		case op < 9:
			if n := pick(true); n != "" {
				trace = append(trace, "request "+n)
				_ = s.Request(n)
			}
		case op < 10:
			// Joins (and leaves) only under the membership assumption
			// of the package doc, under which term numbers are unique;
			// TestTermNumberReuse shows what the full term and the Fence
			// do outside it.
			if len(s.Names()) < 12 && membershipMayChange(s, partitioned, len(paused)) {
				trace = append(trace, "add")
				if err := add(); err != nil {
					return err
				}
			}
		case op < 11:
			if len(s.Names()) > 3 && rng.IntN(3) == 0 && membershipMayChange(s, partitioned, len(paused)) {
				n := pick(true)
				trace = append(trace, "leave "+n)
				_ = s.Leave(n)
			}
		case op < 12:
			p := rng.Float64() * 0.3
			trace = append(trace, fmt.Sprintf("loss %.2f", p))
			s.SetLoss(p)
		case op < 13:
			// A stop the failure detector does not see (SIGSTOP, GC).
			if n := pick(true); n != "" {
				trace = append(trace, "pause "+n)
				_ = s.Pause(n)
				paused = append(paused, n)
			}
		case op < 14:
			if len(paused) > 0 {
				n := paused[0]
				paused = paused[1:]
				trace = append(trace, "resume "+n)
				_ = s.Resume(n)
			}
		case op < 15:
			// A partition the failure detector has not seen yet.
			names := s.Names()
			rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			k := 1 + rng.IntN(len(names))
			trace = append(trace, fmt.Sprintf("cut %v / %v", names[:k], names[k:]))
			_ = s.Cut(names[:k], names[k:])
			partitioned = true
		default:
			// Killed and restarted at once with the same HardState.
			if n := pick(true); n != "" {
				trace = append(trace, "restart "+n)
				_ = s.Restart(n)
				paused = slices.DeleteFunc(paused, func(p string) bool { return p == n })
			}
		}
		steps := rng.IntN(10)
		for range steps {
			s.Step()
		}
		trace = append(trace, fmt.Sprintf("step %d", steps))
	}
	s.SetLoss(0)
	for _, n := range paused {
		_ = s.Resume(n)
	}
	s.Reveal() // the failure detector catches up with a cut in the end
	maj := s.Majority()
	if debugRun {
		fmt.Println(dump(s))
	}
	for _, n := range maj {
		_ = s.Request(n)
	}
	if debugRun {
		for range 30 {
			s.TickAll()
			for _, d := range s.Deliver(nil) {
				fmt.Println(s.now, d.Msg, d.Why)
			}
		}
		fmt.Println(dump(s))
	}
	if _, ok := s.Settle(3000); !ok {
		return fmt.Errorf("did not settle; trace %v\n%s", trace, dump(s))
	}
	if v := s.Violations(); len(v) > 0 {
		return fmt.Errorf("invariants violated: %v; trace %v", v, trace)
	}
	if maj == nil {
		return errNoMajority
	}
	for _, n := range maj {
		if st := s.Node(n).Status(); st.QuorumSeen < st.Quorum {
			// Members failed while this side saw no quorum and were never
			// removed (no graceful leave): by design the side waits for
			// them or for an operator's force-leave.
			return errNoMajority
		}
	}
	coord := s.Node(maj[0]).Status().Coordinator
	for _, n := range maj {
		if c := s.Node(n).Status().Coordinator; c != coord {
			return fmt.Errorf("%s names %q, %s names %q; trace %v\n%s", maj[0], coord, n, c, trace, dump(s))
		}
	}
	if !slices.Contains(maj, coord) {
		return fmt.Errorf("coordinator %q is not on the majority side %v; trace %v\n%s", coord, maj, trace, dump(s))
	}
	if !s.Node(coord).Acting() {
		return fmt.Errorf("coordinator %q does not act; trace %v", coord, trace)
	}
	for _, n := range s.Names() {
		if n != coord && s.Up(n) && s.Node(n).Acting() {
			return fmt.Errorf("%s acts besides %s; trace %v", n, coord, trace)
		}
	}
	if preempt {
		if want := s.Highest(maj); coord != want {
			return fmt.Errorf("coordinator %q, reference (highest alive rank) %q; trace %v", coord, want, trace)
		}
	}
	return nil
}

func dump(s *Sim) string {
	var b strings.Builder
	for _, n := range s.Names() {
		fmt.Fprintf(&b, "up=%t busy=%t %v %v\n", s.Up(n), s.Node(n).Busy(), s.Node(n).Status(), s.Node(n))
	}
	return b.String()
}

// membershipMayChange is the assumption of the package doc: the member set
// changes only while every member is up and connected, so that whoever
// acknowledged the last term is there to refuse its number again, and once
// the last newcomer has heard the latest term number (in the package doc,
// the acting coordinator announces it; here no coordinator need act, so
// the test waits until every member knows the number): two sets that differ
// by more than one member have majorities that need not intersect, and a
// claimant that never heard of a number could win it again (seed 4528: two
// joins in a row while no coordinator acted, and a newcomer won term 1 a
// second time with the other newcomer and a member that had been down).
// A paused member is not there either: it would resume with the old set,
// and if members are lost meanwhile, count the newcomer out of a quorum
// that needs it (seed 1407).
func membershipMayChange(s *Sim, partitioned bool, paused int) bool {
	if partitioned || paused > 0 {
		return false
	}
	var terms []uint64
	for _, n := range s.Names() {
		if !s.Up(n) {
			return false
		}
		terms = append(terms, s.Node(n).HardState().MaxTerm)
	}
	return slices.Min(terms) == slices.Max(terms)
}
