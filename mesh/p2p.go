//go:build !nolibp2p

package mesh

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/semaphore"
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
	budget   *semaphore.Weighted // inbound streams' declared state (MaxInboundStreamBytes)
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
	lost    map[peer.ID]bool          // a connection to a relay closed: reserve again
	used    map[peer.ID]*atomic.Int64 // last packet to or from a peer (trimIdle)
	unreach map[peer.ID]bool          // with trimming on: a dial failed, no connection since

	idleTrim   time.Duration // P2PConfig.IdleConnTimeout (0: never)
	workingSet int
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
		budget: semaphore.NewWeighted(MaxInboundStreamBytes),
		ctx:    ctx, cancel: cancel,
		queues:  map[peer.ID]*peerQueue{},
		blocked: map[peer.ID]time.Time{},
		hinted:  map[peer.ID]time.Time{},
		hookSet: make(chan struct{}),
		resv:    map[peer.ID]Reservation{},
		lost:    map[peer.ID]bool{},
		used:    map[peer.ID]*atomic.Int64{},
		unreach: map[peer.ID]bool{},
		advPort: port,

		idleTrim:   pc.IdleConnTimeout,
		workingSet: pc.WorkingSet,
	}
	if t.idleTrim < 0 {
		t.idleTrim = 0
	}
	if t.workingSet <= 0 {
		t.workingSet = defaultWorkingSet
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
	p2pServiceLimits(&limits)
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
		_ = rm.Close()
		return nil, fmt.Errorf("libp2p connection manager: %w", err)
	}
	hc := hostConfig{key: idn.key, rm: rm, cm: cm, gater: &p2pGater{t: t},
		punch: []holepunch.Option{holepunch.WithMetricsTracer(punchCounter{t})}}
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			cancel()
			_ = rm.Close()
			_ = cm.Close()
			return nil, fmt.Errorf("listen address %s: %w", s, err)
		}
		hc.listen = append(hc.listen, a)
	}
	if pc.Relay {
		// libp2p's defaults cut a relayed connection after 2 minutes or
		// 128 KiB: fine for a hole-punch handshake, not for gossip.
		rc := relayv2.DefaultResources()
		rc.Limit = &relayv2.RelayLimit{Duration: 24 * time.Hour, Data: 1 << 40}
		rc.MaxReservations = maxPeers
		rc.MaxCircuits = 64
		rc.ReservationTTL = time.Hour
		hc.relay, hc.relayRc = true, rc
	} else {
		hc.static = boot
	}
	h, err := newP2PHost(hc)
	if err != nil {
		cancel()
		_ = rm.Close()
		_ = cm.Close()
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

func (t *p2pTransport) counters() *P2PStats { return &t.pstats }

func (t *p2pTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.advIP, t.advPort, nil
}

func (t *p2pTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *p2pTransport) StreamCh() <-chan net.Conn           { return t.streamCh }

func (t *p2pTransport) Shutdown() error {
	t.mu.Lock()
	was := t.closed.Swap(true)
	t.mu.Unlock()
	if was {
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
