//go:build !nolibp2p

// How the p2p transport finds peers: join addresses, bootstrap peers, mDNS,
// and address hints for peers learned through gossip.

package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func parseP2PAddr(s string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a multiaddr (want /ip4/…/udp/…/quic-v1/p2p/<peer-id>): %v", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("%q has no peer ID (want /ip4/…/udp/…/quic-v1/p2p/<peer-id>): %v", s, err)
	}
	return ai, nil
}

// memberlistAddr is the "name/ip:port" form memberlist's Join takes, from a
// peer's multiaddrs: the name routes the packets, the ip:port is a hint.
func memberlistAddr(ai peer.AddrInfo) string {
	ipport := "0.0.0.0:1"
	for _, a := range ai.Addrs {
		if na, err := manet.ToNetAddr(a); err == nil {
			switch x := na.(type) {
			case *net.UDPAddr:
				ipport = net.JoinHostPort(x.IP.String(), strconv.Itoa(x.Port))
			case *net.TCPAddr:
				ipport = net.JoinHostPort(x.IP.String(), strconv.Itoa(x.Port))
			default:
				continue
			}
			break
		}
	}
	return ai.ID.String() + "/" + ipport
}

func (t *p2pTransport) resolveJoin(addrs []string) ([]string, error) {
	out := make([]string, 0, len(addrs))
	var errs []error
	for _, s := range addrs {
		if !strings.HasPrefix(s, "/") {
			if i := strings.Index(s, "/"); i > 0 {
				if _, err := peer.Decode(s[:i]); err == nil {
					out = append(out, s)
					continue
				}
			}
			errs = append(errs, fmt.Errorf("p2p join address %q has no peer ID: use a multiaddr such as /ip4/198.18.0.1/udp/7946/quic-v1/p2p/<peer-id>", s))
			continue
		}
		ai, err := parseP2PAddr(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
		out = append(out, memberlistAddr(*ai))
	}
	return out, errors.Join(errs...)
}

func (t *p2pTransport) fullAddrs() []string {
	var out []string
	for _, a := range t.h.Addrs() {
		out = append(out, a.String()+"/p2p/"+t.self.String())
	}
	return out
}

func (t *p2pTransport) setOnPeer(f func(string)) {
	t.onPeer.Store(&f)
	t.hookOnce.Do(func() { close(t.hookSet) })
}

// peerFound joins through a newly connected peer; false while the mesh has
// not set its join hook yet.
func (t *p2pTransport) peerFound(ai peer.AddrInfo) bool {
	f := t.onPeer.Load()
	if f == nil {
		return false
	}
	if ai.ID != t.self {
		(*f)(memberlistAddr(ai))
	}
	return true
}

// bootstrapLoop keeps a bootstrap peer connected, with backoff while it is
// unreachable; each time it (re)connects, the mesh joins through it.
func (t *p2pTransport) bootstrapLoop(ai peer.AddrInfo) {
	defer t.wg.Done()
	wait := 500 * time.Millisecond
	attempt := 0
	pending := false // connected, not yet joined through
	var resvUntil, resvTried time.Time
	for {
		if t.h.Network().Connectedness(ai.ID) != network.Connected {
			attempt++
			ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
			err := t.h.Connect(ctx, ai)
			cancel()
			if t.ctx.Err() != nil {
				return
			}
			if err != nil {
				t.pstats.BootstrapFailures.Add(1)
				t.log.Warn("p2p: bootstrap peer unreachable, retrying", "peer", ai.ID.String(), "attempt", attempt, "retry_in", wait, "err", err)
				select {
				case <-t.ctx.Done():
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, 30*time.Second)
				continue
			}
			t.log.Info("p2p: connected to bootstrap peer", "peer", ai.ID.String(), "attempt", attempt)
			wait = 500 * time.Millisecond
			attempt = 0
			pending = true
		}
		t.mu.Lock()
		lost := t.lost[ai.ID]
		delete(t.lost, ai.ID)
		if lost {
			delete(t.resv, ai.ID)
		}
		t.mu.Unlock()
		if lost {
			// A relay that restarted forgot our slot (and the connection
			// may already be back, through a packet): reserve again now
			// rather than when the old slot would have expired.
			resvUntil, resvTried = time.Time{}, time.Time{}
		}
		if pending && t.peerFound(ai) {
			pending = false
		}
		if !t.isRelay && time.Until(resvUntil) < 2*time.Minute && time.Since(resvTried) > 20*time.Second {
			resvUntil, resvTried = t.reserve(ai, resvTried)
		}
		next := 5 * time.Second
		if pending {
			next = 50 * time.Millisecond
		}
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

type mdnsNotifee struct{ t *p2pTransport }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	t := n.t
	if ai.ID == t.self || t.closed.Load() {
		return
	}
	t.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
	go func() {
		ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
		defer cancel()
		if err := t.h.Connect(ctx, ai); err != nil {
			t.log.Debug("p2p: mDNS peer unreachable", "peer", ai.ID.String(), "err", err)
			return
		}
		select { // the mesh sets its join hook right after start
		case <-t.hookSet:
			t.peerFound(ai)
		case <-t.ctx.Done():
		}
	}()
}

// hint adds the advertised ip:port (QUIC and TCP) and circuits through the
// bootstrap peers as addresses to try for a peer learned through gossip: the
// advertised address is a private one when the peer is behind NAT, and then
// only the circuit reaches it (and hole punching goes on from there). At
// most once a minute per peer.
func (t *p2pTransport) hint(id peer.ID, ipport string) {
	if id == t.self {
		return
	}
	t.mu.Lock()
	last, ok := t.hinted[id]
	t.mu.Unlock()
	if ok && time.Since(last) < time.Minute {
		return
	}
	if t.h.Network().Connectedness(id) == network.Connected {
		return
	}
	t.mu.Lock()
	if len(t.hinted) > 4096 {
		clear(t.hinted)
	}
	t.hinted[id] = time.Now()
	t.mu.Unlock()
	var addrs []ma.Multiaddr
	if host, port, err := net.SplitHostPort(ipport); err == nil && len(t.h.Peerstore().Addrs(id)) == 0 {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			fam := "ip4"
			if ip.To4() == nil {
				fam = "ip6"
			}
			for _, f := range []string{"/%s/%s/udp/%s/quic-v1", "/%s/%s/tcp/%s"} {
				if m, err := ma.NewMultiaddr(fmt.Sprintf(f, fam, host, port)); err == nil {
					addrs = append(addrs, m)
				}
			}
		}
	}
	t.h.Peerstore().AddAddrs(id, append(addrs, t.circuits(id)...), 10*time.Minute)
}
