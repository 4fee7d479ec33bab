//go:build !nolibp2p

// NAT traversal for the p2p transport: relay reservations, circuits,
// direct-or-relayed connections, hole-punch retries, and public ranges.

package mesh

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// reserve holds a slot at a bootstrap peer that serves as a relay, so peers
// that cannot reach this node directly (it may be behind NAT; libp2p's
// reachability check needs several peers to tell) reach it through the
// relay, and hole punch from there. It returns the reservation's expiry and
// when it was tried; a peer that is no relay is asked again only rarely.
func (t *p2pTransport) reserve(ai peer.AddrInfo, last time.Time) (until, tried time.Time) {
	now := time.Now()
	ok, err := t.h.Peerstore().SupportsProtocols(ai.ID, relayproto.ProtoIDv2Hop)
	if err != nil || len(ok) == 0 {
		if protos, _ := t.h.Peerstore().GetProtocols(ai.ID); len(protos) > 0 {
			return time.Time{}, now.Add(10 * time.Minute) // identified, not a relay
		}
		return time.Time{}, last // not identified yet
	}
	ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
	defer cancel()
	r, err := relayclient.Reserve(ctx, t.h, ai)
	if err != nil {
		t.log.Warn("p2p: relay reservation failed, retrying", "relay", ai.ID.String(), "err", err)
		return time.Time{}, now
	}
	t.log.Info("p2p: reserved a slot at relay", "relay", ai.ID.String(), "expires", r.Expiration.Format(time.RFC3339),
		"circuit_limit", r.LimitDuration.String(), "circuit_bytes", r.LimitData)
	if (r.LimitDuration > 0 && r.LimitDuration < time.Hour) || (r.LimitData > 0 && r.LimitData < 64<<20) {
		// A stock libp2p relay: fine for a hole-punch handshake, but it cuts
		// gossip that has to stay relayed (symmetric NAT) every few minutes.
		t.log.Warn("p2p: this relay cuts relayed connections early; peers that cannot hole punch will reconnect through it again and again (run Shoal's --relay there)",
			"relay", ai.ID.String(), "after", r.LimitDuration.String(), "or_bytes", r.LimitData)
	}
	t.mu.Lock()
	t.resv[ai.ID] = Reservation{Relay: ai.ID.String(), Expires: r.Expiration, CircuitLimit: r.LimitDuration, CircuitBytes: r.LimitData}
	t.mu.Unlock()
	return r.Expiration, now
}

func (t *p2pTransport) reservations() []Reservation {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Reservation, 0, len(t.resv))
	for id, r := range t.resv {
		if time.Now().After(r.Expires) {
			delete(t.resv, id)
			continue
		}
		out = append(out, r)
	}
	return out
}

// circuits are the addresses of a peer through each relay (bootstrap peer).
func (t *p2pTransport) circuits(id peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range t.relays {
		if r.ID == id {
			continue
		}
		for _, ra := range r.Addrs {
			if m, err := ma.NewMultiaddr(ra.String() + "/p2p/" + r.ID.String() + "/p2p-circuit"); err == nil {
				out = append(out, m)
			}
		}
	}
	return out
}

// connected marks the peer's packet queue for an upgrade when a direct
// connection appears (after a hole punch, say): the long-lived packet stream
// opened over the relay would otherwise carry the gossip there for good.
func (t *p2pTransport) connected(_ network.Network, c network.Conn) {
	t.mu.Lock()
	delete(t.unreach, c.RemotePeer())
	t.mu.Unlock()
	if c.Stat().Limited || isCircuit(c.RemoteMultiaddr()) {
		return
	}
	t.mu.Lock()
	q := t.queues[c.RemotePeer()]
	t.mu.Unlock()
	if q != nil {
		q.upgrade.Store(true)
	}
}

// disconnected notes a closed connection to a relay we hold a slot at.
func (t *p2pTransport) disconnected(_ network.Network, c network.Conn) {
	id := c.RemotePeer()
	t.mu.Lock()
	if _, ok := t.resv[id]; ok {
		t.lost[id] = true
	}
	t.mu.Unlock()
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func relayedConn(c network.Conn) bool {
	return c.Stat().Limited || isCircuit(c.RemoteMultiaddr())
}

// peerConn reports how this node is connected to the named member: direct
// when any connection is not through a relay.
func (t *p2pTransport) peerConn(name string) string {
	id, ok := t.decode(name)
	if !ok {
		return ""
	}
	if id == t.self {
		return ""
	}
	kind := ConnNone
	for _, c := range t.h.Network().ConnsToPeer(id) {
		if !relayedConn(c) {
			return ConnDirect
		}
		kind = ConnRelayed
	}
	if kind == ConnNone && t.idleTrim > 0 {
		// Connections come and go with trimming on (closed here or by the
		// member): without one, a member is idle until a dial to it fails.
		t.mu.Lock()
		if !t.unreach[id] {
			kind = ConnIdle
		}
		t.mu.Unlock()
	}
	return kind
}

// punchLoop trims idle connections (trimIdle) and gives peers that are
// reached only through a relay another hole
// punch now and then. libp2p punches once, when an inbound relayed
// connection opens, and only if its hole-punch service is ready by then: it
// waits for an observed public address first, polling with a backoff, so a
// busy node can let that moment pass and stay relayed for good. Closing the
// relayed connection makes the next packet open a new one, and the peer's
// side punches again. Per peer the retries back off from 30 s to 30 min
// (symmetric NATs never punch; each retry costs a moment of reconnecting).
func (t *p2pTransport) punchLoop() {
	defer t.wg.Done()
	type retry struct {
		next time.Time
		wait time.Duration
	}
	retries := map[peer.ID]*retry{}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	every := p2pTrimEvery
	if t.idleTrim > 0 {
		every = min(every, t.idleTrim)
	}
	trim := time.NewTicker(every)
	defer trim.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-trim.C:
			if idle, dups := t.trimIdle(now); idle+dups > 0 {
				t.log.Debug("p2p: closed idle connections", "idle", idle, "duplicates", dups)
			}
			continue
		case <-tick.C:
		}
		t.mu.Lock()
		peers := make([]peer.ID, 0, len(t.queues))
		for id := range t.queues {
			peers = append(peers, id)
		}
		t.mu.Unlock()
		now := time.Now()
		live := make(map[peer.ID]bool, len(peers))
		for _, id := range peers {
			live[id] = true
			conns := t.h.Network().ConnsToPeer(id)
			relayedOnly, oldest := len(conns) > 0, now
			for _, c := range conns {
				if !relayedConn(c) {
					relayedOnly = false
					break
				}
				if o := c.Stat().Opened; o.Before(oldest) {
					oldest = o
				}
			}
			r := retries[id]
			if !relayedOnly {
				delete(retries, id)
				continue
			}
			if r == nil {
				r = &retry{next: now.Add(jitter(30 * time.Second)), wait: 30 * time.Second}
				retries[id] = r
			}
			if now.Before(r.next) || now.Sub(oldest) < 20*time.Second {
				continue
			}
			r.wait = min(2*r.wait, 30*time.Minute)
			r.next = now.Add(jitter(r.wait))
			t.pstats.PunchRetries.Add(1)
			t.log.Debug("p2p: peer still relayed; reconnecting for another hole punch", "peer", id.String(), "next_in", r.wait)
			_ = t.h.Network().ClosePeer(id)
		}
		for id := range retries {
			if !live[id] {
				delete(retries, id)
			}
		}
	}
}

// jitter spreads d by up to ±20%, so two peers do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(mrand.Int64N(int64(2*d/5)+1))
}

// punchCounter counts libp2p's hole-punch outcomes.
type punchCounter struct{ t *p2pTransport }

func (p punchCounter) HolePunchFinished(side string, attempt int, theirs, ours []ma.Multiaddr, direct network.ConnMultiaddrs) {
	p.t.pstats.HolePunches.Add(1)
	if direct != nil {
		p.t.pstats.HolePunchesDirect.Add(1)
		p.t.log.Info("p2p: hole punched, direct connection", "side", side, "attempt", attempt, "remote", direct.RemoteMultiaddr().String())
	} else {
		p.t.log.Debug("p2p: hole punch failed; traffic stays on the relay", "side", side, "attempt", attempt, "their_addrs", fmt.Sprint(theirs))
	}
}

func (p punchCounter) DirectDialFinished(bool) {}

var publicNetsMu sync.Mutex

// treatAsPublic removes the given ranges from go-multiaddr's private and
// unroutable lists, so libp2p's hole punching and address logic treat
// addresses in them as public. See P2PConfig.PublicNets.
func treatAsPublic(cidrs []string) error {
	var nets []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("%w: p2p public net %q is not a CIDR range such as 100.64.0.0/10", ErrConfig, c)
		}
		nets = append(nets, n)
	}
	if len(nets) == 0 {
		return nil
	}
	publicNetsMu.Lock()
	defer publicNetsMu.Unlock()
	for _, n := range nets {
		manet.Private4 = carveNet(manet.Private4, n)
		manet.Unroutable4 = carveNet(manet.Unroutable4, n)
		manet.Private6 = carveNet(manet.Private6, n)
		manet.Unroutable6 = carveNet(manet.Unroutable6, n)
	}
	return nil
}

// carveNet returns list without the addresses of pub: entries inside pub are
// dropped; an entry holding pub is split into the halves around it.
func carveNet(list []*net.IPNet, pub *net.IPNet) []*net.IPNet {
	pubOnes, pubBits := pub.Mask.Size()
	out := make([]*net.IPNet, 0, len(list)+8)
	for _, e := range list {
		ones, bits := e.Mask.Size()
		if bits != pubBits || !(e.Contains(pub.IP) || pub.Contains(e.IP)) {
			out = append(out, e)
			continue
		}
		if pubOnes <= ones { // e lies inside pub
			continue
		}
		cur := &net.IPNet{IP: e.IP.Mask(e.Mask), Mask: e.Mask}
		for o := ones; o < pubOnes; o++ {
			mask := net.CIDRMask(o+1, bits)
			lo := &net.IPNet{IP: cur.IP.Mask(mask), Mask: mask}
			hiIP := make(net.IP, len(lo.IP))
			copy(hiIP, lo.IP)
			hiIP[o/8] |= 0x80 >> (o % 8)
			hi := &net.IPNet{IP: hiIP, Mask: mask}
			if lo.Contains(pub.IP) {
				out, cur = append(out, hi), lo
			} else {
				out, cur = append(out, lo), hi
			}
		}
	}
	return out
}
