package election

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSimulation runs meshes of 10, 100 and 1,000 nodes on the simulated
// network with 1% message loss and 1 or 2 ticks of delay, and measures
// three elections each: a cold start where one node asks, a cold start where
// every node asks at once, and the loss of the coordinator. It prints
// messages per election and ticks to settle (-v) and asserts that messages
// grow linearly: messages/N stays under a constant at every size.
func TestSimulation(t *testing.T) {
	sizes := []int{10, 100, 1000}
	if testing.Short() {
		sizes = []int{10, 100}
	}
	const perNode = 6.0 // bound on messages per election per node
	first := map[string]float64{}
	for _, n := range sizes {
		for _, sc := range []string{"one-asks", "all-ask", "coordinator-lost", "coordinator-paused"} {
			msgs, lease, ticks := simulate(t, n, sc)
			ratio := float64(msgs) / float64(n)
			if _, ok := first[sc]; !ok {
				first[sc] = ratio
			} else if ratio > 1.5*first[sc] {
				t.Errorf("N=%d %s: %.2f messages per node, %.2f at the smallest size: grows faster than N", n, sc, ratio, first[sc])
			}
			t.Logf("N=%-5d %-16s msgs=%-6d msgs/N=%.2f lease-msgs=%-6d ticks=%d", n, sc, msgs, ratio, lease, ticks)
			if lr := float64(lease) / float64(n); lr > 2*perNode {
				t.Errorf("N=%d %s: %d lease messages, %.2f per node: not linear", n, sc, lease, lr)
			}
			bound := perNode
			if sc == "coordinator-paused" {
				// Members find out by the renewals that stop, one after
				// another, and the resumed node is told who acts.
				bound = 2 * perNode
			}
			if ratio > bound {
				t.Errorf("N=%d %s: %d messages, %.2f per node, bound %.1f: not linear", n, sc, msgs, ratio, bound)
			}
		}
	}
}

// simulate builds a mesh of n nodes, runs one election of the given
// scenario, and returns the election messages it took (claims, answers,
// acknowledgements), the lease renewals and grants sent meanwhile, and the
// ticks to settle.
func simulate(t testing.TB, n int, scenario string) (msgs, lease uint64, ticks int) {
	t.Helper()
	cfg := DefaultConfig()
	s := NewSim(SimConfig{Seed: uint64(n), Loss: 0.01, MaxDelay: 1, Node: cfg})
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{Name: fmt.Sprintf("n%04d", i), Priority: i % 3}
	}
	if err := s.AddNodes(ms...); err != nil {
		t.Fatal(err)
	}
	names := s.Names()
	settle := func() int {
		k, ok := s.Settle(5000)
		if !ok {
			t.Fatalf("N=%d %s: not settled after %d ticks", n, scenario, k)
		}
		return k
	}
	switch scenario {
	case "one-asks":
		_ = s.Request(names[0])
	case "all-ask":
		for _, name := range names {
			_ = s.Request(name)
		}
	case "coordinator-lost", "coordinator-paused":
		_ = s.Request(names[0])
		settle()
		c := s.Node(names[0]).Status().Coordinator
		before, beforeLease := s.Sent.Total(), s.LeaseSent
		if scenario == "coordinator-lost" {
			if err := s.Kill(c); err != nil {
				t.Fatal(err)
			}
		} else {
			// Paused unseen by the failure detector: the members find
			// out by the renewals that stop.
			if err := s.Pause(c); err != nil {
				t.Fatal(err)
			}
			for range s.cfg.Node.RenewTicks + s.cfg.Node.LeaseTicks + 1 {
				s.Step()
				ticks++
			}
		}
		ticks += settle()
		if scenario == "coordinator-paused" {
			// It resumes: its lease ran out; it accepts the new one.
			if err := s.Resume(c); err != nil {
				t.Fatal(err)
			}
			ticks += settle()
			if got := s.Node(c).Status().Coordinator; got == c || got == "" {
				t.Fatalf("N=%d: the resumed %s names %q", n, c, got)
			}
		}
		if scenario == "coordinator-lost" {
			checkAgreement(t, s, scenario)
		} else {
			checkActing(t, s, scenario)
		}
		lease = s.LeaseSent - beforeLease
		return s.Sent.Total() - before - lease, lease, ticks
	}
	ticks = settle()
	checkAgreement(t, s, scenario)
	return s.Sent.Total() - s.LeaseSent, s.LeaseSent, ticks
}

func checkAgreement(t testing.TB, s *Sim, scenario string) {
	t.Helper()
	var up []string
	for _, n := range s.Names() {
		if s.Up(n) {
			up = append(up, n)
		}
	}
	want := s.Highest(up)
	for _, n := range up {
		if c := s.Node(n).Status().Coordinator; c != want {
			t.Fatalf("%s: %s names %q, want %q (highest alive rank)", scenario, n, c, want)
		}
	}
	if !s.Node(want).Acting() {
		t.Fatalf("%s: %s does not act", scenario, want)
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("%s: %v", scenario, v)
	}
}

// BenchmarkElection reports messages per election as a custom metric.
func BenchmarkElection(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var msgs uint64
			var ticks int
			for range b.N {
				m, _, k := simulate(b, n, "coordinator-lost")
				msgs += m
				ticks += k
			}
			b.ReportMetric(float64(msgs)/float64(b.N), "msgs/election")
			b.ReportMetric(float64(msgs)/float64(b.N)/float64(n), "msgs/node")
			b.ReportMetric(float64(ticks)/float64(b.N), "ticks/election")
		})
	}
}

// checkActing checks that every up node names one coordinator, which acts,
// and that no other node acts.
func checkActing(t testing.TB, s *Sim, scenario string) {
	t.Helper()
	want := ""
	for _, n := range s.Names() {
		if !s.Up(n) {
			continue
		}
		c := s.Node(n).Status().Coordinator
		if want == "" {
			want = c
		}
		if c != want || c == "" {
			t.Fatalf("%s: %s names %q, another names %q", scenario, n, c, want)
		}
		if n != want && s.Node(n).Acting() {
			t.Fatalf("%s: %s acts besides %s", scenario, n, want)
		}
	}
	if !s.Node(want).Acting() {
		t.Fatalf("%s: %s does not act", scenario, want)
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("%s: %v", scenario, v)
	}
}

// TestSimulationStarved models 100 agents on a starved machine: every tick
// each node stalls with probability 2% for 1 to 9 ticks (SIGSTOP, a GC, a
// core it does not get), unseen by the failure detector, and catches up
// its ticks on resuming (Stalled), while its messages wait. After the
// coordinator is killed, one election must replace it and the mesh then
// keep that coordinator for 60 s of such stalls: no false failovers. (A
// member that counted its own stall against the coordinator, or a
// coordinator that stepped down when late grants let its lease lapse,
// churned here through a dozen terms a minute.)
func TestSimulationStarved(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 30
	}
	for seed := uint64(1); seed <= 3; seed++ {
		s := NewSim(SimConfig{Seed: seed, Loss: 0.01, MaxDelay: 1, Node: DefaultConfig()})
		ms := make([]Member, n)
		for i := range ms {
			ms[i] = Member{Name: fmt.Sprintf("n%04d", i), Priority: i}
		}
		if err := s.AddNodes(ms...); err != nil {
			t.Fatal(err)
		}
		names := s.Names()
		_ = s.Request(names[0])
		if _, ok := s.Settle(3000); !ok {
			t.Fatalf("seed %d: no first coordinator", seed)
		}
		if err := s.Kill(s.Node(names[0]).Status().Coordinator); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 0x57a11))
		stalled := map[string]int{}
		for range 600 {
			for _, name := range names {
				switch k := stalled[name]; {
				case k == 1:
					delete(stalled, name)
					_ = s.Resume(name)
				case k > 1:
					stalled[name] = k - 1
				case s.Up(name) && rng.Float64() < 0.02:
					stalled[name] = 1 + rng.IntN(9)
					_ = s.Pause(name)
				}
			}
			s.Step()
		}
		for _, name := range names {
			if stalled[name] > 0 {
				_ = s.Resume(name)
			}
		}
		if _, ok := s.Settle(3000); !ok {
			t.Fatalf("seed %d: not settled after the stalls", seed)
		}
		var won uint64
		for _, name := range names {
			won += s.Node(name).Metrics().ElectionsWon
		}
		t.Logf("seed %d: N=%d, %d elections won (the first, and one after the kill)", seed, n, won)
		if won != 2 {
			t.Errorf("seed %d: %d elections won, want 2: stalls of 0.1-0.9 s deposed coordinators", seed, won)
		}
		if v := s.Violations(); len(v) > 0 {
			t.Errorf("seed %d: %v", seed, v)
		}
	}
}
