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

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

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

// TestP2PIdleConnectionsAreTrimmed: with a working set of one peer and a
// short idle timeout, nodes close the connections nothing crossed for a
// while and reconnect when memberlist probes or the relay send again. The
// mesh must not notice: every member stays alive in every view, and a load
// change still reaches everyone.
func TestP2PIdleConnectionsAreTrimmed(t *testing.T) {
	key := testKey(3)
	cfg := P2PConfig{IdleConnTimeout: 300 * time.Millisecond, WorkingSet: 1}
	var nodes []*p2pNode
	for i := 1; i <= 6; i++ {
		nodes = append(nodes, startP2P(t, i, t.TempDir(), key, cfg))
	}
	seed := nodes[0].m.P2PAddrs()
	for _, n := range nodes[1:] {
		if _, err := n.m.Join(seed); err != nil {
			t.Fatal(err)
		}
	}
	allAlive := func() error {
		for _, n := range nodes {
			ms := n.m.View().Members()
			if len(ms) != len(nodes) {
				return fmt.Errorf("%s sees %d members", n.m.LocalName(), len(ms))
			}
			for _, mem := range ms {
				if mem.Status != StatusAlive {
					return fmt.Errorf("%s sees %s %s", n.m.LocalName(), mem.Name, mem.Status)
				}
			}
		}
		return nil
	}
	waitFor(t, 15*time.Second, "every node sees every member alive", allAlive)

	// Watch the views while connections are trimmed: nobody may be taken
	// for failed (memberlist's probes reconnect as they go).
	trims := func() (idle, dups uint64) {
		for _, n := range nodes {
			idle += n.m.P2PStats().IdleTrims.Load()
			dups += n.m.P2PStats().DuplicateTrims.Load()
		}
		return
	}
	idle0, _ := trims()
	kinds := map[string]int{}
	sample := time.NewTicker(20 * time.Millisecond) // how often the views are read, not a wait
	defer sample.Stop()
	deadline := time.Now().Add(4 * time.Second)
	for ; time.Now().Before(deadline); <-sample.C {
		if err := allAlive(); err != nil {
			t.Fatalf("while trimming: %v", err)
		}
		for _, n := range nodes {
			for _, mem := range n.m.View().Members() {
				if mem.Name != n.m.LocalName() {
					kinds[n.m.PeerConn(mem.Name)]++
				}
			}
		}
	}
	// A member whose connection was closed as idle (by either side) shows
	// as idle, not as unreachable (ShoalP2PMembersUnreachable alerts on
	// conn="none").
	t.Logf("how members were reached, sampled: %v", kinds)
	if kinds[ConnIdle] == 0 {
		t.Errorf("no member shown idle while connections were trimmed: %v", kinds)
	}
	if kinds[ConnNone] > 0 {
		t.Errorf("members shown unreachable (none) while only trimmed: %v", kinds)
	}
	idle, dups := trims()
	if idle == idle0 {
		t.Fatalf("no idle connection closed in 4 s (idle timeout 300 ms, working set 1)")
	}
	t.Logf("connections closed: %d idle (%d in the 4 s watched), %d duplicates", idle, idle-idle0, dups)

	nodes[3].cpu.Store(77)
	name := nodes[3].m.LocalName()
	waitFor(t, 5*time.Second, "a load change reaches everyone", func() error {
		for _, n := range nodes {
			for _, mem := range n.m.View().Members() {
				if mem.Name == name && (mem.Load == nil || mem.Load.CPUPercent != 77) {
					return fmt.Errorf("%s sees %s at %v", n.m.LocalName(), name, mem.Load)
				}
			}
		}
		return nil
	})
	if err := allAlive(); err != nil {
		t.Fatal(err)
	}
}

// TestP2PDialRankerHoldsTCPBehindQUIC: TCP is dialled a second after the
// peer's QUIC addresses, a relay after that TCP, and a peer with only TCP
// at once.
func TestP2PDialRankerHoldsTCPBehindQUIC(t *testing.T) {
	parse := func(ss ...string) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, s := range ss {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	delays := func(addrs []ma.Multiaddr) map[string]time.Duration {
		out := map[string]time.Duration{}
		for _, d := range p2pDialRanker(addrs) {
			out[d.Addr.String()] = d.Delay
		}
		return out
	}
	got := delays(parse("/ip4/10.0.0.5/tcp/7946", "/ip4/10.0.0.5/udp/7946/quic-v1", "/ip4/198.51.100.7/udp/7946/quic-v1"))
	quic := max(got["/ip4/10.0.0.5/udp/7946/quic-v1"], got["/ip4/198.51.100.7/udp/7946/quic-v1"])
	if tcp := got["/ip4/10.0.0.5/tcp/7946"]; tcp < quic+time.Second {
		t.Errorf("TCP at %v, QUIC by %v: want TCP at least a second after (%v)", tcp, quic, got)
	}
	if len(got) != 3 {
		t.Errorf("ranked %d addresses, want 3: %v", len(got), got)
	}
	// A relay comes after the direct TCP dial, whether or not the peer has
	// public addresses.
	const relay = "/ip4/10.0.0.9/udp/4001/quic-v1/p2p/12D3KooWNkFdn9q7cSNCTa3WHtHcbTnVzZSq8xsEsbq5DNmbGkCY/p2p-circuit"
	for _, direct := range [][]string{
		{"/ip4/10.0.0.5/tcp/7946", "/ip4/10.0.0.5/udp/7946/quic-v1"},
		{"/ip4/198.51.100.7/tcp/7946", "/ip4/198.51.100.7/udp/7946/quic-v1"},
	} {
		got = delays(parse(append(direct, relay)...))
		if got[relay] <= got[direct[0]] {
			t.Errorf("relay at %v, direct TCP at %v: the relay must come after (%v)", got[relay], got[direct[0]], got)
		}
	}
	got = delays(parse("/ip4/10.0.0.5/tcp/7946"))
	if d := got["/ip4/10.0.0.5/tcp/7946"]; d != 0 {
		t.Errorf("a peer with TCP only is dialled after %v, want at once", d)
	}
}

// TestP2PDuplicateConnectionsAreClosed: of a peer's direct connections the
// sweep keeps the one carrying streams (QUIC on a tie) and closes the
// others that carry none once they are old enough; a young one waits.
func TestP2PDuplicateConnectionsAreClosed(t *testing.T) {
	now := time.Now()
	quic, _ := ma.NewMultiaddr("/ip4/10.0.0.2/udp/7946/quic-v1")
	tcp, _ := ma.NewMultiaddr("/ip4/10.0.0.2/tcp/7946")
	for _, tc := range []struct {
		name   string
		conns  []*fakeConn
		closed []bool
	}{
		{"idle TCP beside QUIC in use", []*fakeConn{
			{addr: tcp, age: time.Minute}, {addr: quic, streams: 1, age: time.Minute}}, []bool{true, false}},
		{"both idle: QUIC kept", []*fakeConn{
			{addr: tcp, age: time.Minute}, {addr: quic, age: time.Minute}}, []bool{true, false}},
		{"TCP in use: the idle QUIC goes", []*fakeConn{
			{addr: quic, age: time.Minute}, {addr: tcp, streams: 2, age: time.Minute}}, []bool{true, false}},
		{"a young duplicate waits", []*fakeConn{
			{addr: quic, streams: 1, age: time.Minute}, {addr: tcp, age: time.Second}}, []bool{false, false}},
		{"both in use: both stay", []*fakeConn{
			{addr: quic, streams: 1, age: time.Minute}, {addr: tcp, streams: 1, age: time.Minute}}, []bool{false, false}},
	} {
		tr := &p2pTransport{}
		conns := make([]network.Conn, len(tc.conns))
		want := 0
		for i, c := range tc.conns {
			c.opened = now.Add(-c.age)
			conns[i] = c
			if tc.closed[i] {
				want++
			}
		}
		if got := tr.closeDuplicates(now, conns); got != want {
			t.Errorf("%s: closed %d, want %d", tc.name, got, want)
		}
		for i, c := range tc.conns {
			if c.closed != tc.closed[i] {
				t.Errorf("%s: connection %d (%v) closed %v, want %v", tc.name, i, c.addr, c.closed, tc.closed[i])
			}
		}
		if got := tr.pstats.DuplicateTrims.Load(); got != uint64(want) {
			t.Errorf("%s: DuplicateTrims = %d, want %d", tc.name, got, want)
		}
	}
}

// fakeConn is a connection as closeDuplicates sees it.
type fakeConn struct {
	network.Conn
	addr    ma.Multiaddr
	streams int
	age     time.Duration
	opened  time.Time
	closed  bool
}

func (c *fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.addr }
func (c *fakeConn) GetStreams() []network.Stream  { return make([]network.Stream, c.streams) }
func (c *fakeConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Opened: c.opened}}
}
func (c *fakeConn) Close() error { c.closed = true; return nil }
