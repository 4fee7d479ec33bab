package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
	"golang.org/x/sync/semaphore"
)

// Transport is what carries a mesh: memberlist's packets and streams, and
// Shoal's own packets on the same address. Config.Transport takes one of
// NetTransport (UDP and TCP, the default), P2PTransport (libp2p) or
// MemoryTransport (an in-memory network, for tests). A Transport is a
// description: New opens it once per Mesh, so one value may serve many
// meshes.
type Transport interface {
	// open binds the transport for the node env describes.
	open(env *transportEnv) (memberlist.NodeAwareTransport, error)
}

// transportEnv is what New hands a Transport to open.
type transportEnv struct {
	cfg *Config // settled: defaults applied, validated, the name final
	// ident is what a naming transport's identify returned.
	ident any
	// stats counts traffic; handle takes Shoal's packets (the buffer is
	// only valid during the call).
	stats  *Stats
	handle func(buf []byte, from net.Addr)
	// keys returns the gossip keys installed now, primary first.
	keys func() [][]byte
	log  *slog.Logger
}

// namingTransport is a Transport that decides the node's name (p2p: the
// peer ID of its key). New calls identify before it validates cfg.
type namingTransport interface {
	identify(cfg *Config, log *slog.Logger) (any, error)
}

// NetTransport is Shoal's own UDP and TCP transport, bound to
// Config.BindAddr and BindPort: memberlist's packets and streams, and
// Shoal's packets on the same port (see transport). A stock serf agent
// with the same key can share its pool.
func NetTransport() Transport { return netTransport{} }

type netTransport struct{}

func (netTransport) open(env *transportEnv) (memberlist.NodeAwareTransport, error) {
	cfg := env.cfg
	tr, err := newTransport(cfg.BindAddr, cfg.BindPort, cfg.Label, env.stats, env.log, env.handle)
	if err != nil {
		return nil, fmt.Errorf("gossip port %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
	}
	return tr, nil
}

// transport is Shoal's memberlist transport for NetTransport: one UDP socket and one TCP listener, as memberlist's own
// NetTransport, with three differences that matter on small hosts:
//
//   - Packets starting with PacketMagic are Shoal's and are handled inline
//     on the read goroutine; all others go to memberlist. One port, one
//     firewall rule.
//   - The read buffer is reused: memberlist gets an exact-size copy of each
//     packet instead of a fresh 64 KiB buffer per packet, which profiles
//     showed as the largest allocation (and GC) cost of an idle agent.
//   - It counts packets and bytes both ways, streams included, so gossip
//     bandwidth is measured where it crosses, not estimated.
//
// Its concurrency contract is memberlist's: every method may be called from
// any goroutine.
type transport struct {
	udp      *net.UDPConn
	tcp      *net.TCPListener
	bindAll  bool
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	budget   *semaphore.Weighted // inbound streams' declared state (MaxInboundStreamBytes)
	handle   func(buf []byte, from net.Addr)
	stats    *Stats
	log      *slog.Logger
	label    string // the mesh's label, for watchStream
	closed   atomic.Bool
	wg       sync.WaitGroup
	// dials ends with Shutdown: a stream dial in flight (a push-pull with
	// a member whose SYNs are dropped waits TCPTimeout, 10 s on lan) does
	// not hold up the mesh's Shutdown, which waits for its goroutines.
	dials      context.Context
	cancelDial context.CancelFunc
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// Stats counts traffic through the gossip port. All fields are updated
// atomically and may be read at any time.
type Stats struct {
	PacketsIn, PacketsOut atomic.Uint64
	BytesIn, BytesOut     atomic.Uint64
	// ShoalPacketsIn/Out and ShoalBytesIn/Out count Shoal's own load and
	// election packets (a subset of the totals above).
	ShoalPacketsIn, ShoalPacketsOut atomic.Uint64
	ShoalBytesIn, ShoalBytesOut     atomic.Uint64
	// Dropped counts packets and streams dropped at the gossip port,
	// Shoal's and memberlist's: undecodable, wrong key or label, too large,
	// election messages from non-members or replayed; DroppedBy counts
	// them by DropReason (Dropped is the sum).
	Dropped   atomic.Uint64
	DroppedBy [NumDropReasons]atomic.Uint64
	// StreamBytesIn/Out count the stream part of BytesIn/Out
	// (memberlist's push/pull and joins).
	StreamBytesIn, StreamBytesOut atomic.Uint64
	// SendErrors counts packets the transport failed to send.
	SendErrors atomic.Uint64
	// ViewBuilds counts the Views published; LoadDecodes the node states
	// decoded (one per new state received or published, however many
	// consumers read it); LoadChanges the load states the table took in
	// place of another (or first); ViewReads the calls of Mesh.View.
	ViewBuilds, LoadDecodes, LoadChanges, ViewReads atomic.Uint64
	// StaleEntries counts load entries refused because a newer version of
	// that member's load was held (late copies and replays); SameEntries
	// copies of the version held, which refresh nothing; StaleElections
	// election messages refused as replayed or stale.
	StaleEntries, SameEntries, StaleElections atomic.Uint64
	// WantsSent counts the members this node asked peers for (load it
	// held too old, or a state it missed); WantsAnswered the entries it
	// sent in answer to others; StaleWants the packets whose wants it did
	// not answer because their base was not above the last one answered
	// for that sender (replays).
	WantsSent, WantsAnswered, StaleWants atomic.Uint64
	// Rounds counts the relay's rounds run; RoundsSlept those it slept
	// through with nothing to do (see Config.LoadChanged).
	Rounds, RoundsSlept atomic.Uint64
	// LoadSignals counts Config.LoadChanged's signals; SignalsUnmoved those
	// whose load had not moved past a bucket, which wake nothing.
	LoadSignals, SignalsUnmoved atomic.Uint64
	// Rejoins counts the push-pulls this node started with a member serf
	// held failed, because a packet came from it (a healed partition);
	// RejoinsFailed those that did not connect.
	Rejoins, RejoinsFailed atomic.Uint64
}

// countOut counts a packet sent.
func (s *Stats) countOut(b []byte) {
	s.PacketsOut.Add(1)
	s.BytesOut.Add(uint64(len(b)))
	if len(b) > 0 && b[0] == PacketMagic {
		s.ShoalPacketsOut.Add(1)
		s.ShoalBytesOut.Add(uint64(len(b)))
	}
}

// countIn counts a packet received and reports whether it is Shoal's.
func (s *Stats) countIn(b []byte) bool {
	s.PacketsIn.Add(1)
	s.BytesIn.Add(uint64(len(b)))
	if len(b) > 0 && b[0] == PacketMagic {
		s.ShoalPacketsIn.Add(1)
		s.ShoalBytesIn.Add(uint64(len(b)))
		return true
	}
	return false
}

const udpRecvBuf = 2 << 20

// newTransport binds ip:port (TCP first, so port 0 picks one free for both).
func newTransport(ip string, port int, label string, stats *Stats, log *slog.Logger, handle func([]byte, net.Addr)) (*transport, error) {
	addr := net.ParseIP(ip)
	if addr == nil {
		return nil, fmt.Errorf("bind address %q is not an IP address", ip)
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: addr, Port: port})
	if err != nil {
		return nil, fmt.Errorf("TCP listener: %w", err)
	}
	if port == 0 {
		port = tcp.Addr().(*net.TCPAddr).Port
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr, Port: port})
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("UDP listener: %w", err)
	}
	for size := udpRecvBuf; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t := &transport{
		udp: udp, tcp: tcp, bindAll: addr.IsUnspecified(),
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		handle:   handle, stats: stats, log: log, label: label,
		budget: semaphore.NewWeighted(MaxInboundStreamBytes),
	}
	t.dials, t.cancelDial = context.WithCancel(context.Background())
	t.wg.Add(2)
	go t.readUDP()
	go t.acceptTCP()
	return t, nil
}

// Port returns the bound port.
func (t *transport) Port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

func (t *transport) readUDP() {
	defer t.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.closed.Load() {
				return
			}
			t.log.Warn("read UDP packet", "err", err)
			continue
		}
		if n < 1 {
			t.stats.drop(DropDecode) // an empty datagram
			continue
		}
		if t.stats.countIn(buf[:n]) {
			t.handle(buf[:n], from)
			continue
		}
		p := &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: ts}
		t.packetCh <- p // Shutdown drains this while the reader exits
	}
}

func (t *transport) acceptTCP() {
	defer t.wg.Done()
	delay := 5 * time.Millisecond
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closed.Load() {
				return
			}
			t.log.Warn("accept TCP connection", "err", err)
			time.Sleep(delay) // back off an error loop (e.g. out of file descriptors)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		t.streamCh <- watchStream(&countingConn{Conn: c, s: t.stats}, t.stats, t.label, t.budget)
	}
}

func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an IP address", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	if t.bindAll {
		priv, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("find a private address to advertise: %w", err)
		}
		if priv == "" {
			return nil, 0, errors.New("bound to 0.0.0.0 and no private IP address found: set --advertise")
		}
		return net.ParseIP(priv), t.Port(), nil
	}
	return t.tcp.Addr().(*net.TCPAddr).IP, t.Port(), nil
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *transport) StreamCh() <-chan net.Conn           { return t.streamCh }

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.stats.countOut(b)
	var err error
	if ap, perr := netip.ParseAddrPort(a.Addr); perr == nil {
		_, err = t.udp.WriteToUDPAddrPort(b, ap)
	} else {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp", a.Addr); err == nil {
			_, err = t.udp.WriteTo(b, ua)
		}
	}
	if err != nil {
		t.stats.SendErrors.Add(1)
	}
	return time.Now(), err
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(t.dials, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, s: t.stats}, nil
}

func (t *transport) Shutdown() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.cancelDial()
	t.tcp.Close()
	t.udp.Close()
	// Unblock a reader parked on a full packet or stream channel.
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return nil
		case <-t.packetCh:
		case c := <-t.streamCh:
			c.Close()
		}
	}
}

// countingConn counts stream bytes (memberlist's push/pull and TCP fallback).
type countingConn struct {
	net.Conn
	s *Stats
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.s.BytesIn.Add(uint64(n))
	c.s.StreamBytesIn.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.s.BytesOut.Add(uint64(n))
	c.s.StreamBytesOut.Add(uint64(n))
	return n, err
}
