package election

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// failoverTrial is one coordinator failure in the simulation, measured in
// ticks from the moment the coordinator stops.
type failoverTrial struct {
	first int // the first survivor names a new coordinator
	all   int // every survivor names the same new coordinator under a higher term
	acts  int // and it acts
	// claims is how many terms the survivors claimed meanwhile: 1 unless
	// a lower rank claimed before the higher one's claim reached it.
	claims int
}

// measureFailover builds a mesh of n nodes with cfg, elects a coordinator,
// lets a random number of ticks of the renewal cycle pass, and stops the
// coordinator the way kill -9 does in the first seconds: it neither ticks
// nor answers, and the failure detector still sees it alive (serf takes
// seconds longer than a lease to notice), so the members find out by the
// renewals that stop. It then steps until every survivor names the same
// new coordinator under a higher term, and that one acts.
func measureFailover(t testing.TB, n int, seed uint64, loss float64, maxDelay int, cfg Config) failoverTrial {
	t.Helper()
	s, names := electedSim(t, n, SimConfig{Seed: seed, Loss: loss, MaxDelay: maxDelay, Node: cfg})
	rng := rand.New(rand.NewPCG(seed, 0xfa11))
	for range 5*cfg.RenewTicks + rng.IntN(cfg.RenewTicks*7) {
		s.Step() // steady renewals, then a random point in the cycle
	}
	old := s.Node(names[0]).Status()
	if !s.Node(old.Coordinator).Acting() {
		t.Fatalf("N=%d seed %d: %s does not act", n, seed, old.Coordinator)
	}
	if err := s.Pause(old.Coordinator); err != nil {
		t.Fatal(err)
	}
	survivors := slices.DeleteFunc(slices.Clone(names), func(x string) bool { return x == old.Coordinator })
	claims0 := map[string]uint64{}
	for _, x := range survivors {
		claims0[x] = s.Node(x).Metrics().ClaimsStarted
	}
	tr := failoverTrial{first: -1, all: -1, acts: -1}
	for k := 1; k <= 500; k++ {
		s.Step()
		named, agree := false, true
		c0 := s.Node(survivors[0]).Status()
		for _, x := range survivors {
			st := s.Node(x).Status()
			if st.Coordinator != "" && st.Coordinator != old.Coordinator && st.Term > old.Term {
				named = true
			}
			if st.Coordinator != c0.Coordinator || st.Term != c0.Term {
				agree = false
			}
		}
		if named && tr.first < 0 {
			tr.first = k
		}
		if agree && tr.all < 0 && c0.Coordinator != "" && c0.Coordinator != old.Coordinator && c0.Term > old.Term {
			tr.all = k
		}
		if tr.all >= 0 && s.Node(c0.Coordinator).Acting() {
			tr.acts = k
			break
		}
	}
	if tr.acts < 0 {
		t.Fatalf("N=%d seed %d: no failover within 500 ticks\n%s", n, seed, dump(s))
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("N=%d seed %d: %v", n, seed, v)
	}
	for _, x := range survivors {
		tr.claims += int(s.Node(x).Metrics().ClaimsStarted - claims0[x])
	}
	return tr
}

type failoverStats struct {
	firstP50, allP50, allMax, actsP50 int
	raced                             int // failovers in which more than one term was claimed
}

func failoverSummary(trs []failoverTrial) failoverStats {
	pick := func(f func(failoverTrial) int) []int {
		var v []int
		for _, tr := range trs {
			v = append(v, f(tr))
		}
		slices.Sort(v)
		return v
	}
	first := pick(func(tr failoverTrial) int { return tr.first })
	all := pick(func(tr failoverTrial) int { return tr.all })
	acts := pick(func(tr failoverTrial) int { return tr.acts })
	raced := 0
	for _, tr := range trs {
		if tr.claims > 1 {
			raced++
		}
	}
	return failoverStats{first[len(first)/2], all[len(all)/2], all[len(all)-1], acts[len(acts)/2], raced}
}

// electedSim is a simulation of n members (priorities 0-2 in turn) that
// has elected its first coordinator, and the members' names.
func electedSim(t testing.TB, n int, sc SimConfig) (*Sim, []string) {
	t.Helper()
	s := NewSim(sc)
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{Name: fmt.Sprintf("n%04d", i), Priority: i % 3}
	}
	if err := s.AddNodes(ms...); err != nil {
		t.Fatal(err)
	}
	names := s.Names()
	_ = s.Request(names[0])
	if _, ok := s.Settle(3000); !ok {
		t.Fatalf("N=%d seed %d: no first coordinator", n, sc.Seed)
	}
	return s, names
}

// TestFailoverTicks measures failover in the simulation with DefaultConfig
// (the lan profile's LeaseTicks 10, RenewTicks 3, DriftTicks 2, at 100 ms
// a tick): the coordinator of N nodes stops at a random tick of its
// renewal cycle, unseen by the failure detector (kill -9), and the test
// counts the ticks until every survivor names the same new coordinator
// under a higher term. Messages take one tick (the simulation's shortest
// delay, far above a LAN's), or one to two with 1% loss.
//
// With loss, a lower rank that found the loss up to RenewTicks before the
// highest (it missed the last renewal) claims after AnswerTimeout, before
// the highest rank's claim reaches it: two claimants in 7-11 of 40 kills,
// a wasted round of N claims and refusals. Waiting RenewTicks more removes
// that, but costs RenewTicks wherever a higher rank is cut off unseen,
// the majority side of a partition among them (the nemesis tier's
// TestMinorityStopsMajorityActs then took 1.81 s against its 1.8 s bound):
// so the races are logged, not refused.
func TestFailoverTicks(t *testing.T) {
	trials := 40
	if testing.Short() {
		trials = 15
	}
	for _, c := range []struct {
		n        int
		loss     float64
		maxDelay int
		p50, max int // bounds on ticks until every survivor names the successor
	}{
		{100, 0, 0, 15, 16},
		{30, 0, 0, 15, 16},
		{100, 0.01, 1, 18, 20},
		{30, 0.01, 1, 18, 20},
	} {
		var trs []failoverTrial
		for seed := range uint64(trials) {
			trs = append(trs, measureFailover(t, c.n, seed+1, c.loss, c.maxDelay, DefaultConfig()))
		}
		st := failoverSummary(trs)
		t.Logf("N=%-4d loss=%.2f delay=1..%d: %d kills; first survivor names the successor p50 %d ticks; every survivor p50 %d, max %d ticks; it acts p50 %d; %d with a second claimant",
			c.n, c.loss, 1+c.maxDelay, trials, st.firstP50, st.allP50, st.allMax, st.actsP50, st.raced)
		if st.allP50 > c.p50 || st.allMax > c.max {
			t.Errorf("N=%d loss=%.2f: failover p50 %d ticks, max %d; want at most %d and %d", c.n, c.loss, st.allP50, st.allMax, c.p50, c.max)
		}
		if c.loss == 0 && st.raced > 0 {
			// Without loss every member hears the same renewals: the
			// highest rank's claim reaches the others before they claim.
			t.Errorf("N=%d loss=%.2f: %d of %d failovers had a second claimant", c.n, c.loss, st.raced, trials)
		}
	}
}

// TestPauseBelowLeaseKeepsRole stops the coordinator, unseen by the failure
// detector, for L-1 ticks at every point of its renewal cycle (just after
// a renewal, or just before the next one) and resumes it, with messages
// taking one or two ticks: it must keep its role and term, with no
// election won meanwhile. This is what bounds how early members may count
// a coordinator lost: a pause that starts just before a renewal leaves
// them without one for up to RenewTicks+LeaseTicks, give or take a message
// delay, so they wait RenewTicks+LeaseTicks. (Suspecting it when their
// grant runs out, LeaseTicks+DriftTicks, one tick earlier on lan, deposes
// it in 4 of these 120 runs: it wins back only under a new term.)
func TestPauseBelowLeaseKeepsRole(t *testing.T) {
	cfg := DefaultConfig()
	runs, failed := 0, 0
	for seed := range uint64(20) {
		for off := range 2 * cfg.RenewTicks {
			runs++
			s, names := electedSim(t, 10, SimConfig{Seed: seed*10 + uint64(off), MaxDelay: 1, Node: cfg})
			for range 4*cfg.RenewTicks + off {
				s.Step()
			}
			old := s.Node(names[0]).Status()
			if err := s.Pause(old.Coordinator); err != nil {
				t.Fatal(err)
			}
			for range cfg.LeaseTicks - 1 {
				s.Step()
			}
			if err := s.Resume(old.Coordinator); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Settle(3000); !ok {
				t.Fatalf("seed %d, offset %d: not settled after the resume", seed, off)
			}
			var won uint64
			for _, x := range names {
				won += s.Node(x).Metrics().ElectionsWon
			}
			now := s.Node(names[0]).Status()
			if won != 1 || now.Coordinator != old.Coordinator || now.Term != old.Term {
				failed++
				t.Logf("seed %d, offset %d: paused %d ticks (< LeaseTicks %d): coordinator %s/%d -> %s/%d, %d elections won",
					seed, off, cfg.LeaseTicks-1, cfg.LeaseTicks, old.Coordinator, old.Term, now.Coordinator, now.Term, won)
			}
			if v := s.Violations(); len(v) > 0 {
				t.Fatalf("seed %d, offset %d: %v", seed, off, v)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d coordinators paused for less than a lease lost their role", failed, runs)
	}
}

// TestCutFailoverTicks cuts the coordinator and one other member of five off
// from the other three, unseen by the failure detector (the nemesis tier's
// TestMinorityStopsMajorityActs: a 3 s cut under serf's detection), at every
// point of the renewal cycle, messages taking a tick. The majority finds the
// loss RenewTicks+LeaseTicks after the last renewal it heard, waits one
// AnswerTimeout for the higher rank cut off unseen, claims, and acts after
// four messages (claim, Ack, first renewal, grant): within
// RenewTicks+LeaseTicks+AnswerTimeout+4 ticks of the cut. (On a LAN a
// message takes a millisecond, not a tick: 1.6 s, inside the tier's 1.8 s.)
//
// waitLost's timers once had jitter (0-2 ticks) on top of AnswerTimeout
// per rank above: the two highest of the majority then claimed as little as
// one tick apart, their claims of one term number crossed, each refused the
// other's, and the higher one's claim waited out its ClaimTimeout: 42 ticks
// in one of these 60 cuts, 19-22 in seven more (the tier's round 3 took
// 2.05 s and 2.26 s).
func TestCutFailoverTicks(t *testing.T) {
	cfg := DefaultConfig()
	bound := cfg.RenewTicks + cfg.LeaseTicks + cfg.AnswerTimeout + 4
	const cuts = 200
	var took []int
	for seed := range uint64(cuts) {
		s, names := electedSim(t, 5, SimConfig{Seed: seed + 1, Node: cfg})
		rng := rand.New(rand.NewPCG(seed, 0xc07))
		for range 5*cfg.RenewTicks + rng.IntN(cfg.RenewTicks) {
			s.Step()
		}
		old := s.Node(names[0]).Status()
		others := slices.DeleteFunc(slices.Clone(names), func(x string) bool { return x == old.Coordinator })
		x := others[rng.IntN(len(others))]
		majority := slices.DeleteFunc(slices.Clone(others), func(y string) bool { return y == x })
		if err := s.Cut([]string{old.Coordinator, x}, majority); err != nil {
			t.Fatal(err)
		}
		k := ticksUntilActing(s, majority, 200)
		took = append(took, k)
		if k > bound {
			t.Errorf("seed %d: %s and %s cut off; the majority %v acted after %d ticks (bound %d)", seed, old.Coordinator, x, majority, k, bound)
		}
		if v := s.Violations(); len(v) > 0 {
			t.Fatalf("seed %d: %v", seed, v)
		}
	}
	slices.Sort(took)
	t.Logf("%d cuts: the majority acts p50 %d ticks, max %d (bound %d)", cuts, took[len(took)/2], took[len(took)-1], bound)
}

// TestCrossedClaimsAfterAMissedRenewal: as TestCutFailoverTicks, but the
// majority's second rank missed the last renewal before the cut, so it finds
// the loss RenewTicks early and claims in the same tick as the majority's
// highest: their claims of one number cross, and each refuses the other's.
// The higher claims above it crossedWait ticks later instead of waiting out
// its ClaimTimeout: 23 ticks after the cut in all 40 runs, where waiting it
// out took 44-48. The bound: the lease, the wait for the higher rank cut off
// unseen, crossedWait, six messages (claim, refusal, claim, Ack, renewal,
// grant).
func TestCrossedClaimsAfterAMissedRenewal(t *testing.T) {
	cfg := DefaultConfig()
	bound := cfg.RenewTicks + cfg.LeaseTicks + cfg.AnswerTimeout + crossedWait + 6
	var took []int
	for seed := range uint64(40) {
		s, names := electedSim(t, 5, SimConfig{Seed: seed + 1, Node: cfg})
		for range 5 * cfg.RenewTicks {
			s.Step()
		}
		// Ranks: n0002 (priority 2) > n0004 > n0001 (1) > n0003 > n0000 (0).
		co := s.Node(names[0]).Status().Coordinator
		if co != "n0002" {
			t.Fatalf("seed %d: coordinator %s, want n0002", seed, co)
		}
		missed := false
		for k := 0; !missed && k < 10; k++ {
			s.TickAll()
			s.Deliver(func(m Message) bool {
				if m.From == co && m.To == "n0003" && m.Type == MsgCoordinator && m.Acting {
					missed = true
				}
				return missed && m.From == co && m.To == "n0003"
			})
		}
		if !missed {
			t.Fatalf("seed %d: no renewal to n0003 in 10 ticks", seed)
		}
		majority := []string{"n0001", "n0003", "n0000"}
		if err := s.Cut([]string{co, "n0004"}, majority); err != nil {
			t.Fatal(err)
		}
		k := ticksUntilActing(s, majority, 200)
		took = append(took, k)
		if k > bound {
			t.Errorf("seed %d: the majority acted %d ticks after the cut (bound %d)", seed, k, bound)
		}
		if v := s.Violations(); len(v) > 0 {
			t.Fatalf("seed %d: %v", seed, v)
		}
	}
	slices.Sort(took)
	t.Logf("40 cuts after a missed renewal: the majority acts p50 %d ticks, max %d (bound %d)", took[len(took)/2], took[len(took)-1], bound)
}

// ticksUntilActing steps s until a node of side acts, at most limit ticks,
// and returns the ticks stepped.
func ticksUntilActing(s *Sim, side []string, limit int) int {
	k := 0
	for acting := false; !acting && k < limit; {
		s.Step()
		k++
		for _, y := range side {
			acting = acting || s.Node(y).Acting()
		}
	}
	return k
}
