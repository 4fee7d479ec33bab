//go:build linux

package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/mesh"

	"github.com/shoalmesh/shoal/internal/testbin"
	"github.com/shoalmesh/shoal/internal/testenv"
)

// TestReplayedGossipDoesNotRollLoadBack is the attack of issue 13 with real
// parts: two lan agent processes sharing a gossip key; an AF_PACKET socket
// on the loopback interface captures the Shoal packets sent to agent 2
// while agent 1 reports 90% CPU; agent 1 drops to 10%, and once agent 2
// shows 10% the captured packets are sent to agent 2 again, many times over,
// from a plain UDP socket. Agent 2 must keep showing 10%, and must say in
// /metrics that it refused the replayed entries.
func TestReplayedGossipDoesNotRollLoadBack(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.RequireOrSkip(t, "capturing on the loopback interface needs root (CAP_NET_RAW)")
	}
	key := base64.StdEncoding.EncodeToString([]byte("replay-test-key!"))
	start := func(name, ip, join string) *proc {
		t.Helper()
		gport := freePort(t, ip)
		p := &proc{http: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")), gossip: fmt.Sprintf("%s:%d", ip, gport)}
		args := []string{"agent", "--node", name, "--bind", p.gossip, "--profile", "lan", "--http-addr", p.http,
			"--data-dir", t.TempDir(), "--sample-interval", "200ms", "--log-level", "warn", "--encrypt", key, "--enable-debug"}
		if join != "" {
			args = append(args, "--join", join)
		}
		p.cmd = exec.Command(shoalBin, args...)
		p.stderr = &testbin.SyncBuffer{}
		p.cmd.Stderr = p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		poll(t, 10*time.Second, name+" API up", func() error {
			_, err := client.New(p.http, "").Info(context.Background())
			return err
		})
		return p
	}
	a1 := start("rp1", "127.0.0.161", "")
	a2 := start("rp2", "127.0.0.162", a1.gossip)
	ctx := context.Background()
	c1, c2 := client.New(a1.http, ""), client.New(a2.http, "")
	setCPU := func(v float64) {
		t.Helper()
		if err := c1.SetDebugLoad(ctx, client.DebugLoad{CPUPercent: v, Cores: 1}); err != nil {
			t.Fatal(err)
		}
	}
	rp1CPU := func() (float64, error) {
		ms, err := c2.Members(ctx, client.MemberFilter{})
		if err != nil {
			return 0, err
		}
		for _, m := range ms {
			if m.Name == "rp1" && m.Load != nil {
				return m.Load.CPUPercent, nil
			}
		}
		return 0, fmt.Errorf("rp2 has no load for rp1 (members %+v)", ms)
	}
	waitCPU := func(want float64) {
		t.Helper()
		poll(t, 20*time.Second, fmt.Sprintf("rp2 shows rp1 at %v%% CPU", want), func() error {
			got, err := rp1CPU()
			if err == nil && got != want {
				err = fmt.Errorf("rp2 shows rp1 at %v%%", got)
			}
			return err
		})
	}
	setCPU(10)
	waitCPU(10)

	// Capture what reaches rp2's gossip port while rp1 is at 90%.
	dst := netip.MustParseAddrPort(a2.gossip)
	capt := startCapture(t, dst)
	setCPU(90)
	waitCPU(90)
	// The capture began before the change: the relay sent rp1's new 90%
	// state in full at its next round, then refreshes of it, one a
	// confirmation interval (1 s). Keep capturing until a few of those
	// have gone by too.
	poll(t, 30*time.Second, "Shoal packets captured", func() error {
		if n := capt.count(); n < 8 {
			return fmt.Errorf("%d Shoal packets to %s so far", n, dst)
		}
		return nil
	})
	pkts := capt.stop()
	setCPU(10)
	waitCPU(10)

	before := gossipIn(t, c2)
	stale0 := promCounter(t, a2.http, `shoal_gossip_stale_total{kind="load_older"}`)
	// Replay the captured packets from a plain UDP socket, over and over,
	// while watching what rp2 shows for rp1.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stopReplay := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, p := range pkts {
				select {
				case <-stopReplay:
					return
				default:
				}
				_, _ = conn.Write(p)
				time.Sleep(2 * time.Millisecond) // pacing the sender, not waiting for an outcome
			}
		}
	}()
	deadline := time.Now().Add(4 * time.Second)
	var readings, bad int
	for time.Now().Before(deadline) {
		got, err := rp1CPU()
		if err != nil {
			t.Fatal(err)
		}
		readings++
		if got != 10 {
			bad++
		}
		time.Sleep(20 * time.Millisecond) // sampling interval of the observer
	}
	close(stopReplay)
	wg.Wait()
	after := gossipIn(t, c2)
	if after-before < uint64(len(pkts)) {
		t.Fatalf("the replay did not reach rp2: its Shoal packets in went %d -> %d, %d packets were replayed at least once", before, after, len(pkts))
	}
	if bad > 0 {
		t.Fatalf("replayed packets rolled rp1's load back on rp2: %d of %d readings were not 10%% (%d captured packets replayed, %d Shoal packets reached rp2)",
			bad, readings, len(pkts), after-before)
	}
	if stale := promCounter(t, a2.http, `shoal_gossip_stale_total{kind="load_older"}`); stale <= stale0 {
		t.Fatalf("rp2 refused no stale entries in /metrics (%v -> %v)", stale0, stale)
	}
	t.Logf("%d captured packets replayed (%d Shoal packets reached rp2); rp1 stayed at 10%% in %d readings", len(pkts), after-before, readings)
	// The mesh still works: a real change still gets through.
	setCPU(40)
	waitCPU(40)
}

// promCounter reads one series (name with its labels) from an agent's
// /metrics; 0 when the agent does not export it.
func promCounter(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %q", name, line)
			}
			return f
		}
	}
	return 0
}

func gossipIn(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Traffic.LoadPacketsIn
}

// capture reads IPv4/UDP frames off the loopback interface with an
// AF_PACKET socket and keeps the payloads of Shoal packets sent to dst.
type capture struct {
	quit atomic.Bool
	mu   sync.Mutex
	pkts [][]byte
	done chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startCapture(t *testing.T, dst netip.AddrPort) *capture {
	t.Helper()
	return startCaptureOf(t, dst, func(p []byte) bool { return len(p) > 0 && p[0] == mesh.PacketMagic })
}

// startCaptureOf keeps the UDP payloads sent to dst for which keep is true.
func startCaptureOf(t *testing.T, dst netip.AddrPort, keep func([]byte) bool) *capture {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_IP)))
	if err != nil {
		t.Fatalf("AF_PACKET socket: %v", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_IP), Ifindex: lo.Index}); err != nil {
		t.Fatalf("bind AF_PACKET to lo: %v", err)
	}
	// A receive timeout lets the reader notice stop.
	tv := syscall.Timeval{Usec: 100_000}
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	c := &capture{done: make(chan struct{})}
	want := dst.Addr().As4()
	go func() {
		defer close(c.done)
		defer syscall.Close(fd)
		buf := make([]byte, 70000)
		for !c.quit.Load() {
			n, from, err := syscall.Recvfrom(fd, buf, 0)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil {
				return
			}
			// Loopback frames are seen going out and coming in: keep one.
			if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
				continue
			}
			f := buf[:n]
			if len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != syscall.ETH_P_IP {
				continue
			}
			ip := f[14:]
			if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != syscall.IPPROTO_UDP {
				continue
			}
			ihl := int(ip[0]&0x0f) * 4
			if len(ip) < ihl+8 || [4]byte(ip[16:20]) != want {
				continue
			}
			udp := ip[ihl:]
			if binary.BigEndian.Uint16(udp[2:]) != dst.Port() {
				continue
			}
			payload := udp[8:]
			if ul := int(binary.BigEndian.Uint16(udp[4:])); ul >= 8 && ul-8 <= len(payload) {
				payload = payload[:ul-8]
			}
			if !keep(payload) {
				continue
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, append([]byte(nil), payload...))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pkts)
}

// snapshot returns what has been captured so far.
func (c *capture) snapshot() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.pkts...)
}

// stop ends the capture and returns what it kept. Safe to call twice.
func (c *capture) stop() [][]byte {
	c.quit.Store(true)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.pkts...)
}
