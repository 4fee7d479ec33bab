package memnet

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// A stream is two conns sharing two halves: each half carries one
// direction, written by one conn and read by the other.

type chunk struct {
	b   []byte
	due time.Time
}

type half struct {
	n        *Network
	from, to netip.Addr // the hosts this direction goes from and to

	mu       sync.Mutex
	chunks   []chunk
	lastDue  time.Time
	eof      bool      // the writer closed: EOF once chunks are read
	eofDue   time.Time // when the EOF arrives
	reset    bool      // the reader closed: writes fail
	stalled  bool      // a cut crossed this direction: nothing more arrives
	deadline time.Time // the reader's
	notify   chan struct{}
}

func (h *half) signal() {
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// conn is one end of a stream.
type conn struct {
	local, remote net.Addr
	in, out       *half
	closeOnce     sync.Once
	closed        chan struct{}
	untrack       func() // drops it from its endpoint's open conns; set once before use

	mu        sync.Mutex
	wdeadline time.Time
}

var errReset = errors.New("connection reset by peer")

func newConnPair(n *Network, a, b netip.AddrPort) (*conn, *conn) {
	ab := &half{n: n, from: a.Addr(), to: b.Addr(), notify: make(chan struct{}, 1)}
	ba := &half{n: n, from: b.Addr(), to: a.Addr(), notify: make(chan struct{}, 1)}
	ca := &conn{local: net.TCPAddrFromAddrPort(a), remote: net.TCPAddrFromAddrPort(b), in: ba, out: ab, closed: make(chan struct{})}
	cb := &conn{local: net.TCPAddrFromAddrPort(b), remote: net.TCPAddrFromAddrPort(a), in: ab, out: ba, closed: make(chan struct{})}
	return ca, cb
}

func (c *conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "memnet", Source: c.local, Addr: c.remote, Err: err}
}

// Read returns data once its latency has passed, in order.
func (c *conn) Read(b []byte) (int, error) {
	h := c.in
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-c.closed:
			return 0, c.opErr("read", net.ErrClosed)
		default:
		}
		now := time.Now()
		h.mu.Lock()
		if !h.deadline.IsZero() && !now.Before(h.deadline) {
			h.mu.Unlock()
			return 0, c.opErr("read", errTimeout)
		}
		if len(h.chunks) > 0 && !h.chunks[0].due.After(now) {
			k := copy(b, h.chunks[0].b)
			if k == len(h.chunks[0].b) {
				h.chunks[0] = chunk{}
				h.chunks = h.chunks[1:]
			} else {
				h.chunks[0].b = h.chunks[0].b[k:]
			}
			h.mu.Unlock()
			return k, nil
		}
		var wake time.Time
		if len(h.chunks) > 0 {
			wake = h.chunks[0].due
		} else if h.eof {
			if !h.eofDue.After(now) {
				h.mu.Unlock()
				return 0, io.EOF
			}
			wake = h.eofDue
		}
		if !h.deadline.IsZero() && (wake.IsZero() || h.deadline.Before(wake)) {
			wake = h.deadline
		}
		h.mu.Unlock()
		var tc <-chan time.Time
		if !wake.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(wake))
			} else {
				timer.Reset(time.Until(wake))
			}
			tc = timer.C
		}
		select {
		case <-h.notify:
		case <-tc:
		case <-c.closed:
		}
	}
}

// Write queues b for the peer after the link's latency. Writes across a cut
// (either way: a stream needs both) stall the direction for good, as a TCP
// connection whose segments and acknowledgements stop crossing does.
func (c *conn) Write(b []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opErr("write", net.ErrClosed)
	default:
	}
	c.mu.Lock()
	wd := c.wdeadline
	c.mu.Unlock()
	now := time.Now()
	if !wd.IsZero() && !now.Before(wd) {
		return 0, c.opErr("write", errTimeout)
	}
	h := c.out
	n := h.n
	n.mu.Lock()
	cut := n.cuts[pair{h.from, h.to}] || n.cuts[pair{h.to, h.from}]
	lat := n.linkLocked(h.from, h.to).cfg.Latency
	n.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reset {
		return 0, c.opErr("write", errReset)
	}
	if cut {
		h.stalled = true
	}
	if h.stalled {
		return len(b), nil
	}
	due := now.Add(lat)
	if due.Before(h.lastDue) {
		due = h.lastDue
	}
	h.lastDue = due
	h.chunks = append(h.chunks, chunk{b: append([]byte(nil), b...), due: due})
	h.signal()
	return len(b), nil
}

// Close ends both directions: the peer reads EOF after what was written
// arrives, and its writes fail.
func (c *conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		if c.untrack != nil {
			c.untrack()
		}
		o := c.out
		o.mu.Lock()
		if !o.eof {
			o.eof = true
			o.eofDue = o.lastDue
			if !o.stalled {
				lat := time.Now()
				o.n.mu.Lock()
				lat = lat.Add(o.n.linkLocked(o.from, o.to).cfg.Latency)
				o.n.mu.Unlock()
				if lat.After(o.eofDue) {
					o.eofDue = lat
				}
			} else {
				o.eofDue = time.Now().Add(100 * 365 * 24 * time.Hour) // never
			}
		}
		o.mu.Unlock()
		o.signal()
		i := c.in
		i.mu.Lock()
		i.reset = true
		i.mu.Unlock()
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.in.mu.Lock()
	c.in.deadline = t
	c.in.mu.Unlock()
	c.in.signal()
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdeadline = t
	c.mu.Unlock()
	return nil
}
