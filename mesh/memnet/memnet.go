// Package memnet is an in-memory network for memberlist, on which a whole
// mesh (serf, memberlist and Shoal's own packets) runs in one process.
//
// Every Endpoint is a memberlist.NodeAwareTransport bound to an ip:port on a
// Network. Packets (memberlist's UDP) cross a directed link from one host
// (IP) to another, which has a latency, a jitter, a loss rate and a
// reordering rate, and can be cut: Cut(a, b) makes b deaf to a while a still
// hears b (a one-way partition), Partition cuts every link between groups
// both ways, Heal restores them. Everything can be changed while the mesh
// runs. Streams (memberlist's TCP) cross the same links: dialling needs both
// directions (as a TCP handshake does) and takes a round trip; data arrives
// in order after the link's latency; a stream that a cut crosses stalls, and
// its reads fail at their deadline. Loss does not apply to streams (TCP
// retransmits).
//
// # Determinism
//
// Each link draws the fate of its packets (lost, jitter, held back) from its
// own random source, seeded from the Network's seed and the link's two
// hosts: for one seed, the i-th packet sent on a link always meets the same
// fate, whatever happens on other links. Delivery runs on real time, and
// serf and memberlist run their own timers and goroutines, so a whole mesh
// is not replayable; tests assert outcomes with deadlines, not traces.
//
// # Usage
//
//	nw := memnet.New(1)                        // seed
//	nw.SetDefault(memnet.Link{Latency: 2 * time.Millisecond, Jitter: time.Millisecond})
//	nw.SetLinkFunc(func(from, to netip.Addr) memnet.Link { ... }) // or one per link
//	ep, err := nw.Listen("10.0.0.1:7946", memnet.Options{})
//	mc.Transport = ep                          // memberlist.Config
//	nw.Partition([]string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.3"})
//	nw.Cut("10.0.0.4", "10.0.0.5")            // .5 no longer hears .4
//	nw.Heal()
//
// Shoal's mesh takes a Network through mesh.MemoryTransport.
//
// All methods of Network, Endpoint and the streams are safe for concurrent
// use.
package memnet

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Link is how one direction between two hosts behaves for packets.
type Link struct {
	// Latency is the one-way delay of every packet and stream write.
	Latency time.Duration
	// Jitter adds up to this much (uniformly drawn) to each packet's
	// delay, so packets sent closer together than the jitter may arrive
	// out of order.
	Jitter time.Duration
	// Loss is the probability (0–1) that a packet is dropped.
	Loss float64
	// Reorder is the probability (0–1) that a packet is held back by an
	// extra Latency+Jitter (at least 1 ms), so that later ones overtake it.
	Reorder float64
}

func (l Link) validate() error {
	switch {
	case l.Latency < 0 || l.Jitter < 0:
		return fmt.Errorf("memnet: latency %v and jitter %v must not be negative", l.Latency, l.Jitter)
	case l.Loss < 0 || l.Loss > 1:
		return fmt.Errorf("memnet: loss %v outside 0–1", l.Loss)
	case l.Reorder < 0 || l.Reorder > 1:
		return fmt.Errorf("memnet: reorder %v outside 0–1", l.Reorder)
	}
	return nil
}

// LinkStats counts what happened to the packets sent on one directed link.
type LinkStats struct {
	// Sent counts packets written; Delivered those handed to the
	// receiver; Lost those dropped by the link's loss rate; Cut those
	// dropped because the link was cut; NoListener those sent to an
	// address nobody listens on; Overflow those dropped because the
	// receiver's queue was full.
	Sent, Delivered, Lost, Cut, NoListener, Overflow uint64
}

// MaxQueue is how many packets may wait for one endpoint; more are dropped
// (a full socket buffer).
const MaxQueue = 4096

// ErrRefused is returned when dialling an address nobody listens on.
var ErrRefused = errors.New("connection refused")

type pair struct{ from, to netip.Addr }

type linkState struct {
	cfg    Link
	custom bool
	rng    *rand.Rand

	sent, delivered, lost, cut, noListener, overflow atomic.Uint64
}

// Network is a set of hosts and the links between them.
type Network struct {
	seed uint64

	mu        sync.Mutex
	def       Link
	linkFunc  func(from, to netip.Addr) Link
	links     map[pair]*linkState
	cuts      map[pair]bool
	endpoints map[netip.AddrPort]*Endpoint
	nextPort  map[netip.Addr]uint16
	seq       uint64
}

// New returns an empty network whose links draw packet fates from seed.
func New(seed uint64) *Network {
	return &Network{
		seed:      seed,
		links:     map[pair]*linkState{},
		cuts:      map[pair]bool{},
		endpoints: map[netip.AddrPort]*Endpoint{},
		nextPort:  map[netip.Addr]uint16{},
	}
}

func host(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		panic(fmt.Sprintf("memnet: host %q is not an IP address", s))
	}
	return a.Unmap()
}

// linkLocked returns the state of the link from→to, creating it.
func (n *Network) linkLocked(from, to netip.Addr) *linkState {
	p := pair{from, to}
	ls := n.links[p]
	if ls == nil {
		h := fnv.New64a()
		h.Write(from.AsSlice())
		h.Write([]byte{0})
		h.Write(to.AsSlice())
		ls = &linkState{cfg: n.defaultLocked(from, to), rng: rand.New(rand.NewPCG(n.seed, h.Sum64()))}
		n.links[p] = ls
	}
	return ls
}

func (n *Network) defaultLocked(from, to netip.Addr) Link {
	if n.linkFunc != nil {
		if l := n.linkFunc(from, to); l.validate() == nil {
			return l
		}
	}
	return n.def
}

// SetDefault sets how every link behaves that was not given its own
// setting with SetLink. It returns an error for a negative delay or a rate
// outside 0–1. It replaces a function given to SetLinkFunc.
func (n *Network) SetDefault(l Link) error {
	if err := l.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.def, n.linkFunc = l, nil
	for _, ls := range n.links {
		if !ls.custom {
			ls.cfg = l
		}
	}
	return nil
}

// SetLinkFunc makes f decide how each link behaves that was not given its
// own setting with SetLink (a latency per pair of hosts drawn from a seed,
// say). f is called once per directed link, when the link is first used
// (and for links already in use, now), with the network's lock held: it
// must not call the Network. A Link that f returns invalid (a negative
// delay, a rate outside 0–1) falls back to the default.
func (n *Network) SetLinkFunc(f func(from, to netip.Addr) Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.linkFunc = f
	for p, ls := range n.links {
		if !ls.custom {
			ls.cfg = n.defaultLocked(p.from, p.to)
		}
	}
}

// SetLink sets how packets from host from to host to behave (one
// direction; call it twice for both). Hosts are IP addresses; an invalid
// one panics, as a regexp.MustCompile does.
func (n *Network) SetLink(from, to string, l Link) error {
	if err := l.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ls := n.linkLocked(host(from), host(to))
	ls.cfg, ls.custom = l, true
	return nil
}

// Cut stops everything from host from reaching host to: to no longer hears
// from, while from still hears to unless that direction is cut too.
// Streams between them fail both ways, since a stream needs both.
func (n *Network) Cut(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[pair{host(from), host(to)}] = true
}

// Partition cuts every link between hosts of different groups, both ways.
// Hosts in no group keep their links. Cuts already made stay.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, g := range groups {
		for j, o := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range o {
					n.cuts[pair{host(a), host(b)}] = true
				}
			}
		}
	}
}

// Heal removes every cut. Link settings stay.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
}

// Stats returns the counts of the link from→to.
func (n *Network) Stats(from, to string) LinkStats {
	n.mu.Lock()
	ls := n.linkLocked(host(from), host(to))
	n.mu.Unlock()
	return LinkStats{Sent: ls.sent.Load(), Delivered: ls.delivered.Load(), Lost: ls.lost.Load(),
		Cut: ls.cut.Load(), NoListener: ls.noListener.Load(), Overflow: ls.overflow.Load()}
}

// Options adjust an Endpoint.
type Options struct {
	// Packet, when set, sees every packet delivered to the endpoint before
	// memberlist does, on the endpoint's delivery goroutine; returning
	// true consumes it. buf is the endpoint's own copy. Shoal's packets
	// share memberlist's port this way.
	Packet func(buf []byte, from net.Addr) bool
	// Conn, when set, wraps every stream the endpoint dials or accepts
	// (to count its bytes, say).
	Conn func(net.Conn) net.Conn
}

// Listen binds an endpoint to addr (ip:port). Port 0 picks a free one. The
// IP must be a specific address, not 0.0.0.0 or ::.
func (n *Network) Listen(addr string, o Options) (*Endpoint, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("memnet: listen address %q is not ip:port: %w", addr, err)
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		return nil, fmt.Errorf("memnet: listen address %q: use a specific IP, not %v", addr, ip)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	port := ap.Port()
	if port == 0 {
		p := n.nextPort[ip]
		for tries := 0; ; tries++ {
			if p < 30000 {
				p = 30000
			}
			if _, used := n.endpoints[netip.AddrPortFrom(ip, p)]; !used {
				break
			}
			if tries > 35000 {
				return nil, fmt.Errorf("memnet: no free port on %v", ip)
			}
			p++
		}
		port = p
		n.nextPort[ip] = p + 1
	}
	ap = netip.AddrPortFrom(ip, port)
	if _, used := n.endpoints[ap]; used {
		return nil, fmt.Errorf("memnet: listen on %v: address already in use", ap)
	}
	e := &Endpoint{
		n: n, addr: ap, udpAddr: net.UDPAddrFromAddrPort(ap), opts: o,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		wake:     make(chan struct{}, 1),
		closed:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	n.endpoints[ap] = e
	go e.deliverLoop()
	return e, nil
}

// packet is one packet in flight.
type packet struct {
	buf  []byte
	from net.Addr
	due  time.Time
	seq  uint64
	link *linkState
}

type queue []*packet

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*packet)) }
func (q *queue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return p
}

// Endpoint is one bound address: a memberlist transport.
type Endpoint struct {
	n       *Network
	addr    netip.AddrPort
	udpAddr *net.UDPAddr
	opts    Options

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	mu     sync.Mutex // guards q and conns
	q      queue
	conns  map[*conn]struct{} // this host's open stream ends
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once
	done   chan struct{}
}

var _ memberlist.NodeAwareTransport = (*Endpoint)(nil)

// Addr returns the bound address.
func (e *Endpoint) Addr() netip.AddrPort { return e.addr }

// Port returns the bound port.
func (e *Endpoint) Port() int { return int(e.addr.Port()) }

// FinalAdvertiseAddr returns ip and port when given, else the bound ones.
func (e *Endpoint) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	a := net.IP(e.addr.Addr().AsSlice())
	if ip != "" {
		if a = net.ParseIP(ip); a == nil {
			return nil, 0, fmt.Errorf("memnet: advertise address %q is not an IP address", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
	}
	if port == 0 {
		port = e.Port()
	}
	return a, port, nil
}

// PacketCh delivers the packets the Options.Packet hook did not consume.
func (e *Endpoint) PacketCh() <-chan *memberlist.Packet { return e.packetCh }

// StreamCh delivers accepted streams.
func (e *Endpoint) StreamCh() <-chan net.Conn { return e.streamCh }

// WriteTo sends a packet to addr (ip:port).
func (e *Endpoint) WriteTo(b []byte, addr string) (time.Time, error) {
	return e.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet. As with UDP, a packet that is lost, cut
// or sent to nobody is not an error; an address that is not ip:port is.
func (e *Endpoint) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	to, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		return now, fmt.Errorf("memnet: send to %q: not ip:port", a.Addr)
	}
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	select {
	case <-e.closed:
		return now, net.ErrClosed
	default:
	}
	n := e.n
	n.mu.Lock()
	ls := n.linkLocked(e.addr.Addr(), to.Addr())
	ls.sent.Add(1)
	// Draw all three every time, so that the i-th packet on a link meets
	// the same fate for a seed whatever happened to the ones before it.
	lossDraw, jitterDraw, reorderDraw := ls.rng.Float64(), ls.rng.Float64(), ls.rng.Float64()
	cfg := ls.cfg
	cut := n.cuts[pair{e.addr.Addr(), to.Addr()}]
	dest := n.endpoints[to]
	n.seq++
	seq := n.seq
	n.mu.Unlock()
	switch {
	case cut:
		ls.cut.Add(1)
		return now, nil
	case dest == nil:
		ls.noListener.Add(1)
		return now, nil
	case lossDraw < cfg.Loss:
		ls.lost.Add(1)
		return now, nil
	}
	delay := cfg.Latency + time.Duration(jitterDraw*float64(cfg.Jitter))
	if reorderDraw < cfg.Reorder {
		delay += max(cfg.Latency+cfg.Jitter, time.Millisecond)
	}
	p := &packet{buf: append([]byte(nil), b...), from: e.udpAddr, due: now.Add(delay), seq: seq, link: ls}
	if !dest.enqueue(p) {
		ls.overflow.Add(1)
	}
	return now, nil
}

func (e *Endpoint) enqueue(p *packet) bool {
	e.mu.Lock()
	if len(e.q) >= MaxQueue {
		e.mu.Unlock()
		return false
	}
	heap.Push(&e.q, p)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return true
}

// deliverLoop hands packets over when they are due, in due order.
func (e *Endpoint) deliverLoop() {
	defer close(e.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e.mu.Lock()
		var next *packet
		var wait time.Duration = -1
		if len(e.q) > 0 {
			if d := time.Until(e.q[0].due); d <= 0 {
				next = heap.Pop(&e.q).(*packet)
			} else {
				wait = d
			}
		}
		e.mu.Unlock()
		if next != nil {
			if !e.deliver(next) {
				return
			}
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-e.closed:
			return
		case <-e.wake:
		case <-tc:
		}
		if tc != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// deliver hands p to the receiver. Delivered counts it once whoever
// reads the receiver's side can see it: after a Packet handler took it
// (counted before, a reader of the stats could miss the handler's work:
// TestLossRateAndSeed saw "the same seed lost different packets"), and
// before the channel hands it over (a receiver that has it sees it
// counted).
func (e *Endpoint) deliver(p *packet) bool {
	taken := e.opts.Packet != nil && e.opts.Packet(p.buf, p.from)
	p.link.delivered.Add(1)
	if taken {
		return true
	}
	select {
	case e.packetCh <- &memberlist.Packet{Buf: p.buf, From: p.from, Timestamp: time.Now()}:
		return true
	case <-e.closed:
		return false
	}
}

// DialTimeout opens a stream to addr (ip:port).
func (e *Endpoint) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return e.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream. It takes a round trip; it fails with a
// timeout after timeout when a cut lies either way between the hosts, and
// with ErrRefused when nobody listens at the address.
func (e *Endpoint) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	to, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		return nil, fmt.Errorf("memnet: dial %q: not ip:port", a.Addr)
	}
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	n := e.n
	n.mu.Lock()
	from := e.addr.Addr()
	cut := n.cuts[pair{from, to.Addr()}] || n.cuts[pair{to.Addr(), from}]
	dest := n.endpoints[to]
	rtt := n.linkLocked(from, to.Addr()).cfg.Latency + n.linkLocked(to.Addr(), from).cfg.Latency
	n.mu.Unlock()
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "memnet", Source: net.TCPAddrFromAddrPort(e.addr), Addr: net.TCPAddrFromAddrPort(to), Err: err}
	}
	if dest == nil && !cut {
		return nil, opErr(ErrRefused)
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	if cut {
		select {
		case <-deadline:
		case <-e.closed:
			return nil, opErr(net.ErrClosed)
		}
		return nil, opErr(errTimeout)
	}
	if rtt > 0 {
		t := time.NewTimer(rtt)
		defer t.Stop()
		select {
		case <-t.C:
		case <-deadline:
			return nil, opErr(errTimeout)
		case <-e.closed:
			return nil, opErr(net.ErrClosed)
		}
	}
	client, server := newConnPair(n, e.addr, to)
	if !e.track(client) {
		return nil, opErr(net.ErrClosed)
	}
	if !dest.track(server) {
		client.Close()
		return nil, opErr(ErrRefused)
	}
	var sc net.Conn = server
	if dest.opts.Conn != nil {
		sc = dest.opts.Conn(server)
	}
	select {
	case dest.streamCh <- sc:
	case <-dest.closed:
		return nil, opErr(ErrRefused)
	case <-deadline:
		return nil, opErr(errTimeout)
	case <-e.closed:
		return nil, opErr(net.ErrClosed)
	}
	if e.opts.Conn != nil {
		return e.opts.Conn(client), nil
	}
	return client, nil
}

// Shutdown unbinds the endpoint: packets and dials to its address find
// nobody, and its delivery goroutine ends. Streams already open stay open
// until closed. Safe to call more than once.
func (e *Endpoint) Shutdown() error {
	e.once.Do(func() {
		e.n.mu.Lock()
		if e.n.endpoints[e.addr] == e {
			delete(e.n.endpoints, e.addr)
		}
		e.n.mu.Unlock()
		close(e.closed)
		<-e.done
		e.mu.Lock()
		e.q = nil
		open := e.conns
		e.conns = nil
		e.mu.Unlock()
		// The host is gone: its stream ends close, as a process's sockets
		// do when it exits, so nothing of its waits out a read deadline on
		// a stream a cut left hanging.
		for c := range open {
			c.Close()
		}
	})
	return nil
}

// track records a stream end opened on this host, unless it shut down.
func (e *Endpoint) track(c *conn) bool {
	select {
	case <-e.closed:
		return false
	default:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns == nil {
		e.conns = map[*conn]struct{}{}
	}
	e.conns[c] = struct{}{}
	c.untrack = func() {
		e.mu.Lock()
		delete(e.conns, c)
		e.mu.Unlock()
	}
	return true
}

// timeoutError is the net.Error of a deadline or a dial that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }

var errTimeout net.Error = timeoutError{}
