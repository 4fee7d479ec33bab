package mesh

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// TestMemberlistDropsAreCounted sends one of each kind of garbage from
// plain sockets to a node with a gossip key and a label, and checks that
// each is counted once, under its reason. memberlist keeps no counters of
// what it drops; the counts come from its log lines (memberlistDrop), so a
// memberlist upgrade that rewords one fails here.
func TestMemberlistDropsAreCounted(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	n := startNode(t, 7, "", [][]byte{key}, "test")
	addr := addrOf(n.m)
	st := n.m.Stats()
	wrong := &Sealer{Label: "test", Keys: func() ([]byte, [][]byte) {
		k := bytes.Repeat([]byte{8}, 32)
		return k, [][]byte{k}
	}}
	plain := &Sealer{Label: "test"}
	sealed := func(s *Sealer, body []byte) []byte {
		p, err := s.Seal(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	load := AppendEntries(nil, VersionAt(time.Now()), []Entry{{Name: "n7", Version: 1, Tag: 1}})
	label := func(l string, rest ...byte) []byte { return append(append([]byte{244, byte(len(l))}, l...), rest...) }
	const encryptMsg, pushPullMsg = 10, 6
	udp := []struct {
		name string
		pkt  []byte
		want DropReason
	}{
		// On a mesh with a label, memberlist checks the label first.
		{"memberlist garbage without the label", []byte{7, 1, 2, 3, 4, 5, 6, 7, 8, 9}, DropLabel},
		{"memberlist garbage with the label", label("test", 1, 2, 3, 4, 5, 6, 7, 8, 9), DropDecrypt},
		{"memberlist packet of another label", label("other", 1, 2, 3), DropLabel},
		{"truncated label header", []byte{244, 9, 'x'}, DropLabel},
		{"empty datagram", []byte{}, DropDecode},
		{"Shoal packet truncated", []byte{PacketMagic, packetVersion<<4 | flagEncrypted, 1, 2, 3}, DropDecode},
		{"Shoal packet sealed with another key", sealed(wrong, load), DropDecrypt},
		{"Shoal plaintext packet on an encrypted mesh", sealed(plain, load), DropDecrypt},
	}
	tcp := []struct {
		name   string
		stream []byte
		want   DropReason
		end    bool // the sender closes its side after the stream
	}{
		{"stream of another label", label("other", pushPullMsg, 1, 2), DropLabel, false},
		{"plaintext push/pull on an encrypted mesh", label("test", pushPullMsg, 0x80), DropDecrypt, false},
		{"sealed with another key", append(label("test", encryptMsg, 0, 0, 0, 40), make([]byte, 40)...), DropDecrypt, false},
		{"state above memberlist's 20 MB bound", label("test", encryptMsg, 0xff, 0xff, 0xff, 0xff), DropOversize, false},
		{"stalls after the label", label("test"), DropTimeout, false},
		// memberlist drops these without a log line; the transport's
		// stream watch counts them.
		{"ends after the label", label("test"), DropDecode, true},
		{"ends inside the encrypted header", label("test", encryptMsg, 0, 0), DropDecode, true},
		{"ends inside the encrypted payload", append(label("test", encryptMsg, 0, 0, 0, 100), make([]byte, 60)...), DropDecode, true},
	}
	want := map[DropReason]uint64{}
	before := make([]uint64, NumDropReasons)
	for r := range before {
		before[r] = st.DroppedBy[r].Load()
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, u := range udp {
		if _, err := c.Write(u.pkt); err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
		want[u.want]++
	}
	for _, s := range tcp {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		defer conn.Close()
		if _, err := conn.Write(s.stream); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.end {
			_ = conn.(*net.TCPConn).CloseWrite()
		}
		want[s.want]++
	}
	// The stalled stream is dropped at memberlist's deadline (500 ms on
	// the local profile).
	waitFor(t, 20*time.Second, "every drop counted under its reason", func() error {
		var bad []string
		for r := range DropReason(NumDropReasons) {
			if got := st.DroppedBy[r].Load() - before[r]; got != want[r] {
				bad = append(bad, fmt.Sprintf("%s: %d, want %d", r, got, want[r]))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		return nil
	})
	var sum uint64
	for r := range DropReason(NumDropReasons) {
		sum += st.DroppedBy[r].Load()
	}
	if d := st.Dropped.Load(); d != sum {
		t.Errorf("Dropped %d is not the sum of DroppedBy (%d)", d, sum)
	}
}

// TestLogBridgeCountsAndThrottlesDrops: memberlist's drop lines are
// counted every time but logged once per reason per dropLogEvery, the next
// one saying how many were left out.
func TestLogBridgeCountsAndThrottlesDrops(t *testing.T) {
	var buf bytes.Buffer
	var st Stats
	b := &logBridge{l: slog.New(slog.NewTextHandler(&buf, nil)), stats: &st}
	for range 1000 {
		fmt.Fprintf(b, "[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.9:%d\n", 4000)
	}
	fmt.Fprintln(b, "[ERR] memberlist: discarding packet with unacceptable label \"x\": from=127.0.0.9:1")
	fmt.Fprintln(b, "[WARN] memberlist: Refuting a suspect message (from: n3)")
	if got := st.DroppedBy[DropDecrypt].Load(); got != 1000 {
		t.Errorf("decrypt drops counted %d, want 1000", got)
	}
	if got := st.DroppedBy[DropLabel].Load(); got != 1 {
		t.Errorf("label drops counted %d, want 1", got)
	}
	if got := st.Dropped.Load(); got != 1001 {
		t.Errorf("Dropped %d, want 1001", got)
	}
	out := buf.String()
	if n := strings.Count(out, "Decrypt packet failed"); n != 1 {
		t.Errorf("%d decrypt lines logged, want 1 (the rest suppressed):\n%s", n, out)
	}
	if !strings.Contains(out, "unacceptable label") || !strings.Contains(out, "Refuting") {
		t.Errorf("a line of another reason, or not a drop, was suppressed:\n%s", out)
	}
	// After dropLogEvery the next line is logged with the count left out.
	b.mu.Lock()
	b.lastLogged[DropDecrypt] = time.Now().Add(-dropLogEvery)
	b.mu.Unlock()
	fmt.Fprintln(b, "[ERR] memberlist: Decrypt packet failed: x")
	if !strings.Contains(buf.String(), "suppressed=999") {
		t.Errorf("no count of suppressed lines:\n%s", buf.String())
	}
}

// TestInboundStreamsShareABudget: two streams that each declare 16 MiB of
// encrypted state, at once, to a real node: one is read, the other fails
// before its body is read (counted as oversize, from memberlist's "larger
// than limit" line), since MaxInboundStreamBytes holds one such state. Once
// the first has ended its share is back: a third is read (and, ending
// inside its payload, counted as truncated).
func TestInboundStreamsShareABudget(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	// The lan profile gives a stream 10 s (memberlist's TCPTimeout), so the
	// two stalled streams below overlap on any machine.
	m, err := New(Config{NodeName: "budget", BindAddr: "127.0.0.28", Profile: ProfileLAN,
		Keys: [][]byte{key}, Label: "test",
		Load: func() (metrics.Load, bool) { return metrics.Load{CPUPercent: 10, MemPercent: 50, Cores: 2}, true }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	addr := addrOf(m)
	st := m.Stats()
	const encryptMsg = 10
	const declared = 16 << 20
	if 2*declared <= MaxInboundStreamBytes || declared > maxStreamState {
		t.Fatalf("the test wants room for one state of %d bytes, not two, in %d", declared, MaxInboundStreamBytes)
	}
	header := append([]byte{244, 4, 't', 'e', 's', 't', encryptMsg}, 1, 0, 0, 0) // 16 MiB, big-endian
	open := func() *net.TCPConn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(append(header, make([]byte, 1024)...)); err != nil {
			t.Fatal(err)
		}
		return c.(*net.TCPConn)
	}
	count := func(r DropReason) uint64 { return st.DroppedBy[r].Load() }
	oversize, decode := count(DropOversize), count(DropDecode)
	a, b := open(), open()
	waitFor(t, 20*time.Second, "one of two 16 MiB streams refused", func() error {
		if d := count(DropOversize) - oversize; d != 1 {
			return fmt.Errorf("%d refused", d)
		}
		return nil
	})
	// Both end (the refused one was failed already; the other ends inside
	// its payload): the budget is back, and a third stream is read until
	// it too ends inside its payload.
	_ = a.CloseWrite()
	_ = b.CloseWrite()
	waitFor(t, 20*time.Second, "the stream that was read counted as truncated", func() error {
		if d := count(DropDecode) - decode; d != 1 {
			return fmt.Errorf("%d truncated", d)
		}
		return nil
	})
	c := open()
	_ = c.CloseWrite()
	waitFor(t, 20*time.Second, "a later stream read, not refused", func() error {
		if d := count(DropOversize) - oversize; d != 1 {
			t.Fatalf("%d refused: the budget was not given back", d)
		}
		if d := count(DropDecode) - decode; d != 2 {
			return fmt.Errorf("%d truncated", d)
		}
		return nil
	})
}

func TestStreamDeclared(t *testing.T) {
	for _, c := range []struct {
		p            []byte
		n            uint64
		known, final bool
	}{
		{nil, 0, false, false},
		{[]byte{244}, 0, false, false},
		{[]byte{244, 0}, 0, false, true},
		{[]byte{244, 4, 't', 'e'}, 0, false, false},
		{[]byte{244, 4, 't', 'e', 's', 't'}, 0, false, false},
		{[]byte{244, 4, 't', 'e', 's', 't', 6}, 0, false, true},
		{[]byte{244, 4, 't', 'e', 's', 't', 10, 0, 0}, 0, false, false},
		{[]byte{244, 4, 't', 'e', 's', 't', 10, 0, 0, 1, 0}, 256, true, true},
		{[]byte{10, 0xff, 0xff, 0xff, 0xff, 7}, 1<<32 - 1, true, true},
		{[]byte{6, 1, 2}, 0, false, true},
	} {
		n, known, final := streamDeclared(c.p)
		if n != c.n || known != c.known || final != c.final {
			t.Errorf("streamDeclared(%v) = %d, %t, %t; want %d, %t, %t", c.p, n, known, final, c.n, c.known, c.final)
		}
	}
}

// FuzzStreamDeclared: any first bytes of a stream, as the transport's watch
// reads them, give an answer and no panic; a length is read only from an
// encrypted message's header, and only once the prefix holds it.
func FuzzStreamDeclared(f *testing.F) {
	f.Add([]byte{244, 4, 't', 'e', 's', 't', 10, 1, 0, 0, 0})
	f.Add([]byte{10, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{244, 0})
	f.Add([]byte{6, 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > maxWatchPrefix {
			p = p[:maxWatchPrefix]
		}
		n, known, final := streamDeclared(p)
		if known && !final {
			t.Fatalf("known without final for %v", p)
		}
		if !known && n != 0 {
			t.Fatalf("length %d without known for %v", n, p)
		}
		if known {
			// The same answer from any longer prefix.
			n2, known2, _ := streamDeclared(append(append([]byte(nil), p...), 1, 2, 3))
			if !known2 || n2 != n {
				t.Fatalf("a longer prefix changed %d to %d, %t", n, n2, known2)
			}
		}
	})
}
