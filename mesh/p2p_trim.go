//go:build !nolibp2p

// The p2p transport's connections: a second connection to a peer that
// nothing uses is closed, TCP is dialled only when QUIC does not answer,
// and, with P2PConfig.IdleConnTimeout, connections to peers this node has
// not exchanged a packet with for a while are closed, so that it holds
// about the peers it talks to (its relay partners, the members it probed
// or was probed by lately) rather than every member of the mesh.
//
// Every connection costs about 130 KB (QUIC's state and three goroutines,
// the packet streams' readers and writers). memberlist probes one member a
// second, so a connection kept for probes stays about a minute at 60
// members; closed after a few idle seconds, most probes pay for a QUIC
// handshake. Measured (docs/benchmarks.md, footprint): at 5 s, 30 agents
// used 0.7 MB less anonymous memory each, 3 MB more file-backed (the
// handshake's code stays paged in) and 1.7 times the idle CPU; so it is
// off by default.

package mesh

import (
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	// defaultWorkingSet is P2PConfig.WorkingSet's default.
	defaultWorkingSet = 12
	// p2pTrimEvery is how often duplicate connections are looked for (and
	// idle ones, unless the idle timeout is shorter).
	p2pTrimEvery = 5 * time.Second
)

// useOf is the peer's last-use clock (unix nanoseconds of the last packet
// queued to it or read from it); the caller holds t.mu.
func (t *p2pTransport) useOfLocked(id peer.ID) *atomic.Int64 {
	u := t.used[id]
	if u == nil {
		u = new(atomic.Int64)
		t.used[id] = u
	}
	return u
}

func (t *p2pTransport) useOf(id peer.ID) *atomic.Int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.useOfLocked(id)
}

// trimIdle closes the connections of peers idle for t.idleTrim, oldest use
// first, while more than t.workingSet peers are connected, and, of a peer
// with several direct connections, those that carry no stream. It leaves
// alone relays, peers reached only through a relay (punchLoop's), and any
// peer with a memberlist stream (push/pull) open. A sender whose stream
// was on a closed connection opens a new one for its next packet.
func (t *p2pTransport) trimIdle(now time.Time) (idle, dups int) {
	nw := t.h.Network()
	relays := make(map[peer.ID]bool, len(t.relays))
	for _, ai := range t.relays {
		relays[ai.ID] = true
	}
	type cand struct {
		id   peer.ID
		last int64
	}
	var cands []cand
	peers := nw.Peers()
	for _, id := range peers {
		if relays[id] {
			continue
		}
		conns := nw.ConnsToPeer(id)
		direct := conns[:0:0]
		busy := false
		var opened time.Time
		for _, c := range conns {
			if relayedConn(c) {
				busy = true // punchLoop's, or on its way to a hole punch
				break
			}
			direct = append(direct, c)
			if o := c.Stat().Opened; o.After(opened) {
				opened = o
			}
			for _, s := range c.GetStreams() {
				if s.Protocol() != p2pPacketProto {
					busy = true
				}
			}
		}
		if busy || len(direct) == 0 {
			continue
		}
		if len(direct) > 1 {
			dups += t.closeDuplicates(now, direct)
		}
		if t.idleTrim <= 0 {
			continue // the duplicate sweep only
		}
		last := max(t.useOf(id).Load(), opened.UnixNano())
		if now.Sub(time.Unix(0, last)) >= t.idleTrim {
			cands = append(cands, cand{id, last})
		}
	}
	// Forget the clocks of peers neither connected nor written to (members
	// gone), so the map stays the size of the mesh.
	// (libp2p is asked outside t.mu: its notifications take t.mu.)
	var gone []peer.ID
	t.mu.Lock()
	for id := range t.used {
		if _, q := t.queues[id]; !q {
			gone = append(gone, id)
		}
	}
	t.mu.Unlock()
	gone = slices.DeleteFunc(gone, func(id peer.ID) bool { return nw.Connectedness(id) == network.Connected })
	t.mu.Lock()
	for _, id := range gone {
		if _, q := t.queues[id]; !q {
			delete(t.used, id)
		}
	}
	if len(t.unreach) > 4*t.workingSet+len(peers) {
		// Marks of members long gone: the map stays the size of the mesh.
		clear(t.unreach)
	}
	t.mu.Unlock()
	extra := len(peers) - t.workingSet
	if extra <= 0 || len(cands) == 0 {
		return 0, dups
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].last < cands[j].last })
	for _, c := range cands[:min(extra, len(cands))] {
		t.h.ConnManager().Unprotect(c.id, p2pProtectTag)
		_ = nw.ClosePeer(c.id)
		t.mu.Lock()
		delete(t.used, c.id)
		t.mu.Unlock()
		idle++
	}
	t.pstats.IdleTrims.Add(uint64(idle))
	return idle, dups
}

// closeDuplicates closes, of a peer's direct connections, those open for
// the idle timeout that carry no stream, keeping at least one: two peers that
// dialled each other at once, or a TCP dial that raced a slow QUIC
// handshake, each leave a second connection nothing uses.
func (t *p2pTransport) closeDuplicates(now time.Time, conns []network.Conn) int {
	// Keep the connection with the most streams (QUIC first on a tie).
	slices.SortStableFunc(conns, func(a, b network.Conn) int {
		if d := len(b.GetStreams()) - len(a.GetStreams()); d != 0 {
			return d
		}
		return boolInt(isQUICAddr(b.RemoteMultiaddr())) - boolInt(isQUICAddr(a.RemoteMultiaddr()))
	})
	n := 0
	for _, c := range conns[1:] {
		if len(c.GetStreams()) == 0 && now.Sub(c.Stat().Opened) >= p2pTrimEvery {
			_ = c.Close()
			n++
		}
	}
	t.pstats.DuplicateTrims.Add(uint64(n))
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isQUICAddr(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

func isTCPAddr(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_TCP)
	return err == nil
}

// p2pTCPHoldBack is how long a dial waits for QUIC before it tries TCP.
const p2pTCPHoldBack = time.Second

// p2pDialRanker is libp2p's default dial ranking with TCP held back
// p2pTCPHoldBack behind the peer's last QUIC address, and relayed
// addresses behind that TCP. The default gives
// QUIC 30 ms on private networks before it dials TCP as well; a handshake
// on a busy or slow host takes longer, both connections open and both
// stay (12 of 29 peers of a node held a second, TCP, connection in an idle
// mesh of 30 on loopback). TCP is the fallback where UDP is blocked, and
// a second late is nothing to gossip.
func p2pDialRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	ranked := swarm.DefaultDialRanker(addrs)
	quic := time.Duration(-1)
	for _, a := range ranked {
		if isQUICAddr(a.Addr) && !isCircuit(a.Addr) {
			quic = max(quic, a.Delay)
		}
	}
	if quic < 0 {
		return ranked
	}
	tcp := time.Duration(-1)
	for i, a := range ranked {
		if isTCPAddr(a.Addr) && !isCircuit(a.Addr) {
			ranked[i].Delay = max(a.Delay, quic+p2pTCPHoldBack)
			tcp = max(tcp, ranked[i].Delay)
		}
	}
	if tcp >= 0 {
		// The relay stays behind the direct TCP dial: where UDP is blocked
		// TCP is the way, and a relayed connection that came first would
		// satisfy the dial and cancel it.
		for i, a := range ranked {
			if isCircuit(a.Addr) {
				ranked[i].Delay = max(a.Delay, tcp+swarm.RelayDelay)
			}
		}
	}
	sort.SliceStable(ranked, func(i, j int) bool { return ranked[i].Delay < ranked[j].Delay })
	return ranked
}
