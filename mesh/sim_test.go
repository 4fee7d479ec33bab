package mesh

import (
	"testing"
	"time"
)

// lanSim is the lan profile's defaults: 300 ms rounds, fanout 2 (3 above 100
// peers), 1,400-byte packets, every load crossing a bucket every 10 s on
// average, 1% loss, encrypted.
func lanSim(n int) SimConfig {
	f := 2
	if n > 101 {
		f = 3
	}
	return SimConfig{Nodes: n, GossipInterval: 300 * time.Millisecond, Fanout: f, PacketBudget: 1400, ChangeRate: 0.1,
		MaxForwardAge: 30 * time.Second, Loss: 0.01, Latency: time.Millisecond,
		Duration: 20 * time.Second, Warmup: 10 * time.Second, Encrypted: true, Seed: 1}
}

// TestDisseminationBounds runs the scheme on the lan defaults. Targets from
// the foundation issue: p99 age under 2 s at N = 30; at N = 1,000, gossip
// within 20 KB/s per node with p99 age under 5 s. The N = 1,000 age target
// is MISSED (about 6.9 s at 14 KB/s; 5.7 s at 17 KB/s with 250 ms rounds):
// the bound asserted below is a regression guard at the figure we reach,
// not the target. docs/benchmarks.md has the table and what it would take.
func TestDisseminationBounds(t *testing.T) {
	type bound struct {
		n       int
		maxP99  time.Duration
		maxRate float64
	}
	bounds := []bound{{30, 2 * time.Second, 20_000}, {1000, 12 * time.Second, 20_000}}
	if testing.Short() {
		bounds = bounds[:1]
	}
	for _, b := range bounds {
		r := SimulateDissemination(lanSim(b.n))
		t.Logf("N=%4d  bytes/s/node=%6.0f  age p50=%v p99=%v max=%v  missing=%d  wrong value=%.1f%%", b.n, r.BytesPerNodePerSec, r.AgeP50, r.AgeP99, r.AgeMax, r.Missing, 100*r.Wrong)
		if r.BytesPerNodePerSec > b.maxRate {
			t.Errorf("N=%d: %.0f B/s per node, above %.0f", b.n, r.BytesPerNodePerSec, b.maxRate)
		}
		if r.AgeP99 > b.maxP99 {
			t.Errorf("N=%d: p99 age %v above %v", b.n, r.AgeP99, b.maxP99)
		}
	}
}

// TestSimMatchesTheRealMeshAtSmallN checks the model against the library:
// five in-process agents on the local profile and the simulation of the same
// settings should agree on the order of magnitude of load ages.
func TestSimMatchesTheRealMeshAtSmallN(t *testing.T) {
	cfg := SimConfig{Nodes: 5, GossipInterval: 100 * time.Millisecond, Fanout: 2, PacketBudget: 1400,
		MaxForwardAge: 30 * time.Second, Latency: time.Millisecond, Duration: 10 * time.Second, Warmup: 3 * time.Second, Seed: 2}
	sim := SimulateDissemination(cfg)
	var nodes []*testNode
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, startNode(t, 50+i, "", nil, ""))
	}
	for _, n := range nodes[1:] {
		if _, err := n.m.Join([]string{addrOf(nodes[0].m)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "all see all loads", func() error {
		for _, n := range nodes {
			for _, m := range n.m.View().Members() {
				if m.Load == nil {
					return errNoLoad
				}
			}
		}
		return nil
	})
	var worst time.Duration
	for round := 0; round < 20; round++ {
		for _, n := range nodes {
			for _, m := range n.m.View().Members() {
				worst = max(worst, m.LoadAge(time.Now()))
			}
		}
		time.Sleep(50 * time.Millisecond) // sampling interval of the measurement
	}
	t.Logf("sim max age %v (p99 %v); real mesh max age over 1 s of samples %v", sim.AgeMax, sim.AgeP99, worst)
	if worst > 4*sim.AgeMax+200*time.Millisecond {
		t.Errorf("real ages (max %v) far above the model's (max %v): the model no longer describes the library", worst, sim.AgeMax)
	}
}
