package mesh

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/metrics"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	poll.Until(t, d, what, cond)
}

type testNode struct {
	m   *Mesh
	cpu atomic.Int64
	dir string
}

func startNode(t *testing.T, i int, dir string, keys [][]byte, label string) *testNode {
	return startNodePort(t, i, 0, dir, keys, label)
}

func startNodePort(t *testing.T, i, port int, dir string, keys [][]byte, label string) *testNode {
	t.Helper()
	n := &testNode{dir: dir}
	n.cpu.Store(int64(10 * i))
	m, err := New(Config{
		NodeName: fmt.Sprintf("n%d", i),
		BindAddr: fmt.Sprintf("127.0.0.%d", 10+i),
		BindPort: port,
		Profile:  ProfileLocal,
		DataDir:  dir,
		Keys:     keys,
		Label:    label,
		Load: func() (metrics.Load, bool) {
			return metrics.Load{CPUPercent: float64(n.cpu.Load()), MemPercent: 50, Cores: 2}, true
		},
	})
	if err != nil {
		t.Fatalf("start n%d: %v", i, err)
	}
	n.m = m
	t.Cleanup(func() { m.Shutdown() })
	return n
}

func addrOf(m *Mesh) string {
	a, p := m.LocalAddr()
	return fmt.Sprintf("%s:%d", a, p)
}

func statusOf(m *Mesh, name string) string {
	for _, mem := range m.View().Members() {
		if mem.Name == name {
			return mem.Status
		}
	}
	return "absent"
}

func TestFiveNodesGossipLoad(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	var nodes []*testNode
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, startNode(t, i, t.TempDir(), [][]byte{key}, "test"))
	}
	for _, n := range nodes[1:] {
		if _, err := n.m.Join([]string{addrOf(nodes[0].m)}); err != nil {
			t.Fatal(err)
		}
	}
	everyoneSeesLoad := func() error {
		for _, n := range nodes {
			ms := n.m.View().Members()
			if len(ms) != len(nodes) {
				return fmt.Errorf("%s sees %d members", n.m.LocalName(), len(ms))
			}
			for i, mem := range ms {
				if mem.Status != StatusAlive || mem.Load == nil {
					return fmt.Errorf("%s sees %s %s load=%v", n.m.LocalName(), mem.Name, mem.Status, mem.Load)
				}
				if want := float64(10 * (i + 1)); mem.Load.CPUPercent != want {
					return fmt.Errorf("%s sees %s cpu %.1f, want %.1f", n.m.LocalName(), mem.Name, mem.Load.CPUPercent, want)
				}
			}
		}
		return nil
	}
	waitFor(t, 30*time.Second, "every node sees every load", everyoneSeesLoad)

	// A change in load reaches everyone.
	nodes[2].cpu.Store(77)
	waitFor(t, 30*time.Second, "load change spreads", func() error {
		for _, n := range nodes {
			for _, mem := range n.m.View().Members() {
				if mem.Name == "n3" && (mem.Load == nil || mem.Load.CPUPercent != 77) {
					return fmt.Errorf("%s sees n3 at %v", n.m.LocalName(), mem.Load)
				}
			}
		}
		return nil
	})

	// A graceful leave is seen as left; a hard stop as failed.
	if err := nodes[4].m.Leave(); err != nil {
		t.Fatal(err)
	}
	nodes[4].m.Shutdown()
	nodes[3].m.Shutdown()
	// Each survivor must see each, not all at one instant: a left member
	// is reaped 30 s (TombstoneTimeout) after its leave, and on a busy
	// machine the first survivors reaped n5 while the last had yet to
	// see n4 fail ("n1 sees n5 absent"). The error names every survivor's
	// view of both.
	sawLeft, sawFailed := map[string]bool{}, map[string]bool{}
	waitFor(t, 30*time.Second, "leave and failure seen", func() error {
		var miss []string
		for _, n := range nodes[:3] {
			name, s5, s4 := n.m.LocalName(), statusOf(n.m, "n5"), statusOf(n.m, "n4")
			sawLeft[name] = sawLeft[name] || s5 == StatusLeft
			sawFailed[name] = sawFailed[name] || s4 == StatusFailed
			if !sawLeft[name] || !sawFailed[name] {
				miss = append(miss, fmt.Sprintf("%s sees n5 %s (left seen: %v), n4 %s (failed seen: %v)",
					name, s5, sawLeft[name], s4, sawFailed[name]))
			}
		}
		if len(miss) > 0 {
			return errors.New(strings.Join(miss, "; "))
		}
		return nil
	})

	// n4 restarts from its snapshot, without a join list, and is seen alive with load.
	_, port4 := nodes[3].m.LocalAddr()
	n4 := startNodePort(t, 4, port4, nodes[3].dir, [][]byte{key}, "test")
	waitFor(t, 30*time.Second, "restarted node rejoins from its snapshot", func() error {
		for _, n := range append(nodes[:3], n4) {
			if s := statusOf(n.m, "n4"); s != StatusAlive {
				return fmt.Errorf("%s sees n4 %s", n.m.LocalName(), s)
			}
		}
		for _, mem := range n4.m.View().Members() {
			if mem.Status == StatusAlive && mem.Load == nil {
				return fmt.Errorf("n4 has no load for %s", mem.Name)
			}
		}
		return nil
	})
	for _, n := range nodes[:3] {
		if d := n.m.Stats().Dropped.Load(); d != 0 {
			t.Errorf("%s dropped %d packets of its own mesh", n.m.LocalName(), d)
		}
	}
}

func TestMeshesWithDifferentLabelsDoNotMix(t *testing.T) {
	a := startNode(t, 1, "", nil, "blue")
	b := startNode(t, 2, "", nil, "green")
	if n, err := b.m.Join([]string{addrOf(a.m)}); err == nil && n > 0 {
		t.Fatalf("join across labels reached %d nodes", n)
	}
	if got := len(a.m.View().Members()); got != 1 {
		t.Fatalf("blue mesh has %d members after a green join attempt", got)
	}
}

var errNoLoad = fmt.Errorf("a member has no load yet")
