//go:build !nolibp2p

// The p2p transport's streams: memberlist packets framed on one long-lived
// stream per peer, and memberlist streams as one libp2p stream each.

package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

func (t *p2pTransport) handlePacketStream(s network.Stream) {
	if !t.accept(s) {
		return
	}
	defer s.Close()
	from := p2pAddr{s.Conn().RemotePeer()}
	var used *atomic.Int64 // the peer's last-use clock, kept only for idle trimming
	if t.idleTrim > 0 {
		used = t.useOf(from.id)
	}
	for {
		buf, err := readFrame(s)
		if err != nil {
			var bad *badFrameError
			if errors.As(err, &bad) {
				t.stats.drop(bad.reason)
				t.log.Debug("p2p: bad frame, closing stream", "peer", from.String(), "err", err)
				_ = s.Reset()
			}
			return
		}
		ts := time.Now()
		if used != nil {
			used.Store(ts.UnixNano())
		}
		n := len(buf)
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

// A packet stream carries frames: a 4-byte big-endian length (1 to
// p2pMaxFrame), then that many bytes of one packet.

// badFrameError is a frame length out of bounds: the stream is reset and
// the drop counted under reason.
type badFrameError struct {
	n      uint32
	reason DropReason
}

func (e *badFrameError) Error() string {
	return fmt.Sprintf("p2p: frame of %d bytes, want 1 to %d", e.n, p2pMaxFrame)
}

// readFrame reads one frame and returns its packet. Errors: the reader's
// (io.EOF between frames, io.ErrUnexpectedEOF inside one), or a
// *badFrameError; it never allocates more than p2pMaxFrame.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return nil, &badFrameError{n, DropDecode}
	case n > p2pMaxFrame:
		return nil, &badFrameError{n, DropOversize}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// appendFrame appends the frame of packet b (1 to p2pMaxFrame bytes).
func appendFrame(dst, b []byte) ([]byte, error) {
	if len(b) == 0 || len(b) > p2pMaxFrame {
		return dst, fmt.Errorf("p2p: packet of %d bytes", len(b))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...), nil
}

func (t *p2pTransport) handleStream(s network.Stream) {
	if !t.accept(s) {
		return
	}
	c := &p2pConn{Stream: s, local: p2pAddr{t.self}, remote: p2pAddr{s.Conn().RemotePeer()}}
	select {
	case t.streamCh <- watchStream(&countingConn{Conn: c, s: t.stats}, t.stats, t.label, t.budget):
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
	frame, err := appendFrame(make([]byte, 0, 4+len(b)), b)
	if err != nil {
		t.stats.SendErrors.Add(1)
		return now, err
	}
	t.mu.Lock()
	if t.closed.Load() {
		// Checked again under the lock Shutdown sets it under: no sender
		// is added to the wait group once Shutdown waits on it.
		t.mu.Unlock()
		return now, errors.New("p2p transport shut down")
	}
	q, ok := t.queues[id]
	if !ok {
		q = &peerQueue{ch: make(chan []byte, p2pQueueLen)}
		t.queues[id] = q
		t.wg.Add(1)
		go t.sender(id, q)
	}
	if t.idleTrim > 0 {
		t.useOfLocked(id).Store(now.UnixNano())
	}
	// Queued under the lock: a sender quits only with an empty queue,
	// under the lock, so no frame lands in a queue nobody reads.
	select {
	case q.ch <- frame:
	default:
		t.pstats.QueueDrops.Add(1)
		t.stats.SendErrors.Add(1)
	}
	t.mu.Unlock()
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
	// A sender with nothing to send for twice the idle timeout quits (five
	// minutes when connections are never trimmed).
	senderIdle := 5 * time.Minute
	if t.idleTrim > 0 {
		senderIdle = 2 * t.idleTrim
	}
	idle := time.NewTimer(senderIdle)
	defer idle.Stop()
	for {
		var frame []byte
		select {
		case <-t.ctx.Done():
			return
		case <-idle.C:
			// Not written to for a while: free the queue and the stream
			// (and the peer's reader of it); the next packet starts
			// another sender.
			t.mu.Lock()
			if len(q.ch) == 0 {
				delete(t.queues, id)
				t.mu.Unlock()
				return
			}
			t.mu.Unlock()
			idle.Reset(senderIdle)
			continue
		case frame = <-q.ch:
		}
		idle.Reset(senderIdle)
		if s != nil && q.upgrade.Swap(false) && relayed {
			// A direct connection appeared: move off the relay.
			_ = s.Close()
			s = nil
			t.pstats.Upgrades.Add(1)
		}
		if s != nil && s.Conn().IsClosed() {
			// Its connection was closed (idle, trimmed here or by the
			// peer; or for another hole punch): open another.
			_ = s.Reset()
			s = nil
		}
		retried := false
		for {
			fresh := s == nil
			if fresh {
				// After a failed dial, drop for a moment rather than queue
				// up behind a peer that cannot be reached.
				if time.Since(failedAt) < 200*time.Millisecond {
					t.stats.SendErrors.Add(1)
					break
				}
				var err error
				s, err = t.open(id, p2pPacketProto, 5*time.Second)
				if err != nil {
					failedAt = time.Now()
					t.stats.SendErrors.Add(1)
					t.log.Debug("p2p: open packet stream", "peer", id.String(), "err", err)
					break
				}
				q.upgrade.Store(false)
				relayed = relayedConn(s.Conn())
			}
			_ = s.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := s.Write(frame); err != nil {
				closed := s.Conn().IsClosed()
				_ = s.Reset()
				s = nil
				if (!fresh || closed) && !retried {
					// The stream's connection was closed a moment ago
					// (trimmed, a duplicate closed under a stream just
					// opened on it, a hole-punch retry): the frame gets
					// one more try on a new stream.
					retried = true
					continue
				}
				t.stats.SendErrors.Add(1)
				break
			}
			if relayed {
				t.pstats.PacketsRelayed.Add(1)
			} else {
				t.pstats.PacketsDirect.Add(1)
			}
			break
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
		if t.idleTrim > 0 {
			t.mu.Lock()
			t.unreach[id] = true // not idle: unreachable (ConnNone)
			t.mu.Unlock()
		}
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
