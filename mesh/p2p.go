//go:build !nolibp2p

package mesh

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Protocol IDs: memberlist packets framed on one long-lived stream per peer,
// and memberlist streams (push/pull, TCP fallback) as one libp2p stream each.
const (
	p2pPacketProto protocol.ID = "/shoal/packet/1.0.0"
	p2pStreamProto protocol.ID = "/shoal/stream/1.0.0"
	identityFile               = "p2p.key"
	p2pQueueLen                = 256
	p2pMaxFrame                = 1 << 16
	p2pProtectTag              = "shoal-mesh"
	p2pAuthLen                 = sha256.Size
)

// p2pID is a node's libp2p identity.
type p2pID struct {
	key crypto.PrivKey
	id  peer.ID
}

// p2pIdentity loads (or creates) the Ed25519 key in DataDir and sets the
// node name to its peer ID: on this profile a node cannot claim another's
// name, since every connection proves the key behind the ID.
func p2pIdentity(cfg *Config, log *slog.Logger) (any, error) {
	var key crypto.PrivKey
	if cfg.DataDir == "" {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		log.Warn("p2p: no data directory; this node's identity (peer ID) will change on restart")
		key = k
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
		}
		path := filepath.Join(cfg.DataDir, identityFile)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			k, err := crypto.UnmarshalPrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("p2p identity file %s is corrupt (%v): restore it from a backup, or remove it to start as a new node with a new peer ID", path, err)
			}
			if k.Type() != crypto.Ed25519 {
				return nil, fmt.Errorf("p2p identity file %s holds a %v key, not Ed25519: remove it to start as a new node", path, k.Type())
			}
			key = k
		case errors.Is(err, os.ErrNotExist):
			k, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				return nil, err
			}
			raw, err := crypto.MarshalPrivateKey(k)
			if err != nil {
				return nil, err
			}
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, raw, 0o600); err != nil {
				return nil, fmt.Errorf("write p2p identity file: %w", err)
			}
			if err := os.Rename(tmp, path); err != nil {
				return nil, fmt.Errorf("write p2p identity file: %w", err)
			}
			key = k
		default:
			return nil, fmt.Errorf("p2p identity file %s: %w", path, err)
		}
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if cfg.NodeName != "" && cfg.NodeName != id.String() {
		log.Info("p2p: the node name is the peer ID on this profile", "given", cfg.NodeName, "peer_id", id.String())
		if cfg.Tags == nil {
			cfg.Tags = map[string]string{}
		}
		if _, ok := cfg.Tags["alias"]; !ok && len(cfg.NodeName) <= 64 {
			cfg.Tags["alias"] = cfg.NodeName
		}
	}
	cfg.NodeName = id.String()
	return &p2pID{key: key, id: id}, nil
}

// p2pTransport carries memberlist over libp2p.
type p2pTransport struct {
	h        host.Host
	self     peer.ID
	label    string
	keys     func() [][]byte
	allow    map[peer.ID]bool
	advIP    net.IP
	advPort  int
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	handle   func([]byte, net.Addr)
	stats    *Stats
	pstats   P2PStats
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   atomic.Bool
	mdns     mdns.Service
	relays   []peer.AddrInfo
	isRelay  bool
	onPeer   atomic.Pointer[func(string)]
	hookSet  chan struct{} // closed once onPeer is set
	hookOnce sync.Once
	decoded  sync.Map // string -> peer.ID ("" when not one)
	decodedN atomic.Int64

	mu      sync.Mutex
	queues  map[peer.ID]*peerQueue
	blocked map[peer.ID]time.Time // refused peers, until
	hinted  map[peer.ID]time.Time // when hint last added addresses
	resv    map[peer.ID]Reservation
	lost    map[peer.ID]bool // a connection to a relay closed: reserve again
}

var (
	_ memberlist.NodeAwareTransport = (*p2pTransport)(nil)
	_ p2pExtras                     = (*p2pTransport)(nil)
)

type peerQueue struct {
	ch chan []byte
	// upgrade is set when a direct connection to the peer appears: the
	// sender then moves its stream off the relayed connection.
	upgrade atomic.Bool
}

// p2pAddr is the net.Addr memberlist and Shoal's handler see for a peer.
type p2pAddr struct{ id peer.ID }

func (a p2pAddr) Network() string { return "p2p" }
func (a p2pAddr) String() string  { return a.id.String() }

func newP2PTransport(cfg Config, pc P2PConfig, ident any, stats *Stats, log *slog.Logger, handle func([]byte, net.Addr), keys func() [][]byte) (memberlist.NodeAwareTransport, error) {
	idn := ident.(*p2pID)
	ip := net.ParseIP(cfg.BindAddr)
	if ip == nil {
		return nil, fmt.Errorf("bind address %q is not an IP address", cfg.BindAddr)
	}
	port := cfg.BindPort
	if port == 0 {
		p, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		port = p
	}
	fam := "ip4"
	if ip.To4() == nil {
		fam = "ip6"
	}
	listen := []string{
		fmt.Sprintf("/%s/%s/udp/%d/quic-v1", fam, ip, port),
		fmt.Sprintf("/%s/%s/tcp/%d", fam, ip, port),
	}
	maxPeers := pc.MaxPeers
	if maxPeers <= 0 {
		maxPeers = 512
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &p2pTransport{
		self: idn.id, label: cfg.Label, keys: keys,
		packetCh: make(chan *memberlist.Packet, 256),
		streamCh: make(chan net.Conn),
		handle:   handle, stats: stats, log: log.With("transport", "p2p"),
		ctx: ctx, cancel: cancel,
		queues:  map[peer.ID]*peerQueue{},
		blocked: map[peer.ID]time.Time{},
		hinted:  map[peer.ID]time.Time{},
		hookSet: make(chan struct{}),
		resv:    map[peer.ID]Reservation{},
		lost:    map[peer.ID]bool{},
		advPort: port,
	}
	if len(pc.AllowPeers) > 0 {
		t.allow = map[peer.ID]bool{}
		for _, s := range pc.AllowPeers {
			id, err := peer.Decode(s)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("%w: allowed peer %q is not a peer ID: %v", ErrConfig, s, err)
			}
			t.allow[id] = true
		}
	}
	if cfg.AdvertiseAddr != "" {
		t.advIP = net.ParseIP(cfg.AdvertiseAddr)
	} else if !ip.IsUnspecified() {
		t.advIP = ip
	} else if priv, err := sockaddr.GetPrivateIP(); err == nil && priv != "" {
		t.advIP = net.ParseIP(priv)
	} else {
		t.advIP = net.IPv4(127, 0, 0, 1)
	}
	if a4 := t.advIP.To4(); a4 != nil {
		t.advIP = a4
	}
	if cfg.AdvertisePort != 0 {
		t.advPort = cfg.AdvertisePort
	}
	var boot []peer.AddrInfo
	for _, s := range pc.Bootstrap {
		ai, err := parseP2PAddr(s)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%w: bootstrap peer: %v", ErrConfig, err)
		}
		boot = append(boot, *ai)
	}
	t.relays = boot
	t.isRelay = pc.Relay
	if err := treatAsPublic(pc.PublicNets); err != nil {
		cancel()
		return nil, err
	}

	// Explicit limits, sized from the mesh: a member needs a connection or
	// two and a handful of streams; the rest is head-room for relays,
	// identify and hole punching.
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	conns := rcmgr.LimitVal(2*maxPeers + 64)
	streams := rcmgr.LimitVal(16*maxPeers + 256)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: conns, ConnsInbound: conns, ConnsOutbound: conns,
			Streams: streams, StreamsInbound: streams, StreamsOutbound: streams,
			Memory: rcmgr.LimitVal64(64<<20 + int64(maxPeers)<<17), FD: rcmgr.LimitVal(maxPeers + 64),
		},
		Transient: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(64 + maxPeers/4), Streams: rcmgr.LimitVal(256 + maxPeers/2),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns: 8, ConnsInbound: 8, ConnsOutbound: 8,
			Streams: 64, StreamsInbound: 64, StreamsOutbound: 64,
		},
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(limits.AutoScale())))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("libp2p resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(maxPeers+maxPeers/4, 2*maxPeers, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("libp2p connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(idn.key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(&p2pGater{t: t}),
		libp2p.UserAgent("shoal"),
		libp2p.DisableMetrics(),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(holepunch.WithMetricsTracer(punchCounter{t})),
	}
	if pc.Relay {
		// libp2p's defaults cut a relayed connection after 2 minutes or
		// 128 KiB: fine for a hole-punch handshake, not for gossip.
		rc := relayv2.DefaultResources()
		rc.Limit = &relayv2.RelayLimit{Duration: 24 * time.Hour, Data: 1 << 40}
		rc.MaxReservations = maxPeers
		rc.MaxCircuits = 64
		rc.ReservationTTL = time.Hour
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(rc)), libp2p.ForceReachabilityPublic())
	} else if len(boot) > 0 {
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(boot))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start libp2p host on %v: %w", listen, err)
	}
	t.h = h
	h.SetStreamHandler(p2pPacketProto, t.handlePacketStream)
	h.SetStreamHandler(p2pStreamProto, t.handleStream)
	h.Network().Notify(&network.NotifyBundle{ConnectedF: t.connected, DisconnectedF: t.disconnected})
	if !pc.Relay {
		t.wg.Add(1)
		go t.punchLoop()
	}
	for _, ai := range boot {
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		h.ConnManager().Protect(ai.ID, p2pProtectTag)
		t.wg.Add(1)
		go t.bootstrapLoop(ai)
	}
	if pc.MDNS {
		svc := "shoal"
		if cfg.Label != "" {
			svc = "shoal-" + cfg.Label
		}
		t.mdns = mdns.NewMdnsService(h, svc, mdnsNotifee{t})
		if err := t.mdns.Start(); err != nil {
			t.log.Warn("p2p: mDNS not started", "err", err)
			t.mdns = nil
		}
	}
	t.log.Info("p2p: listening", "peer_id", h.ID().String(), "addrs", t.fullAddrs())
	return t, nil
}

func freePort(ip net.IP) (int, error) {
	for range 20 {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip})
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: p})
		l.Close()
		if err == nil {
			u.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port for both UDP and TCP")
}

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

func (t *p2pTransport) counters() *P2PStats { return &t.pstats }

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

func (t *p2pTransport) handlePacketStream(s network.Stream) {
	if !t.accept(s) {
		return
	}
	defer s.Close()
	from := p2pAddr{s.Conn().RemotePeer()}
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(s, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > p2pMaxFrame {
			t.log.Debug("p2p: bad frame length, closing stream", "peer", from.String(), "len", n)
			_ = s.Reset()
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(s, buf); err != nil {
			return
		}
		ts := time.Now()
		t.stats.PacketsIn.Add(1)
		t.stats.BytesIn.Add(uint64(n) + 4)
		if buf[0] == PacketMagic {
			t.stats.ShoalPacketsIn.Add(1)
			t.stats.ShoalBytesIn.Add(uint64(n))
			t.handle(buf, from)
			continue
		}
		select {
		case t.packetCh <- &memberlist.Packet{Buf: buf, From: from, Timestamp: ts}:
		case <-t.ctx.Done():
			return
		}
	}
}

func (t *p2pTransport) handleStream(s network.Stream) {
	if !t.accept(s) {
		return
	}
	c := &p2pConn{Stream: s, local: p2pAddr{t.self}, remote: p2pAddr{s.Conn().RemotePeer()}}
	select {
	case t.streamCh <- &countingConn{Conn: c, s: t.stats}:
	case <-t.ctx.Done():
		_ = s.Reset()
	}
}

// p2pConn makes a libp2p stream a net.Conn for memberlist.
type p2pConn struct {
	network.Stream
	local, remote net.Addr
}

func (c *p2pConn) LocalAddr() net.Addr  { return c.local }
func (c *p2pConn) RemoteAddr() net.Addr { return c.remote }
func (c *p2pConn) Close() error         { return c.Stream.Close() }

func (t *p2pTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.advIP, t.advPort, nil
}

func (t *p2pTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *p2pTransport) StreamCh() <-chan net.Conn           { return t.streamCh }

// peerOf finds the peer for a memberlist address: by node name (the peer
// ID), else by the address itself when it is a peer ID (a reply to From).
func (t *p2pTransport) peerOf(a memberlist.Address) (peer.ID, error) {
	if a.Name != "" {
		if id, ok := t.decode(a.Name); ok {
			t.hint(id, a.Addr)
			return id, nil
		}
	}
	if id, ok := t.decode(a.Addr); ok {
		return id, nil
	}
	return "", fmt.Errorf("p2p: no peer ID for address %q (node %q)", a.Addr, a.Name)
}

// decode parses a peer ID, remembering the answer: every packet names its
// peer, and base58 decoding showed in idle CPU profiles.
func (t *p2pTransport) decode(s string) (peer.ID, bool) {
	if v, ok := t.decoded.Load(s); ok {
		id, _ := v.(peer.ID)
		return id, id != ""
	}
	id, err := peer.Decode(s)
	if err != nil {
		id = ""
	}
	if t.decodedN.Add(1) > 8192 { // bounded: names of members come and go
		t.decoded.Clear()
		t.decodedN.Store(0)
	}
	t.decoded.Store(s, id)
	return id, id != ""
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

func (t *p2pTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress queues the packet for the peer's sender and returns at
// once: a full queue drops the packet (counted), it never blocks memberlist.
func (t *p2pTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	id, err := t.peerOf(a)
	if err != nil {
		t.stats.SendErrors.Add(1)
		return now, err
	}
	if t.closed.Load() {
		return now, errors.New("p2p transport shut down")
	}
	t.stats.PacketsOut.Add(1)
	t.stats.BytesOut.Add(uint64(len(b)) + 4)
	if len(b) > 0 && b[0] == PacketMagic {
		t.stats.ShoalPacketsOut.Add(1)
		t.stats.ShoalBytesOut.Add(uint64(len(b)))
	}
	if len(b) == 0 || len(b) > p2pMaxFrame {
		t.stats.SendErrors.Add(1)
		return now, fmt.Errorf("p2p: packet of %d bytes", len(b))
	}
	frame := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(frame, uint32(len(b)))
	copy(frame[4:], b)
	t.mu.Lock()
	q, ok := t.queues[id]
	if !ok {
		q = &peerQueue{ch: make(chan []byte, p2pQueueLen)}
		t.queues[id] = q
		t.wg.Add(1)
		go t.sender(id, q)
	}
	t.mu.Unlock()
	select {
	case q.ch <- frame:
	default:
		t.pstats.QueueDrops.Add(1)
		t.stats.SendErrors.Add(1)
	}
	return now, nil
}

// sender writes a peer's queued frames on one long-lived stream, opening it
// again after an error. A packet it cannot send is dropped and counted.
func (t *p2pTransport) sender(id peer.ID, q *peerQueue) {
	defer t.wg.Done()
	var s network.Stream
	defer func() {
		if s != nil {
			_ = s.Close()
		}
	}()
	var failedAt time.Time
	relayed := false
	idle := time.NewTimer(5 * time.Minute)
	defer idle.Stop()
	for {
		var frame []byte
		select {
		case <-t.ctx.Done():
			return
		case <-idle.C:
			// Not written to for a while (a member gone): free the queue.
			t.mu.Lock()
			if len(q.ch) == 0 {
				delete(t.queues, id)
				t.mu.Unlock()
				return
			}
			t.mu.Unlock()
			idle.Reset(5 * time.Minute)
			continue
		case frame = <-q.ch:
		}
		idle.Reset(5 * time.Minute)
		if s != nil && q.upgrade.Swap(false) && relayed {
			// A direct connection appeared: move off the relay.
			_ = s.Close()
			s = nil
			t.pstats.Upgrades.Add(1)
		}
		if s == nil {
			// After a failed dial, drop for a moment rather than queue up
			// behind a peer that cannot be reached.
			if time.Since(failedAt) < 200*time.Millisecond {
				t.stats.SendErrors.Add(1)
				continue
			}
			var err error
			s, err = t.open(id, p2pPacketProto, 5*time.Second)
			if err != nil {
				failedAt = time.Now()
				t.stats.SendErrors.Add(1)
				t.log.Debug("p2p: open packet stream", "peer", id.String(), "err", err)
				continue
			}
			q.upgrade.Store(false)
			relayed = relayedConn(s.Conn())
		}
		_ = s.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := s.Write(frame); err != nil {
			t.stats.SendErrors.Add(1)
			_ = s.Reset()
			s = nil
		} else if relayed {
			t.pstats.PacketsRelayed.Add(1)
		} else {
			t.pstats.PacketsDirect.Add(1)
		}
	}
}

// open connects to the peer if needed and opens an authenticated stream.
func (t *p2pTransport) open(id peer.ID, proto protocol.ID, timeout time.Duration) (network.Stream, error) {
	if id == t.self {
		return nil, errors.New("p2p: dial to self")
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	// Relayed connections are fine for gossip (the relay's limits are
	// sized for it): allow them; hole punching upgrades where it can.
	ctx = network.WithAllowLimitedConn(ctx, "shoal gossip")
	if t.h.Network().Connectedness(id) != network.Connected {
		// The circuits hint added may have expired or been replaced by what
		// identify said (a peer behind NAT lists only addresses nobody can
		// dial): offer them again, or a peer that lost its relayed
		// connection (a relay restart) is dialled at dead addresses only.
		if c := t.circuits(id); len(c) > 0 {
			t.h.Peerstore().AddAddrs(id, c, 10*time.Minute)
		}
	}
	s, err := t.h.NewStream(ctx, id, proto)
	if err != nil {
		t.pstats.DialFailures.Add(1)
		return nil, err
	}
	_ = s.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := s.Write(authToken(t.primaryKey(), t.label, t.self, id)); err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.SetWriteDeadline(time.Time{})
	t.h.ConnManager().Protect(id, p2pProtectTag)
	return s, nil
}

func (t *p2pTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *p2pTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	id, err := t.peerOf(a)
	if err != nil {
		return nil, err
	}
	s, err := t.open(id, p2pStreamProto, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: &p2pConn{Stream: s, local: p2pAddr{t.self}, remote: p2pAddr{id}}, s: t.stats}, nil
}

func (t *p2pTransport) Shutdown() error {
	if t.closed.Swap(true) {
		return nil
	}
	if t.mdns != nil {
		_ = t.mdns.Close()
	}
	t.cancel()
	err := t.h.Close()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return err
		case <-t.packetCh:
		case c := <-t.streamCh:
			c.Close()
		}
	}
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

// connected marks the peer's packet queue for an upgrade when a direct
// connection appears (after a hole punch, say): the long-lived packet stream
// opened over the relay would otherwise carry the gossip there for good.
func (t *p2pTransport) connected(_ network.Network, c network.Conn) {
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
	return kind
}

// punchLoop gives peers that are reached only through a relay another hole
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
	for {
		select {
		case <-t.ctx.Done():
			return
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
