//go:build !nolibp2p

// Who the p2p transport admits: the mesh-key token at the start of every
// stream, and the connection gater that turns away refused and unlisted peers.

package mesh

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// authToken proves to peer `to` that `from` holds key: an HMAC over both
// peer IDs (authenticated by Noise or QUIC's TLS) and the mesh label.
func authToken(key []byte, label string, from, to peer.ID) []byte {
	if len(key) == 0 {
		key = []byte("shoal-p2p-no-key")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("shoal-p2p-auth-v1\x00"))
	mac.Write([]byte(label))
	mac.Write([]byte{0})
	mac.Write([]byte(from))
	mac.Write([]byte{0})
	mac.Write([]byte(to))
	return mac.Sum(nil)
}

func (t *p2pTransport) primaryKey() []byte {
	ks := t.keys()
	if len(ks) == 0 {
		return nil
	}
	return ks[0]
}

func (t *p2pTransport) verify(from peer.ID, tok []byte) bool {
	ks := t.keys()
	if len(ks) == 0 {
		return hmac.Equal(tok, authToken(nil, t.label, from, t.self))
	}
	for _, k := range ks {
		if hmac.Equal(tok, authToken(k, t.label, from, t.self)) {
			return true
		}
	}
	return false
}

// accept checks the token at the start of an inbound stream; a peer that
// fails is counted, disconnected and refused by the gater for a minute.
func (t *p2pTransport) accept(s network.Stream) bool {
	from := s.Conn().RemotePeer()
	tok := make([]byte, p2pAuthLen)
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadFull(s, tok)
	_ = s.SetReadDeadline(time.Time{})
	if err == nil && t.verify(from, tok) {
		t.h.ConnManager().Protect(from, p2pProtectTag)
		return true
	}
	t.pstats.AuthRefused.Add(1)
	t.log.Warn("p2p: refused a peer without the mesh key", "peer", from.String(), "addr", s.Conn().RemoteMultiaddr().String(), "err", err)
	t.mu.Lock()
	t.blocked[from] = time.Now().Add(time.Minute)
	t.mu.Unlock()
	_ = s.Reset()
	_ = t.h.Network().ClosePeer(from)
	return false
}

func (t *p2pTransport) isBlocked(id peer.ID) bool {
	if t.allow != nil && !t.allow[id] {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.blocked[id]
	if ok && time.Now().After(until) {
		delete(t.blocked, id)
		return false
	}
	return ok
}

// p2pGater turns away peers refused lately (wrong mesh key) and, with an
// allow-list, every peer not on it.
type p2pGater struct{ t *p2pTransport }

func (g *p2pGater) refuse(id peer.ID) bool {
	if g.t.isBlocked(id) {
		g.t.pstats.GaterRefused.Add(1)
		return true
	}
	return false
}

func (g *p2pGater) InterceptPeerDial(id peer.ID) bool { return !g.refuse(id) }
func (g *p2pGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool {
	return true
}
func (g *p2pGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g *p2pGater) InterceptSecured(_ network.Direction, id peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.refuse(id)
}
func (g *p2pGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
