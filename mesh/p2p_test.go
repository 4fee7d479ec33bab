//go:build !nolibp2p

package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

type p2pNode struct {
	m   *Mesh
	cpu atomic.Int64
	dir string
}

func startP2P(t *testing.T, i int, dir string, key []byte, p2p P2PConfig) *p2pNode {
	t.Helper()
	n, err := tryStartP2P(i, dir, key, p2p)
	if err != nil {
		t.Fatalf("start p2p node %d: %v", i, err)
	}
	t.Cleanup(func() { n.m.Shutdown() })
	return n
}

func tryStartP2P(i int, dir string, key []byte, p2p P2PConfig) (*p2pNode, error) {
	n := &p2pNode{dir: dir}
	n.cpu.Store(int64(10 * i))
	p2p.FastTimings = true
	var keys [][]byte
	if key != nil {
		keys = [][]byte{key}
	}
	m, err := New(Config{
		NodeName:  fmt.Sprintf("n%d", i),
		BindAddr:  "127.0.0.1",
		Profile:   ProfileP2P,
		DataDir:   dir,
		Keys:      keys,
		Label:     "p2ptest",
		Transport: P2PTransport(p2p),
		Load: func() (metrics.Load, bool) {
			return metrics.Load{CPUPercent: float64(n.cpu.Load()), MemPercent: 50, Cores: 2}, true
		},
	})
	if err != nil {
		return nil, err
	}
	n.m = m
	return n, nil
}

func testKey(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func TestP2PFiveNodesGossipLoad(t *testing.T) {
	key := testKey(1)
	var nodes []*p2pNode
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, startP2P(t, i, t.TempDir(), key, P2PConfig{}))
	}
	for _, n := range nodes {
		if !strings.HasPrefix(n.m.LocalName(), "12D3KooW") {
			t.Fatalf("node name %q is not a peer ID", n.m.LocalName())
		}
	}
	seed := nodes[0].m.P2PAddrs()
	if len(seed) == 0 || !strings.Contains(seed[0], "/p2p/") {
		t.Fatalf("P2PAddrs = %v", seed)
	}
	start := time.Now()
	for _, n := range nodes[1:] {
		if _, err := n.m.Join(seed); err != nil {
			t.Fatal(err)
		}
	}
	cpuOf := map[string]float64{}
	for _, n := range nodes {
		cpuOf[n.m.LocalName()] = float64(n.cpu.Load())
	}
	waitFor(t, 15*time.Second, "every node sees every load", func() error {
		for _, n := range nodes {
			ms := n.m.View().Members()
			if len(ms) != len(nodes) {
				return fmt.Errorf("%s sees %d members", n.m.LocalName(), len(ms))
			}
			for _, mem := range ms {
				if mem.Status != StatusAlive || mem.Load == nil {
					return fmt.Errorf("%s sees %s %s load=%v", n.m.LocalName(), mem.Name, mem.Status, mem.Load)
				}
				if mem.Load.CPUPercent != cpuOf[mem.Name] {
					return fmt.Errorf("%s sees %s cpu %.1f, want %.1f", n.m.LocalName(), mem.Name, mem.Load.CPUPercent, cpuOf[mem.Name])
				}
			}
		}
		return nil
	})
	t.Logf("five p2p nodes converged in %v", time.Since(start))

	// A change in load reaches everyone.
	nodes[2].cpu.Store(77)
	name3 := nodes[2].m.LocalName()
	waitFor(t, 5*time.Second, "load change spreads", func() error {
		for _, n := range nodes {
			for _, mem := range n.m.View().Members() {
				if mem.Name == name3 && (mem.Load == nil || mem.Load.CPUPercent != 77) {
					return fmt.Errorf("%s sees n3 at %v", n.m.LocalName(), mem.Load)
				}
			}
		}
		return nil
	})

	// A graceful leave is seen as left; a hard stop as failed.
	name4, name5 := nodes[3].m.LocalName(), nodes[4].m.LocalName()
	if err := nodes[4].m.Leave(); err != nil {
		t.Fatal(err)
	}
	nodes[4].m.Shutdown()
	nodes[3].m.Shutdown()
	waitFor(t, 15*time.Second, "leave and failure seen", func() error {
		for _, n := range nodes[:3] {
			if s := statusOf(n.m, name5); s != StatusLeft {
				return fmt.Errorf("%s sees n5 %s", n.m.LocalName(), s)
			}
			if s := statusOf(n.m, name4); s != StatusFailed {
				return fmt.Errorf("%s sees n4 %s", n.m.LocalName(), s)
			}
		}
		return nil
	})
	for _, n := range nodes[:3] {
		if d := n.m.Stats().Dropped.Load(); d != 0 {
			t.Errorf("%s dropped %d packets of its own mesh", n.m.LocalName(), d)
		}
		if r := n.m.P2PStats().AuthRefused.Load(); r != 0 {
			t.Errorf("%s refused %d streams of its own mesh", n.m.LocalName(), r)
		}
	}
}

func TestP2PIdentityPersistsAndCorruptFileIsClearError(t *testing.T) {
	dir := t.TempDir()
	a, err := tryStartP2P(1, dir, testKey(1), P2PConfig{})
	if err != nil {
		t.Fatal(err)
	}
	id := a.m.LocalName()
	a.m.Shutdown()
	b, err := tryStartP2P(1, dir, testKey(1), P2PConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if b.m.LocalName() != id {
		t.Errorf("peer ID changed across restart: %s then %s", id, b.m.LocalName())
	}
	b.m.Shutdown()

	path := filepath.Join(dir, identityFile)
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = tryStartP2P(1, dir, testKey(1), P2PConfig{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt identity file: err = %v; want a clear error naming %s", err, path)
	}
}

func TestP2PWrongKeyIsRefusedAndCounted(t *testing.T) {
	a := startP2P(t, 1, t.TempDir(), testKey(1), P2PConfig{})
	b := startP2P(t, 2, t.TempDir(), testKey(1), P2PConfig{})
	evil := startP2P(t, 3, t.TempDir(), testKey(9), P2PConfig{})
	if _, err := b.m.Join(a.m.P2PAddrs()); err != nil {
		t.Fatal(err)
	}
	if n, err := evil.m.Join(a.m.P2PAddrs()); err == nil && n > 0 {
		t.Fatalf("a peer with the wrong key joined (%d)", n)
	}
	waitFor(t, 5*time.Second, "refusal counted", func() error {
		if r := a.m.P2PStats().AuthRefused.Load(); r == 0 {
			return errors.New("no refusal counted")
		}
		return nil
	})
	for _, mem := range a.m.View().Members() {
		if mem.Name == evil.m.LocalName() {
			t.Fatalf("the peer with the wrong key is a member: %+v", mem)
		}
	}
	// Refused peers stay refused at the gater for a while.
	if n, _ := evil.m.Join(a.m.P2PAddrs()); n > 0 {
		t.Fatal("second attempt joined")
	}
	// The refusal is counted on a's side, after the join has failed on
	// evil's: wait for it.
	waitFor(t, 5*time.Second, "second attempt gated or refused", func() error {
		if a.m.P2PStats().GaterRefused.Load() == 0 && a.m.P2PStats().AuthRefused.Load() < 2 {
			return errors.New("second attempt neither gated nor refused")
		}
		return nil
	})
}

func TestP2PUnreachableBootstrapIsRetried(t *testing.T) {
	// A peer ID that nobody runs, on a port where nothing listens.
	ghost, err := tryStartP2P(9, t.TempDir(), testKey(1), P2PConfig{})
	if err != nil {
		t.Fatal(err)
	}
	addr := ghost.m.P2PAddrs()[0]
	ghost.m.Shutdown()
	a := startP2P(t, 1, t.TempDir(), testKey(1), P2PConfig{Bootstrap: []string{addr}})
	waitFor(t, 10*time.Second, "bootstrap retried", func() error {
		if f := a.m.P2PStats().BootstrapFailures.Load(); f < 2 {
			return fmt.Errorf("%d failures counted", f)
		}
		return nil
	})
	// JoinRetry reports the failure after its attempts.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = a.m.JoinRetry(ctx, []string{addr}, RetryOptions{Attempts: 2, Initial: 50 * time.Millisecond})
	if !errors.Is(err, ErrJoin) {
		t.Fatalf("JoinRetry to an unreachable peer: %v", err)
	}
	// A plain ip:port is refused with a clear message.
	if _, err := a.m.Join([]string{"127.0.0.1:7946"}); err == nil || !strings.Contains(err.Error(), "peer ID") {
		t.Fatalf("join without a peer ID: %v", err)
	}
}

func TestP2PBootstrapJoins(t *testing.T) {
	a := startP2P(t, 1, t.TempDir(), testKey(1), P2PConfig{})
	b := startP2P(t, 2, t.TempDir(), testKey(1), P2PConfig{Bootstrap: a.m.P2PAddrs()})
	waitFor(t, 10*time.Second, "joined through the bootstrap peer", func() error {
		if s := statusOf(a.m, b.m.LocalName()); s != StatusAlive {
			return fmt.Errorf("a sees b %s", s)
		}
		return nil
	})
}

func TestP2PWithoutKeyMaterialIsRefusedAtStart(t *testing.T) {
	_, err := tryStartP2P(1, t.TempDir(), nil, P2PConfig{})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--encrypt") {
		t.Fatalf("p2p with no key and no allow-list: err = %v; want a config error naming --encrypt", err)
	}
	// An allow-list alone is enough: the peers prove their IDs.
	n, err := tryStartP2P(1, t.TempDir(), nil, P2PConfig{AllowPeers: []string{"12D3KooWEtBJS6tTnfDkqRbXJFVvbR62dfnV4T5aEXm7NmXjxSDK"}})
	if err != nil {
		t.Fatalf("p2p with an allow-list: %v", err)
	}
	n.m.Shutdown()
	if _, err := tryStartP2P(2, t.TempDir(), testKey(1), P2PConfig{PublicNets: []string{"198.18.0.0/33"}}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "198.18.0.0/33") {
		t.Fatalf("bad public net: err = %v; want a config error naming it", err)
	}
}

func TestCarveNet(t *testing.T) {
	parse := func(s string) *net.IPNet {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	in := func(list []*net.IPNet, ip string) bool {
		for _, n := range list {
			if n.Contains(net.ParseIP(ip)) {
				return true
			}
		}
		return false
	}
	list := []*net.IPNet{parse("10.0.0.0/8"), parse("198.18.0.0/15"), parse("fc00::/7")}
	got := carveNet(list, parse("198.18.0.0/24"))
	for ip, want := range map[string]bool{
		"198.18.0.1": false, "198.18.0.255": false, // carved out
		"198.18.1.2": true, "198.18.128.0": true, "198.19.255.255": true, // rest of the /15 kept
		"10.1.2.3": true, "fd00::1": true, "198.17.255.255": false,
	} {
		if in(got, ip) != want {
			t.Errorf("after carving 198.18.0.0/24: %s listed = %v, want %v (list %v)", ip, !want, want, got)
		}
	}
	// A range holding a whole entry drops it.
	got = carveNet(list, parse("10.0.0.0/7"))
	if in(got, "10.1.2.3") || !in(got, "198.18.0.1") {
		t.Errorf("carving 10.0.0.0/7: %v", got)
	}
}

func TestP2PAllowListAdmitsOnlyListedPeers(t *testing.T) {
	b := startP2P(t, 2, t.TempDir(), testKey(1), P2PConfig{})
	c := startP2P(t, 3, t.TempDir(), testKey(1), P2PConfig{}) // right key, not listed
	a := startP2P(t, 1, t.TempDir(), testKey(1), P2PConfig{AllowPeers: []string{b.m.LocalName()}})
	if _, err := b.m.Join(a.m.P2PAddrs()); err != nil {
		t.Fatalf("listed peer: %v", err)
	}
	if n, err := c.m.Join(a.m.P2PAddrs()); err == nil && n > 0 {
		t.Fatalf("a peer not on the allow-list joined (%d)", n)
	}
	waitFor(t, 10*time.Second, "listed peer alive, unlisted refused", func() error {
		if s := statusOf(a.m, b.m.LocalName()); s != StatusAlive {
			return fmt.Errorf("a sees the listed peer %q", s)
		}
		if a.m.P2PStats().GaterRefused.Load() == 0 {
			return errors.New("no gater refusal counted")
		}
		return nil
	})
	if s := statusOf(a.m, c.m.LocalName()); s != "absent" {
		t.Fatalf("the unlisted peer is a member at a (%s)", s)
	}
}
