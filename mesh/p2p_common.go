package mesh

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// P2PTransport carries the mesh over libp2p (the p2p profile): QUIC with
// TCP fallback, Noise, a persisted Ed25519 key in Config.DataDir whose peer
// ID becomes the node name, relays and hole punching. It admits only peers
// that hold the mesh key (Config.Keys) or are on c.AllowPeers. A binary
// built with -tags nolibp2p refuses it.
func P2PTransport(c P2PConfig) Transport { return p2pSpec{c} }

type p2pSpec struct{ cfg P2PConfig }

func (p p2pSpec) identify(cfg *Config, log *slog.Logger) (any, error) { return p2pIdentity(cfg, log) }

func (p p2pSpec) open(env *transportEnv) (memberlist.NodeAwareTransport, error) {
	if len(env.keys()) == 0 && len(p.cfg.AllowPeers) == 0 {
		// Without key material every libp2p peer that speaks Shoal would be
		// admitted: across NATs and relays, anyone on the Internet.
		return nil, fmt.Errorf("%w: profile p2p admits only peers that hold the mesh key or are on an allow-list: set a gossip key (--encrypt, see 'shoal keygen'; or --keyring-file) or --p2p-allow-peer", ErrConfig)
	}
	return newP2PTransport(*env.cfg, p.cfg, env.ident, env.stats, env.log, env.handle, env.keys)
}

// P2PConfig configures P2PTransport.
type P2PConfig struct {
	// Bootstrap lists peers to connect to and join at start, as multiaddrs
	// with a peer ID (/ip4/198.18.0.1/udp/7946/quic-v1/p2p/12D3Koo…). They
	// are retried with backoff while unreachable.
	Bootstrap []string
	// Relay makes this node a circuit relay (v2) for nodes behind NAT, with
	// limits sized for gossip (no 2-minute or 128 KiB cut-off).
	Relay bool
	// MDNS announces and looks for mesh peers on the local network.
	MDNS bool
	// MaxPeers sizes the resource and connection manager limits
	// (default 512).
	MaxPeers int
	// AllowPeers, when not empty, admits only these peer IDs (in addition
	// to the mesh key check).
	AllowPeers []string
	// PublicNets lists address ranges (CIDR) to treat as public for NAT
	// traversal although they are private or reserved: the outside of the
	// NATs when it is a private WAN, carrier-grade NAT (100.64.0.0/10) or a
	// test network (198.18.0.0/15). libp2p hole punches only from addresses
	// it believes public. Process-wide: it changes how every libp2p host in
	// this process classifies those addresses.
	PublicNets []string
	// FastTimings uses the local profile's memberlist timings on the p2p
	// profile (tests, the dev mesh).
	FastTimings bool
	// IdleConnTimeout, when set, closes a direct connection to a peer when
	// no packet crossed it either way for this long and more than
	// WorkingSet peers are connected; the next packet to the peer connects
	// again. 0 (the default) keeps every connection. Relays, peers reached
	// through a relay and a relay's own connections are never trimmed.
	// It trades CPU for anonymous memory: at 5 s, 30 agents on loopback
	// each used 0.7 MB less anonymous memory and 1.7 times the idle CPU
	// (a QUIC handshake for most probes; docs/benchmarks.md, footprint).
	IdleConnTimeout time.Duration
	// WorkingSet is how many connected peers a node keeps whatever their
	// use when IdleConnTimeout is set (default 12).
	WorkingSet int
}

// P2PStats counts what the p2p transport refused or dropped.
type P2PStats struct {
	// AuthRefused counts streams from peers that could not prove they hold
	// the mesh key; GaterRefused counts connections the gater turned away.
	AuthRefused, GaterRefused atomic.Uint64
	// QueueDrops counts packets dropped because a peer's send queue was
	// full; DialFailures counts failed attempts to reach a peer.
	QueueDrops, DialFailures atomic.Uint64
	// BootstrapFailures counts failed attempts to reach a bootstrap peer.
	BootstrapFailures atomic.Uint64
	// PacketsDirect and PacketsRelayed count packets written on direct
	// connections and on relayed (circuit) connections.
	PacketsDirect, PacketsRelayed atomic.Uint64
	// HolePunches counts hole-punch attempts finished, HolePunchesDirect
	// those that left a direct connection; Upgrades counts packet streams
	// moved from a relayed connection to a direct one.
	HolePunches, HolePunchesDirect, Upgrades atomic.Uint64
	// PunchRetries counts relayed connections closed so that a new one
	// starts another hole punch (see p2pTransport.punchLoop).
	PunchRetries atomic.Uint64
	// IdleTrims counts connections closed because no packet crossed them
	// for a while (the working set, see P2PConfig.IdleConnTimeout); DuplicateTrims
	// counts second connections to a peer closed because nothing used them.
	IdleTrims, DuplicateTrims atomic.Uint64
}

// Connection kinds reported by PeerConn.
const (
	ConnDirect  = "direct"
	ConnRelayed = "relayed"
	ConnNone    = "none"
	// ConnIdle is a member without a connection while idle trimming is on
	// (P2PConfig.IdleConnTimeout) and with no failed dial to it since its
	// last connection: the next packet to it connects again.
	ConnIdle = "idle"
)

// p2pExtras is what a p2p transport adds to memberlist's interface.
type p2pExtras interface {
	resolveJoin(addrs []string) ([]string, error)
	fullAddrs() []string
	counters() *P2PStats
	setOnPeer(func(memberlistAddr string))
	peerConn(name string) string
	reservations() []Reservation
}

// Reservation is a slot this node holds at a relay (p2p profile): peers
// that cannot reach it directly come through there.
type Reservation struct {
	Relay   string
	Expires time.Time
	// CircuitLimit and CircuitBytes are how long and how many bytes the
	// relay lets one relayed connection carry (0: no limit).
	CircuitLimit time.Duration
	CircuitBytes uint64
}

// Reservations lists the relay slots this node holds; nil on the other
// profiles.
func (m *Mesh) Reservations() []Reservation {
	if x, ok := m.trans.(p2pExtras); ok {
		return x.reservations()
	}
	return nil
}

// P2PAddrs returns this node's multiaddrs with its peer ID, to be given to
// others as join or bootstrap addresses; nil on the other profiles.
func (m *Mesh) P2PAddrs() []string {
	if x, ok := m.trans.(p2pExtras); ok {
		return x.fullAddrs()
	}
	return nil
}

// P2PStats returns the p2p transport's counters; nil on the other profiles.
func (m *Mesh) P2PStats() *P2PStats {
	if x, ok := m.trans.(p2pExtras); ok {
		return x.counters()
	}
	return nil
}

// PeerConn tells how this node reaches a member on the p2p profile: direct,
// relayed (through a circuit relay) or none; "" on the other profiles.
func (m *Mesh) PeerConn(name string) string {
	if x, ok := m.trans.(p2pExtras); ok {
		return x.peerConn(name)
	}
	return ""
}

// ErrNoLibp2p is returned for the p2p profile by a binary built with
// -tags nolibp2p.
const errNoLibp2pText = "this build has no libp2p (built with -tags nolibp2p); use --profile lan"
