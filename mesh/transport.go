package mesh

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport wraps memberlist's transport so that one port carries both
// memberlist's packets and Shoal's: packets starting with PacketMagic go to
// the mesh's handler, all others to memberlist. It also counts the bytes and
// packets both sides send and receive, streams included, so the gossip
// bandwidth figures are measured where the bytes cross, not estimated.
type transport struct {
	memberlist.NodeAwareTransport
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	handle   func(p *memberlist.Packet)
	stats    *Stats
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
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
	// Dropped counts Shoal packets dropped: undecodable, wrong key or label,
	// or from a sender that is not a member.
	Dropped atomic.Uint64
	// SendErrors counts packets the transport failed to send.
	SendErrors atomic.Uint64
}

func newTransport(inner memberlist.NodeAwareTransport, stats *Stats, handle func(*memberlist.Packet)) *transport {
	t := &transport{
		NodeAwareTransport: inner,
		packetCh:           make(chan *memberlist.Packet),
		streamCh:           make(chan net.Conn),
		handle:             handle,
		stats:              stats,
		stop:               make(chan struct{}),
	}
	t.wg.Add(2)
	go t.pumpPackets()
	go t.pumpStreams()
	return t
}

func (t *transport) pumpPackets() {
	defer t.wg.Done()
	in := t.NodeAwareTransport.PacketCh()
	for {
		select {
		case p := <-in:
			t.stats.PacketsIn.Add(1)
			t.stats.BytesIn.Add(uint64(len(p.Buf)))
			if len(p.Buf) > 0 && p.Buf[0] == PacketMagic {
				t.stats.ShoalPacketsIn.Add(1)
				t.stats.ShoalBytesIn.Add(uint64(len(p.Buf)))
				t.handle(p)
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.stop:
				return
			}
		case <-t.stop:
			return
		}
	}
}

func (t *transport) pumpStreams() {
	defer t.wg.Done()
	in := t.NodeAwareTransport.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.streamCh <- &countingConn{Conn: c, s: t.stats}:
			case <-t.stop:
				c.Close()
				return
			}
		case <-t.stop:
			return
		}
	}
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *transport) StreamCh() <-chan net.Conn           { return t.streamCh }

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.countOut(b)
	ts, err := t.NodeAwareTransport.WriteTo(b, addr)
	if err != nil {
		t.stats.SendErrors.Add(1)
	}
	return ts, err
}

func (t *transport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	t.countOut(b)
	ts, err := t.NodeAwareTransport.WriteToAddress(b, addr)
	if err != nil {
		t.stats.SendErrors.Add(1)
	}
	return ts, err
}

func (t *transport) countOut(b []byte) {
	t.stats.PacketsOut.Add(1)
	t.stats.BytesOut.Add(uint64(len(b)))
	if len(b) > 0 && b[0] == PacketMagic {
		t.stats.ShoalPacketsOut.Add(1)
		t.stats.ShoalBytesOut.Add(uint64(len(b)))
	}
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, s: t.stats}, nil
}

func (t *transport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, s: t.stats}, nil
}

func (t *transport) Shutdown() error {
	err := t.NodeAwareTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	t.wg.Wait()
	return err
}

// countingConn counts stream bytes (memberlist's push/pull and TCP fallback).
type countingConn struct {
	net.Conn
	s *Stats
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.s.BytesIn.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.s.BytesOut.Add(uint64(n))
	return n, err
}
