//go:build nemesis

package nemesis

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestNemesisRandom runs the seeded schedule against 5-7 agents, with the
// exec provider and with the webhook provider (half the duration each).
func TestNemesisRandom(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) % 1_000_000
	}
	n := *flagNodes
	if n == 0 {
		n = 5 + int(seed%3)
	}
	if n < 3 {
		t.Fatalf("-nemesis.nodes %d: want at least 3", n)
	}
	provs := []string{"exec", "webhook"}
	if *flagProvider != "both" {
		provs = []string{*flagProvider}
	}
	for k, prov := range provs {
		t.Run(prov, func(t *testing.T) {
			s := seed + uint64(k)
			sched := Generate(s, n, *flagDuration/time.Duration(len(provs)), *flagLiveness)
			t.Logf("nemesis %s, %d agents, liveness bound %v, minority bound %v\n%s", prov, n, *flagLiveness, *flagMinority, FormatSchedule(s, sched))
			c := newCluster(t, options{nodes: n, provider: prov, load: true, seed: s})
			c.replay = fmt.Sprintf("scripts/nemesis-test -seed %d -duration %v -nodes %d -provider %s", seed, *flagDuration, n, *flagProvider)
			c.settle()
			for _, f := range sched {
				c.apply(f)
			}
			c.finish("random/"+prov, s, sched)
		})
	}
}

// The regression scenarios: one per defect that a fault test of 88f66f0
// showed (issue 18, "What a fault test of 88f66f0 showed"), each a fixed
// schedule. Their steps wait for the mesh (a coordinator, actions) between
// faults, with deadlines.

// TestDefect1RepeatedActions: n5 acts, is killed, n4 acts, n5 comes back
// (its fence remembers its own older count), n4 is killed, n5 acts again:
// it must continue the chain, not replay from its own old count.
func TestDefect1RepeatedActions(t *testing.T) {
	// The load stays inside the thresholds until the election, then goes
	// high.
	c := newCluster(t, options{nodes: 5, provider: "exec", load: true, high: true, startCPU: 50, countless: true})
	c.logf("schedule: elect (A); load high; A acts; kill -9 A; B acts; restart A with the highest priority; kill -9 B; A acts; restart B")
	c.waitLoads(20 * time.Second)
	ctx, cancel := c.ctx(10 * time.Second)
	_, err := c.nodes[0].a.Client().Elect(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	a := c.coordinator(20 * time.Second)
	if a == nil {
		t.Fatal("no coordinator after an election")
	}
	c.fixLoad(90)
	if !c.waitActions(0, 2, a.name, 20*time.Second) {
		t.Fatalf("%s did not act twice", a.name)
	}
	// Each kill comes after the load has held steady 2 s, so the last
	// action was announced: without an authoritative count, an action
	// whose announcement never left its node is the one gap a provider
	// like this has (docs/scaling.md), and not this defect.
	c.fixLoad(50)
	time.Sleep(2 * time.Second) // lets the announcement spread
	c.kill(a)
	c.fixLoad(90)
	before := len(c.actions())
	if !c.waitActions(before, 3, "", 30*time.Second) {
		t.Fatalf("nobody acted three times after %s was killed", a.name)
	}
	b := c.coordinator(5 * time.Second)
	if b == nil {
		t.Fatal("no coordinator")
	}
	// A comes back ranked above everyone, so the role goes back to it
	// when B dies: the path of the defect (its fence holds its own older
	// count).
	for i, arg := range a.a.Args {
		if arg == "--priority" {
			a.a.Args[i+1] = "100"
		}
	}
	c.restart(a, " ranked 100")
	c.waitLoads(20 * time.Second)
	c.fixLoad(50)
	time.Sleep(2 * time.Second) // lets the announcement spread
	c.kill(b)
	c.fixLoad(90)
	before = len(c.actions())
	if !c.waitActions(before, 3, "", 30*time.Second) {
		t.Errorf("nobody acted three times after %s was killed", b.name)
	}
	if acts := c.actions(); len(acts) > before {
		c.logf("after %s: %s acts (the defect's path is the role back at %s)", b.name, acts[before].Holder, a.name)
		if acts[before].Holder != a.name {
			t.Errorf("%s acts after %s, not %s: this run did not take the defect's path", acts[before].Holder, b.name, a.name)
		}
	}
	c.restart(b, "")
	time.Sleep(*flagLiveness + time.Second) // the schedule's quiet time: liveness is checked in it
	c.finish("defect1-repeated-actions", 0, nil)
}

// TestDefect2QuickRestart: 7 agents; once the coordinator acts, the load
// settles inside the thresholds (no change wanted, but a scaler is
// configured, so a coordinator is needed); twice, kill -9 the coordinator
// and restart it 2 s later with the same data directory, before the mesh
// marks it failed: a coordinator must act within the liveness bound of
// the restart.
func TestDefect2QuickRestart(t *testing.T) {
	c := newCluster(t, options{nodes: 7, provider: "exec", load: true, high: true})
	c.logf("schedule: load high until the coordinator acts, then 50%%; 2 x (kill -9 the coordinator; restart it 2 s later; quiet %v)", 2**flagLiveness)
	c.settle()
	c.fixLoad(50)
	for round := 1; round <= 2; round++ {
		co := c.coordinator(5 * time.Second)
		if co == nil {
			c.logf("round %d: no coordinator acts", round)
			break
		}
		c.kill(co)
		time.Sleep(2 * time.Second) // the fault's duration
		c.restart(co, " 2 s after kill -9")
		time.Sleep(2 * *flagLiveness) // the schedule's quiet time: liveness is checked in it
	}
	c.finish("defect2-quick-restart", 0, nil)
}

// TestDefect3PausedCoordinatorTakesBack: SIGSTOP the coordinator for 12 s
// (another takes over), SIGCONT: without --preempt it accepts the new
// coordinator, and one acts within the liveness bound.
func TestDefect3PausedCoordinatorTakesBack(t *testing.T) {
	c := newCluster(t, options{nodes: 5, provider: "exec", load: true, seed: 3})
	c.logf("schedule: SIGSTOP the coordinator 12 s; SIGCONT; quiet %v", 2**flagLiveness)
	co := c.settle()
	c.sigstop(co)
	time.Sleep(12 * time.Second) // the fault's duration
	next := c.coordinator(0)
	c.sigcont(co)
	resumed := time.Now()
	time.Sleep(2 * *flagLiveness) // the schedule's quiet time: liveness is checked in it
	rep := c.finish("defect3-paused-coordinator", 0, nil)
	if next == nil {
		t.Errorf("nobody took over while %s was stopped 12 s", co.name)
	}
	for _, iv := range rep.Intervals {
		if iv.Node == co.name && iv.To.After(resumed) {
			t.Errorf("%s, resumed without --preempt, acted again: %v (took over from %v)", co.name, iv, next.name)
		}
	}
}

// TestDefect4MinorityActs: 7 agents; the coordinator and two others are cut
// off from the other four for 12 s. The three must stop acting within the
// minority bound; the four elect.
func TestDefect4MinorityActs(t *testing.T) {
	c := newCluster(t, options{nodes: 7, provider: "exec", load: true, seed: 4})
	c.logf("schedule: partition the coordinator and two others from four, 12 s; heal; quiet %v", 2**flagLiveness)
	co := c.settle()
	side := []*node{co}
	for _, n := range c.nodes {
		if n != co && len(side) < 3 {
			side = append(side, n)
		}
	}
	c.partition(side, false)
	done := c.noQuorum(side, "partition "+names(side))
	time.Sleep(12 * time.Second) // the fault's duration
	c.healNet()
	done()
	time.Sleep(2 * *flagLiveness) // the schedule's quiet time: liveness is checked in it
	c.finish("defect4-minority-acts", 0, nil)
}

// TestDefect5ActionOnShutdown: one agent, exec provider, no load figures
// for its metric, scale-min 1, a fresh data directory each round: four
// times, SIGTERM 2 s after the start must not run the command (the leave
// is recorded as a window; (d) checks it). One round reproduced it about
// one time in three on 88f66f0.
func TestDefect5ActionOnShutdown(t *testing.T) {
	c := newCluster(t, options{nodes: 1, provider: "exec", metric: "tag:nemesis_none", countless: true})
	c.logf("schedule: 4 x (one agent with a fresh data dir, metric with no figures; SIGTERM after 2 s)")
	// A fresh data directory forgets the count, so the chain (b) breaks on
	// purpose: only (d) is checked.
	c.only = "d"
	n := c.nodes[0]
	for round := 1; round <= 4; round++ {
		if round > 1 {
			if err := os.RemoveAll(n.a.DataDir); err != nil {
				t.Fatal(err)
			}
			c.startNode(n, false)
		}
		time.Sleep(2 * time.Second) // a few scale intervals before the leave
		c.leave(n)
	}
	c.finish("defect5-action-on-shutdown", 0, nil)
}

// TestDefect7StaleActingAfterResume: three times, SIGSTOP the coordinator
// 8 s (another takes over) and SIGCONT, polling /v1/leader every 50 ms:
// the resumed node must never report acting under its old term once a
// higher term acted ((a) checks overlaps; this checks the stale term
// itself, even between two polls of the other node).
func TestDefect7StaleActingAfterResume(t *testing.T) {
	c := newCluster(t, options{nodes: 5, provider: "exec", load: true, seed: 7, poll: 50 * time.Millisecond})
	c.logf("schedule: 3 x (SIGSTOP the coordinator 8 s; SIGCONT; quiet 6 s)")
	type pause struct {
		node    string
		term    uint64
		resumed time.Time
	}
	var pauses []pause
	for round := 1; round <= 3; round++ {
		co := c.settle()
		ctx, cancel := c.ctx(time.Second)
		l, err := co.a.Client().Leader(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c.sigstop(co)
		time.Sleep(8 * time.Second) // the fault's duration
		c.sigcont(co)
		pauses = append(pauses, pause{co.name, l.Term, time.Now()})
		time.Sleep(6 * time.Second) // the schedule's quiet time
	}
	c.finish("defect7-stale-acting", 0, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range pauses {
		var higher *Sample
		for i, s := range c.samples {
			if s.Node != p.node && s.Acting && s.Term > p.term && (higher == nil || s.At.Before(higher.At)) {
				higher = &c.samples[i]
			}
		}
		for _, s := range c.samples {
			if higher != nil && s.Node == p.node && s.Acting && s.Term == p.term && s.Sent.After(p.resumed) && s.Sent.After(higher.At) {
				t.Errorf("%s, resumed at %s, reported acting under its old term %d at %s, after %s acted under term %d at %s",
					p.node, stamp(p.resumed), p.term, stamp(s.Sent), higher.Node, higher.Term, stamp(higher.At))
				break
			}
		}
	}
}
