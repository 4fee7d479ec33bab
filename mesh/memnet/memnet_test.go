package memnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func listen(t *testing.T, n *Network, addr string, o Options) *Endpoint {
	t.Helper()
	e, err := n.Listen(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown() })
	return e
}

// recv reads one packet from e or fails after d.
func recv(t *testing.T, e *Endpoint, d time.Duration) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-e.PacketCh():
		return p
	case <-time.After(d):
		t.Fatalf("no packet at %v within %v", e.Addr(), d)
		return nil
	}
}

// noPacket checks that nothing arrives at e within d (the only way to
// show that a packet was not delivered: waiting as long as delivery takes).
func noPacket(t *testing.T, e *Endpoint, d time.Duration) {
	t.Helper()
	select {
	case p := <-e.PacketCh():
		t.Fatalf("%v got %q from %v, want nothing", e.Addr(), p.Buf, p.From)
	case <-time.After(d):
	}
}

func send(t *testing.T, from, to *Endpoint, msg string) {
	t.Helper()
	if _, err := from.WriteTo([]byte(msg), to.Addr().String()); err != nil {
		t.Fatal(err)
	}
}

func TestPacketLatencyAndSender(t *testing.T) {
	n := New(1)
	if err := n.SetDefault(Link{Latency: 30 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	a := listen(t, n, "10.0.0.1:7946", Options{})
	b := listen(t, n, "10.0.0.2:0", Options{})
	start := time.Now()
	send(t, a, b, "hello")
	p := recv(t, b, 5*time.Second)
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Errorf("packet arrived after %v, before the 30ms latency", took)
	}
	if string(p.Buf) != "hello" || p.From.String() != "10.0.0.1:7946" {
		t.Errorf("got %q from %v, want \"hello\" from 10.0.0.1:7946", p.Buf, p.From)
	}
	if ip, port, err := b.FinalAdvertiseAddr("", 0); err != nil || ip.String() != "10.0.0.2" || port != b.Port() || port == 0 {
		t.Errorf("advertise %v:%d, %v; want 10.0.0.2:%d", ip, port, err, b.Port())
	}
	if s := n.Stats("10.0.0.1", "10.0.0.2"); s.Sent != 1 || s.Delivered != 1 {
		t.Errorf("stats %+v, want one sent and delivered", s)
	}
}

func TestListenErrors(t *testing.T) {
	n := New(1)
	listen(t, n, "10.0.0.1:7946", Options{})
	for _, addr := range []string{"10.0.0.1:7946", "0.0.0.0:7946", "nonsense", "10.0.0.1"} {
		if _, err := n.Listen(addr, Options{}); err == nil {
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	if err := n.SetDefault(Link{Loss: 1.5}); err == nil {
		t.Error("loss 1.5 accepted")
	}
	if err := n.SetLink("10.0.0.1", "10.0.0.2", Link{Latency: -1}); err == nil {
		t.Error("negative latency accepted")
	}
}

func TestPacketHookConsumes(t *testing.T) {
	n := New(1)
	var mu sync.Mutex
	var hooked []string
	b := listen(t, n, "10.0.0.2:7946", Options{Packet: func(buf []byte, from net.Addr) bool {
		if buf[0] != 0xC5 {
			return false
		}
		mu.Lock()
		hooked = append(hooked, string(buf[1:])+"@"+from.String())
		mu.Unlock()
		return true
	}})
	a := listen(t, n, "10.0.0.1:7946", Options{})
	send(t, a, b, "\xC5shoal")
	send(t, a, b, "ml")
	if p := recv(t, b, 5*time.Second); string(p.Buf) != "ml" {
		t.Fatalf("memberlist got %q, want only its own packet", p.Buf)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(hooked, []string{"shoal@10.0.0.1:7946"}) {
		t.Fatalf("hook saw %q", hooked)
	}
}

// lossPattern sends count packets on one link with the given loss and
// returns which arrived.
func lossPattern(t *testing.T, seed uint64, loss float64, count int) []bool {
	n := New(seed)
	if err := n.SetLink("10.0.0.1", "10.0.0.2", Link{Loss: loss}); err != nil {
		t.Fatal(err)
	}
	a := listen(t, n, "10.0.0.1:7946", Options{})
	got := make([]bool, count)
	var mu sync.Mutex
	b := listen(t, n, "10.0.0.2:7946", Options{Packet: func(buf []byte, _ net.Addr) bool {
		var i int
		fmt.Sscan(string(buf), &i)
		mu.Lock()
		got[i] = true
		mu.Unlock()
		return true
	}})
	for i := range count {
		send(t, a, b, fmt.Sprint(i))
	}
	want := n.Stats("10.0.0.1", "10.0.0.2")
	deadline := time.Now().Add(10 * time.Second)
	for n.Stats("10.0.0.1", "10.0.0.2").Delivered != want.Sent-want.Lost {
		if time.Now().After(deadline) {
			t.Fatalf("not all packets delivered: %+v", n.Stats("10.0.0.1", "10.0.0.2"))
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(got)
}

func TestLossRateAndSeed(t *testing.T) {
	const count = 5000
	p1 := lossPattern(t, 42, 0.2, count)
	lost := 0
	for _, ok := range p1 {
		if !ok {
			lost++
		}
	}
	// Binomial(5000, 0.2): mean 1000, sd 28; 5 sd either side.
	if lost < 860 || lost > 1140 {
		t.Errorf("lost %d of %d at 20%% loss, want 860–1140", lost, count)
	}
	if p2 := lossPattern(t, 42, 0.2, count); !slices.Equal(p1, p2) {
		t.Error("the same seed lost different packets")
	}
	if p3 := lossPattern(t, 43, 0.2, count); slices.Equal(p1, p3) {
		t.Error("another seed lost the same packets")
	}
}

// arrivalOrder sends count numbered packets at once and returns the order
// in which they arrive.
func arrivalOrder(t *testing.T, l Link, count int) []int {
	n := New(7)
	if err := n.SetDefault(l); err != nil {
		t.Fatal(err)
	}
	a := listen(t, n, "10.0.0.1:7946", Options{})
	b := listen(t, n, "10.0.0.2:7946", Options{})
	for i := range count {
		send(t, a, b, fmt.Sprint(i))
	}
	var order []int
	for range count {
		var i int
		fmt.Sscan(string(recv(t, b, 5*time.Second).Buf), &i)
		order = append(order, i)
	}
	return order
}

func TestReordering(t *testing.T) {
	inOrder := func(o []int) bool { return slices.IsSorted(o) }
	if o := arrivalOrder(t, Link{Latency: time.Millisecond}, 200); !inOrder(o) {
		t.Errorf("no jitter, no reordering, yet out of order: %v", o)
	}
	for _, l := range []Link{{Jitter: 20 * time.Millisecond}, {Latency: time.Millisecond, Reorder: 0.3}} {
		o := arrivalOrder(t, l, 200)
		if inOrder(o) {
			t.Errorf("%+v: 200 packets arrived in order", l)
		}
		if s := slices.Sorted(slices.Values(o)); len(s) != 200 || s[0] != 0 || s[199] != 199 {
			t.Errorf("%+v: not every packet arrived once: %v", l, s)
		}
	}
}

func TestPartitionsOneWayAndHeal(t *testing.T) {
	n := New(1)
	a := listen(t, n, "10.0.0.1:7946", Options{})
	b := listen(t, n, "10.0.0.2:7946", Options{})
	c := listen(t, n, "10.0.0.3:7946", Options{})
	quiet := 100 * time.Millisecond // latency is 0: delivery takes far less

	n.Partition([]string{"10.0.0.1"}, []string{"10.0.0.2", "10.0.0.3"})
	send(t, a, b, "a>b")
	send(t, b, a, "b>a")
	noPacket(t, b, quiet)
	noPacket(t, a, quiet)
	send(t, b, c, "b>c")
	recv(t, c, 5*time.Second)
	if s := n.Stats("10.0.0.1", "10.0.0.2"); s.Cut != 1 || s.Delivered != 0 {
		t.Errorf("a→b stats %+v, want one cut", s)
	}

	n.Heal()
	n.Cut("10.0.0.1", "10.0.0.2") // b no longer hears a; a still hears b
	send(t, a, b, "a>b")
	noPacket(t, b, quiet)
	send(t, b, a, "b>a")
	if p := recv(t, a, 5*time.Second); string(p.Buf) != "b>a" {
		t.Errorf("a got %q", p.Buf)
	}
	// A stream needs both ways: dialling fails either way, after the timeout.
	for _, d := range [][2]*Endpoint{{a, b}, {b, a}} {
		start := time.Now()
		_, err := d[0].DialTimeout(d[1].Addr().String(), 50*time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("dial %v→%v across a one-way cut: %v, want a timeout", d[0].Addr(), d[1].Addr(), err)
		}
		if took := time.Since(start); took < 50*time.Millisecond {
			t.Errorf("dial across a cut failed after %v, before its timeout", took)
		}
	}

	n.Heal()
	send(t, a, b, "healed")
	if p := recv(t, b, 5*time.Second); string(p.Buf) != "healed" {
		t.Errorf("b got %q", p.Buf)
	}
}

func TestRuntimeLinkChange(t *testing.T) {
	n := New(1)
	a := listen(t, n, "10.0.0.1:7946", Options{})
	b := listen(t, n, "10.0.0.2:7946", Options{})
	if err := n.SetLink("10.0.0.1", "10.0.0.2", Link{Latency: 80 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	send(t, a, b, "slow")
	recv(t, b, 5*time.Second)
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("slow link delivered after %v", took)
	}
	if err := n.SetLink("10.0.0.1", "10.0.0.2", Link{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	send(t, a, b, "lost")
	noPacket(t, b, 100*time.Millisecond)
	// The other direction kept the default.
	send(t, b, a, "back")
	recv(t, a, 5*time.Second)
}

func TestStreams(t *testing.T) {
	n := New(1)
	lat := 20 * time.Millisecond
	if err := n.SetDefault(Link{Latency: lat, Loss: 1}); err != nil { // loss spares streams
		t.Fatal(err)
	}
	var wrapped atomic.Int32
	wrap := func(c net.Conn) net.Conn { wrapped.Add(1); return c }
	a := listen(t, n, "10.0.0.1:7946", Options{Conn: wrap})
	b := listen(t, n, "10.0.0.2:7946", Options{Conn: wrap})
	if _, err := a.DialTimeout("10.0.0.9:7946", time.Second); !errors.Is(err, ErrRefused) {
		t.Errorf("dial to nobody: %v, want refused", err)
	}

	// b echoes one message back.
	echoed := make(chan error, 1)
	go func() {
		c := <-b.StreamCh()
		defer c.Close()
		buf := make([]byte, 64)
		k, err := c.Read(buf)
		if err == nil {
			_, err = c.Write(bytes.ToUpper(buf[:k]))
		}
		echoed <- err
	}()
	start := time.Now()
	c, err := a.DialTimeout(b.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*lat {
		t.Errorf("dial took %v, less than a round trip", took)
	}
	if c.RemoteAddr().String() != "10.0.0.2:7946" {
		t.Errorf("remote %v", c.RemoteAddr())
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "PING" {
		t.Fatalf("read %q, %v; want PING then EOF", got, err)
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if w := wrapped.Load(); w != 2 {
		t.Errorf("Options.Conn wrapped %d conns, want the dialled and the accepted one", w)
	}
	c.Close()

	// A read deadline ends a read that gets nothing.
	go func() { c := <-b.StreamCh(); defer c.Close(); io.Copy(io.Discard, c) }()
	c2, err := a.DialTimeout(b.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %v", err)
	}
}

func TestStreamStallsAcrossACut(t *testing.T) {
	n := New(1)
	a := listen(t, n, "10.0.0.1:7946", Options{})
	b := listen(t, n, "10.0.0.2:7946", Options{})
	srv := make(chan net.Conn, 1)
	go func() { srv <- <-b.StreamCh() }()
	c, err := a.DialTimeout(b.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-srv
	defer s.Close()
	n.Cut("10.0.0.2", "10.0.0.1") // the acknowledgements stop: a's data stops too
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	n.Heal()
	c.Write([]byte("after"))
	s.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if k, err := s.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %d bytes, %v from a stalled stream; want a timeout", k, err)
	}
}

func TestShutdownFreesTheAddress(t *testing.T) {
	n := New(1)
	a := listen(t, n, "10.0.0.1:7946", Options{})
	b, err := n.Listen("10.0.0.2:7946", Options{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, b, "queued") // nobody reads it: Shutdown must not hang
	b.Shutdown()
	b.Shutdown()
	send(t, a, b, "to nobody")
	if s := n.Stats("10.0.0.1", "10.0.0.2"); s.NoListener != 1 {
		t.Errorf("stats %+v, want one packet to nobody", s)
	}
	if _, err := a.DialTimeout("10.0.0.2:7946", time.Second); !errors.Is(err, ErrRefused) {
		t.Errorf("dial after shutdown: %v", err)
	}
	b2 := listen(t, n, "10.0.0.2:7946", Options{})
	send(t, a, b2, "again")
	if p := recv(t, b2, 5*time.Second); string(p.Buf) != "again" {
		t.Errorf("got %q", p.Buf)
	}
	if _, err := b.WriteTo([]byte("x"), "10.0.0.1:7946"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("send from a shut endpoint: %v", err)
	}
}

func TestLinkFuncSetsEachLink(t *testing.T) {
	nw := New(3)
	nw.SetLinkFunc(func(from, to netip.Addr) Link {
		if to == netip.MustParseAddr("10.0.0.3") {
			return Link{Loss: 1}
		}
		if to == netip.MustParseAddr("10.0.0.4") {
			return Link{Loss: 2} // invalid: the default applies
		}
		return Link{Latency: time.Duration(from.As4()[3]) * 30 * time.Millisecond}
	})
	var eps []*Endpoint
	for i := 1; i <= 4; i++ {
		ep, err := nw.Listen(fmt.Sprintf("10.0.0.%d:7946", i), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Shutdown() })
		eps = append(eps, ep)
	}
	sent := time.Now()
	for _, to := range []string{"10.0.0.2:7946", "10.0.0.3:7946", "10.0.0.4:7946"} {
		if _, err := eps[0].WriteTo([]byte("x"), to); err != nil {
			t.Fatal(err)
		}
	}
	if s := nw.Stats("10.0.0.1", "10.0.0.3"); s.Lost != 1 {
		t.Errorf("link to .3 should lose everything: %+v", s)
	}
	select {
	case p := <-eps[1].PacketCh():
		if d := p.Timestamp.Sub(sent); d < 30*time.Millisecond {
			t.Errorf("the link from .1 has 30 ms of latency; the packet took %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached .2")
	}
	select {
	case <-eps[3].PacketCh():
	case <-time.After(5 * time.Second):
		t.Fatal("an invalid link function result did not fall back to the default")
	}
}
