package agent

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/election"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// electionRig drives an electionRunner ("a", priority 2) on a FakeClock,
// without its run goroutine, against one peer ("b", priority 1) that is a
// bare election.Node: step does for each event what one pass of run's loop
// does (catch the Node up to the clock, handle the event, flush, publish),
// so everything happens on the test goroutine, in a known order.
type electionRig struct {
	t     *testing.T
	clock *metrics.FakeClock
	r     *electionRunner
	peer  *election.Node
	toB   []election.Message // sent by a, not yet delivered to b
	cut   bool               // the link between a and b drops everything
}

func newElectionRig(t *testing.T) *electionRig {
	t.Helper()
	g := &electionRig{t: t, clock: metrics.NewFakeClock(rigStart)}
	view := mesh.NewView(1, []mesh.Member{
		{Name: "a", Status: mesh.StatusAlive, Self: true, Shoal: mesh.ShoalTags{Agent: true, Priority: 2}},
		{Name: "b", Status: mesh.StatusAlive, Shoal: mesh.ShoalTags{Agent: true, Priority: 1}},
	})
	deps := electionDeps{node: "a", priority: 2, view: func() *mesh.View { return view },
		send: func(to string, body []byte) error {
			m, err := election.Unmarshal(body)
			if err != nil {
				t.Fatalf("a sent an undecodable message to %s: %v", to, err)
			}
			if !g.cut {
				g.toB = append(g.toB, m)
			}
			return nil
		}}
	set := electionSettings{node: election.DefaultConfig(), tick: 100 * time.Millisecond}
	r, err := newElectionRunner(set, deps, g.clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.syncMembers(view)
	g.r = r
	pc := election.DefaultConfig()
	pc.Name, pc.Priority, pc.Jitter = "b", 1, 0
	if g.peer, err = election.New(pc); err != nil {
		t.Fatal(err)
	}
	g.peer.SetMembers([]election.Member{{Name: "a", Priority: 2, Alive: true}})
	return g
}

// event runs one pass of run's loop for an event that handle stands for.
func (g *electionRig) event(handle func()) {
	g.r.catchUp()
	handle()
	g.r.flush()
	g.r.publish()
}

// exchange delivers what a and b sent each other until neither has more
// to say (unless the link is cut).
func (g *electionRig) exchange() {
	for range 100 {
		toB := g.toB
		g.toB = nil
		for _, m := range toB {
			_ = g.peer.Step(m)
		}
		toA := g.peer.Messages()
		if g.cut {
			toA = nil
		}
		for _, m := range toA {
			g.event(func() { _ = g.r.node.Step(m) })
		}
		if len(toA) == 0 && len(g.toB) == 0 {
			return
		}
	}
	g.t.Fatal("a and b kept sending for 100 rounds")
}

// tick advances the clock by one tick of a's: b ticks, a's ticker fires.
func (g *electionRig) tick() {
	g.clock.Advance(g.r.tick)
	g.peer.Tick()
	g.event(func() {})
	g.exchange()
}

// TestElectionLeaseEndsByTheClock: a coordinator cut off from its quorum
// acts until the lease its quorum last granted runs out by the runner's
// clock, and not a moment longer, even when run has not caught up (Lease
// and leaderView read the clock, not only the snapshot); when run catches
// up, the Node agrees.
func TestElectionLeaseEndsByTheClock(t *testing.T) {
	g := newElectionRig(t)
	r := g.r
	g.event(r.node.Request)
	g.exchange()
	for i := 0; ; i++ {
		if _, ok := r.Lease(); ok {
			break
		}
		if i == 50 {
			s, _ := r.snapshot()
			t.Fatalf("a does not act after %d ticks: %v", i, s.status)
		}
		g.tick()
	}
	// With b granting, a acts on, tick after tick.
	for range 3 * r.lease {
		g.tick()
		if _, ok := r.Lease(); !ok {
			s, _ := r.snapshot()
			t.Fatalf("a stopped acting at %v while b granted: %v", g.clock.Now().Sub(rigStart), s.status)
		}
	}

	// Cut the link: nothing a sends arrives, nothing b sends does. The
	// lease b granted last ends at until, on the tick grid, within a lease
	// from now.
	g.cut = true
	s, _ := r.snapshot()
	until, cutAt := s.leaseUntil, g.clock.Now()
	if !until.After(cutAt) || until.Sub(cutAt) > time.Duration(r.lease)*r.tick || until.Sub(rigStart)%r.tick != 0 {
		t.Fatalf("lease until %v, cut at %v: want after the cut, within %d ticks of %v, on the tick grid",
			until.Sub(rigStart), cutAt.Sub(rigStart), r.lease, r.tick)
	}

	// run stalls (no step at all): the clock alone ends the lease.
	g.clock.Advance(until.Sub(g.clock.Now()) - time.Nanosecond)
	if l, ok := r.Lease(); !ok || l.Holder != "a" {
		t.Fatalf("1ns before the lease ends: Lease() = %+v, %v; want a's lease", l, ok)
	}
	if !r.leaderView().Acting {
		t.Fatal("1ns before the lease ends: leaderView says not acting")
	}
	g.clock.Advance(time.Nanosecond)
	if l, ok := r.Lease(); ok {
		t.Fatalf("at the lease's end, with run behind: Lease() = %+v, true; want false", l)
	}
	if v := r.leaderView(); v.Acting || v.LeaseUntil != "" {
		t.Fatalf("at the lease's end, with run behind: leaderView acting %v until %q", v.Acting, v.LeaseUntil)
	}
	if res := r.act(); !errors.Is(res.err, ErrNotCoordinator) {
		t.Fatalf("at the lease's end: act() = %+v, want ErrNotCoordinator", res)
	}

	// run catches up: the Node has stopped acting too, and a stays out
	// while the link is cut.
	g.event(func() {})
	if s, _ := r.snapshot(); s.leaseOK || s.status.Acting {
		t.Fatalf("after catching up to the lease's end: snapshot acting (%v, node %v)", s.leaseOK, s.status)
	}
	for range 3 * r.lease {
		g.tick()
		if l, ok := r.Lease(); ok {
			t.Fatalf("acting again at %v with the link cut: %+v", g.clock.Now().Sub(rigStart), l)
		}
	}
}
