//go:build nat

package nat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/internal/testbin"
	"github.com/shoalmesh/shoal/internal/testenv"
)

// shoalBin is the binary under test, built once by TestMain (or SHOAL_BIN).
var shoalBin string

// skipReason is why namespaces cannot be made here; "" when they can.
var skipReason string

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nat tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	skipReason = probe()
	if skipReason != "" && (os.Getenv("SHOAL_REQUIRE_NETNS") == "1" || testenv.CI()) {
		return 0, fmt.Errorf("SHOAL_REQUIRE_NETNS=1 or CI=true, but %s", skipReason)
	}
	if skipReason == "" {
		testbin.Main(m, &shoalBin, "SHOAL_BIN", testbin.Shoal)
	}
	return m.Run(), nil
}

// probe tells why this machine cannot make namespaces and NATs, or "".
func probe() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed (Debian: iproute2, iptables)"
		}
	}
	name := "shoal-probe-" + randHex(3)
	if _, err := run("ip", "netns", "add", name); err != nil {
		return "cannot make a network namespace: " + err.Error()
	}
	defer run("ip", "netns", "del", name)
	if _, err := run("ip", "netns", "exec", name, "iptables", "-t", "nat", "-L", "-n"); err != nil {
		return "iptables NAT table unavailable in a namespace: " + err.Error()
	}
	return ""
}

func needNetns(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testenv.RequireOrSkip(t, "nat tier: "+skipReason)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a command and returns its trimmed stdout; the error has stderr.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// lab is one run's namespaces and agents.
type lab struct {
	t      *testing.T
	prefix string
	dir    string
	spaces []string
	agents []*agentProc
	key    string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	// The directory is made before teardown is registered, so it is removed
	// after teardown (cleanups run last first): agents stop and their logs
	// are read while their files are still there.
	l := &lab{t: t, prefix: "sn" + randHex(2) + "-", dir: t.TempDir()}
	t.Cleanup(l.teardown)
	key, err := run(shoalBin, "keygen")
	if err != nil {
		t.Fatal(err)
	}
	l.key = key
	return l
}

func (l *lab) ns(name string) string { return l.prefix + name }

func (l *lab) sh(args ...string) {
	l.t.Helper()
	if _, err := run(args[0], args[1:]...); err != nil {
		l.t.Fatal(err)
	}
}

// in runs a command inside namespace ns.
func (l *lab) in(ns string, args ...string) {
	l.t.Helper()
	l.sh(append([]string{"ip", "netns", "exec", l.ns(ns)}, args...)...)
}

func (l *lab) addNS(name string) {
	l.t.Helper()
	l.sh("ip", "netns", "add", l.ns(name))
	l.spaces = append(l.spaces, l.ns(name))
	l.in(name, "ip", "link", "set", "lo", "up")
}

// link joins namespace a (interface ifA, address addrA) to namespace b
// (interface ifB, address addrB or "" for none) with a veth pair.
func (l *lab) link(a, ifA, addrA, b, ifB, addrB string) {
	l.t.Helper()
	tmpA, tmpB := l.prefix+randHex(2), l.prefix+randHex(2)
	l.sh("ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	l.sh("ip", "link", "set", tmpA, "netns", l.ns(a))
	l.sh("ip", "link", "set", tmpB, "netns", l.ns(b))
	for _, e := range []struct{ ns, tmp, name, addr string }{{a, tmpA, ifA, addrA}, {b, tmpB, ifB, addrB}} {
		l.in(e.ns, "ip", "link", "set", e.tmp, "name", e.name)
		if e.addr != "" {
			l.in(e.ns, "ip", "addr", "add", e.addr, "dev", e.name)
		}
		l.in(e.ns, "ip", "link", "set", e.name, "up")
	}
}

// natTopology builds the picture in doc.go; symmetric picks the NAT kind.
func (l *lab) natTopology(symmetric bool) {
	for _, n := range []string{"pub", "relay", "nat1", "nat2", "h1", "h2"} {
		l.addNS(n)
	}
	l.in("pub", "ip", "link", "add", "br0", "type", "bridge")
	l.in("pub", "ip", "link", "set", "br0", "up")
	l.link("relay", "eth0", "198.18.0.10/24", "pub", "p-relay", "")
	l.in("pub", "ip", "link", "set", "p-relay", "master", "br0")
	for i := 1; i <= 2; i++ {
		nat, host := fmt.Sprintf("nat%d", i), fmt.Sprintf("h%d", i)
		l.link(nat, "wan", fmt.Sprintf("198.18.0.%d/24", i), "pub", "p-"+nat, "")
		l.in("pub", "ip", "link", "set", "p-"+nat, "master", "br0")
		l.link(nat, "lan", fmt.Sprintf("198.18.%d.1/24", i), host, "eth0", fmt.Sprintf("198.18.%d.2/24", i))
		l.in(host, "ip", "route", "add", "default", "via", fmt.Sprintf("198.18.%d.1", i))
		l.in(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
		if symmetric {
			// A new source port for every destination: what the relay
			// observes is no use to the other peer.
			masq = append(masq, "--random-fully")
		}
		l.in(nat, masq...)
		// A firewall: from outside only replies get in. Unsolicited packets
		// are dropped before conntrack confirms an entry for them, so an
		// early punch packet does not steal the port the host's own punch
		// needs (Linux would otherwise remap it, and the NAT would act
		// symmetric).
		l.in(nat, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		l.in(nat, "iptables", "-A", "FORWARD", "-i", "wan", "-j", "DROP")
		l.in(nat, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
	}
}

func (l *lab) teardown() {
	for _, a := range l.agents {
		a.stop()
	}
	if l.t.Failed() {
		for _, a := range l.agents {
			if b, err := os.ReadFile(a.log); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				l.t.Logf("--- %s (%s), last lines of its log:\n%s", a.name, a.ns, strings.Join(lines, "\n"))
			}
		}
	}
	for _, ns := range l.spaces {
		if _, err := run("ip", "netns", "del", ns); err != nil {
			l.t.Logf("cleanup: %v", err)
		}
	}
}

// agentProc is a `shoal agent` running in a namespace.
type agentProc struct {
	l        *lab
	name, ns string
	dir      string
	args     []string
	cmd      *exec.Cmd
	log      string
	http     string
	done     chan struct{}
}

func (l *lab) start(name, ns string, args ...string) *agentProc {
	l.t.Helper()
	dir, err := os.MkdirTemp(l.dir, name+"-")
	if err != nil {
		l.t.Fatal(err)
	}
	a := &agentProc{l: l, name: name, ns: l.ns(ns), dir: dir, args: args, http: "127.0.0.1:7950"}
	for i, s := range args {
		if s == "--http-addr" && i+1 < len(args) {
			a.http = args[i+1]
		}
	}
	a.run()
	l.agents = append(l.agents, a)
	return a
}

// run starts the agent process (again, after stop: same data directory,
// so the same peer ID); its log is appended to.
func (a *agentProc) run() {
	t := a.l.t
	t.Helper()
	a.log = filepath.Join(a.dir, "agent.log")
	f, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"netns", "exec", a.ns, shoalBin, "agent", "--profile", "p2p", "--node", a.name,
		"--data-dir", filepath.Join(a.dir, "data"), "--encrypt", a.l.key, "--leave-on-terminate=false"}, a.args...)
	a.cmd = exec.Command("ip", full...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	a.done = done
	cmd := a.cmd
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
}

func (a *agentProc) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// cli runs the shoal CLI against this agent and decodes its JSON output.
func (a *agentProc) cli(out any, args ...string) error {
	select {
	case <-a.done:
		return fmt.Errorf("agent %s exited; see %s", a.name, a.log)
	default:
	}
	full := append([]string{"netns", "exec", a.ns, shoalBin}, args...)
	full = append(full, "--http-addr", a.http, "--format", "json")
	s, err := run("ip", full...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		return fmt.Errorf("%s: %v in %q", strings.Join(args, " "), err, s)
	}
	return nil
}

func (a *agentProc) info() (client.Info, error) {
	var in client.Info
	err := a.cli(&in, "info")
	if err == nil && in.P2P == nil {
		err = errors.New("info has no p2p section")
	}
	return in, err
}

func (a *agentProc) members() ([]client.Member, error) {
	var ms []client.Member
	return ms, a.cli(&ms, "members")
}

// quicAddr waits for the agent to answer and returns its QUIC multiaddr.
func (a *agentProc) quicAddr(t *testing.T) (addr, id string) {
	t.Helper()
	poll.Until(t, 30*time.Second, a.name+" answers with its p2p address", func() error {
		in, err := a.info()
		if err != nil {
			return err
		}
		for _, s := range in.P2P.Addrs {
			if strings.Contains(s, "/quic-v1/") {
				addr, id = s, in.Node
				return nil
			}
		}
		return fmt.Errorf("no QUIC address in %v", in.P2P.Addrs)
	})
	return addr, id
}

// sees is nil when a lists peer alive with load younger than maxAge.
func (a *agentProc) sees(peer string, maxAge float64) (client.Member, error) {
	ms, err := a.members()
	if err != nil {
		return client.Member{}, err
	}
	for _, m := range ms {
		if m.Name != peer {
			continue
		}
		if m.Status != "alive" {
			return m, fmt.Errorf("%s sees %s %s", a.name, peer, m.Status)
		}
		if m.Load == nil || m.LoadAgeSeconds < 0 || m.LoadAgeSeconds > maxAge {
			return m, fmt.Errorf("%s holds no fresh load for %s (age %.1fs)", a.name, peer, m.LoadAgeSeconds)
		}
		return m, nil
	}
	return client.Member{}, fmt.Errorf("%s does not list %s (%d members)", a.name, peer, len(ms))
}

// natMesh starts the relay and the two agents behind NAT and waits until
// each sees the other's load; it returns them and their peer IDs.
func natMesh(t *testing.T, symmetric bool) (l *lab, relay, h1, h2 *agentProc, id1, id2 string) {
	l = newLab(t)
	l.natTopology(symmetric)
	relay = l.start("relay", "relay", "--bind", "198.18.0.10:7946", "--relay", "--p2p-public-net", "198.18.0.0/24")
	raddr, rid := relay.quicAddr(t)
	begin := time.Now()
	common := []string{"--p2p-bootstrap", raddr, "--p2p-public-net", "198.18.0.0/24"}
	h1 = l.start("h1", "h1", append([]string{"--bind", "198.18.1.2:7946"}, common...)...)
	h2 = l.start("h2", "h2", append([]string{"--bind", "198.18.2.2:7946"}, common...)...)
	_, id1 = h1.quicAddr(t)
	_, id2 = h2.quicAddr(t)
	poll.Until(t, 60*time.Second, "h1 and h2, behind different NATs, see each other's load", func() error {
		if _, err := h1.sees(id2, 5); err != nil {
			return err
		}
		_, err := h2.sees(id1, 5)
		return err
	})
	t.Logf("joined through the relay: both see each other's load %.1fs after start", time.Since(begin).Seconds())
	// Both hold a slot at the relay, with limits sized for gossip: libp2p's
	// defaults (2 minutes or 128 KiB per relayed connection) would cut the
	// gossip of peers that stay relayed.
	for _, h := range []*agentProc{h1, h2} {
		poll.Until(t, 30*time.Second, h.name+" holds a slot at the relay", func() error {
			in, err := h.info()
			if err != nil {
				return err
			}
			for _, r := range in.P2P.Relays {
				if r.Relay != rid {
					continue
				}
				if (r.CircuitLimitSeconds > 0 && r.CircuitLimitSeconds < 3600) || (r.CircuitLimitBytes > 0 && r.CircuitLimitBytes < 1<<30) {
					t.Fatalf("%s: the relay cuts circuits after %.0fs or %d bytes; want limits sized for gossip", h.name, r.CircuitLimitSeconds, r.CircuitLimitBytes)
				}
				return nil
			}
			return fmt.Errorf("no slot at %s in %+v", rid, in.P2P.Relays)
		})
	}
	return l, relay, h1, h2, id1, id2
}

// elect asks h1 for a coordinator and waits until h2 names the same one
// under the same term.
func elect(t *testing.T, h1, h2 *agentProc) {
	t.Helper()
	var l1 client.Leader
	if err := h1.cli(&l1, "leader", "--elect", "--wait", "30s"); err != nil {
		t.Fatal(err)
	}
	if l1.Coordinator == "" || l1.Term == 0 {
		t.Fatalf("no coordinator after --elect: %+v", l1)
	}
	poll.Until(t, 30*time.Second, "h2 names h1's coordinator", func() error {
		var l2 client.Leader
		if err := h2.cli(&l2, "leader"); err != nil {
			return err
		}
		if l2.Coordinator != l1.Coordinator || l2.Term != l1.Term {
			return fmt.Errorf("h1 names %s (term %d), h2 names %q (term %d)", l1.Coordinator, l1.Term, l2.Coordinator, l2.Term)
		}
		return nil
	})
	t.Logf("coordinator %s, term %d, named by both", l1.Coordinator, l1.Term)
}

// conntrack returns the NAT router's connection-tracking table, or "" when
// the kernel does not show it.
func (l *lab) conntrack(ns string) string {
	s, err := run("ip", "netns", "exec", l.ns(ns), "cat", "/proc/net/nf_conntrack")
	if err != nil {
		return ""
	}
	return s
}

// growth waits until f's value has grown by at least by, and returns the
// time it took.
func growth(t *testing.T, what string, by uint64, f func() (uint64, error)) time.Duration {
	t.Helper()
	start, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return poll.Until(t, 30*time.Second, what, func() error {
		v, err := f()
		if err != nil {
			return err
		}
		if v < start+by {
			return fmt.Errorf("grew %d of %d", v-start, by)
		}
		return nil
	})
}

func TestConeNATHolePunchedToDirect(t *testing.T) {
	needNetns(t)
	l, _, h1, h2, _, id2 := natMesh(t, false)
	elect(t, h1, h2)

	took := poll.Until(t, 60*time.Second, "h1 reaches h2 directly (hole punched)", func() error {
		m, err := h1.sees(id2, 5)
		if err != nil {
			return err
		}
		if m.P2PConn != "direct" {
			in1, _ := h1.info()
			p := in1.P2P
			if p == nil {
				p = &client.P2PInfo{}
			}
			return fmt.Errorf("h1 reaches h2 %q (h1: hole punches %d, direct %d, retries %d)", m.P2PConn, p.HolePunches, p.HolePunchesDirect, p.PunchRetries)
		}
		return nil
	})
	in1, err := h1.info()
	if err != nil {
		t.Fatal(err)
	}
	in2, err := h2.info()
	if err != nil {
		t.Fatal(err)
	}
	if in1.P2P.HolePunchesDirect+in2.P2P.HolePunchesDirect == 0 {
		t.Errorf("direct connection without a hole punch counted: h1 %+v, h2 %+v", in1.P2P, in2.P2P)
	}
	t.Logf("direct %.1fs after both saw each other; h1: %d hole punches (%d direct), %d upgrades; h2: %d (%d), %d",
		took.Seconds(), in1.P2P.HolePunches, in1.P2P.HolePunchesDirect, in1.P2P.Upgrades,
		in2.P2P.HolePunches, in2.P2P.HolePunchesDirect, in2.P2P.Upgrades)

	// The gossip now goes host to host through both NATs, not via the relay.
	growth(t, "h1 sends packets on direct connections", 20, func() (uint64, error) {
		in, err := h1.info()
		if err != nil {
			return 0, err
		}
		return in.P2P.PacketsDirect, nil
	})
	if ct := l.conntrack("nat1"); ct != "" {
		flow := "src=198.18.1.2 dst=198.18.0.2"
		found := false
		for _, line := range strings.Split(ct, "\n") {
			if strings.Contains(line, flow) && strings.Contains(line, "ASSURED") {
				found = true
				t.Logf("nat1 conntrack: %s", strings.TrimSpace(line))
			}
		}
		if !found {
			t.Errorf("nat1 has no established flow from h1 to nat2's outside address (%s):\n%s", flow, ct)
		}
	}
}

func TestSymmetricNATStaysRelayed(t *testing.T) {
	needNetns(t)
	_, relay, h1, h2, _, id2 := natMesh(t, true)
	elect(t, h1, h2)

	poll.Until(t, 60*time.Second, "a hole punch tried and failed", func() error {
		in1, err := h1.info()
		if err != nil {
			return err
		}
		in2, err := h2.info()
		if err != nil {
			return err
		}
		if in1.P2P.HolePunches+in2.P2P.HolePunches == 0 {
			return fmt.Errorf("no hole punch finished yet (h1 reaches h2 %s; retries h1 %d, h2 %d)", connOf(h1, id2), in1.P2P.PunchRetries, in2.P2P.PunchRetries)
		}
		if d := in1.P2P.HolePunchesDirect + in2.P2P.HolePunchesDirect; d != 0 {
			return fmt.Errorf("%d hole punches succeeded through symmetric NATs", d)
		}
		return nil
	})
	m, err := h1.sees(id2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if m.P2PConn != "relayed" {
		t.Fatalf("h1 reaches h2 %q through symmetric NATs; want relayed", m.P2PConn)
	}
	// Traffic keeps flowing through the relay, and the load stays fresh.
	took := growth(t, "h1 keeps sending through the relay", 20, func() (uint64, error) {
		in, err := h1.info()
		if err != nil {
			return 0, err
		}
		return in.P2P.PacketsRelayed, nil
	})
	if _, err := h1.sees(id2, 5); err != nil {
		t.Fatal(err)
	}
	t.Logf("relayed: 20 packets from h1 through the relay in %.1fs; h2's load still fresh at h1", took.Seconds())

	// A peer still relayed gets another hole punch later: its relayed
	// connection is closed, a new one opens, and the other side punches
	// again (libp2p punches once per inbound relayed connection). The
	// gossip survives the reconnection.
	took = poll.Until(t, 2*time.Minute, "another hole punch after a retry", func() error {
		in1, err := h1.info()
		if err != nil {
			return err
		}
		in2, err := h2.info()
		if err != nil {
			return err
		}
		if r, p := in1.P2P.PunchRetries+in2.P2P.PunchRetries, in1.P2P.HolePunches+in2.P2P.HolePunches; r == 0 || p < 2 {
			return fmt.Errorf("retries %d, hole punches %d", r, p)
		}
		return nil
	})
	poll.Until(t, 30*time.Second, "h2 relayed and fresh at h1 after the retry", func() error {
		m, err := h1.sees(id2, 5)
		if err == nil && m.P2PConn != "relayed" {
			err = fmt.Errorf("h1 reaches h2 %q", m.P2PConn)
		}
		return err
	})
	t.Logf("retry: a second hole punch %.0fs later (failed again, as it must behind symmetric NATs); gossip still flows", took.Seconds())

	// The relay restarts (same identity): both hosts reserve again at once,
	// and the relayed gossip between them resumes.
	slots := func(h *agentProc) string {
		in, err := h.info()
		if err != nil || len(in.P2P.Relays) == 0 {
			return ""
		}
		return in.P2P.Relays[0].Expires
	}
	before1, before2 := slots(h1), slots(h2)
	relay.stop()
	relay.run()
	begin := time.Now()
	poll.Until(t, time.Minute, "both hosts hold a new slot at the restarted relay", func() error {
		if s := slots(h1); s == "" || s == before1 {
			return fmt.Errorf("h1's slot %q (before %q)", s, before1)
		}
		if s := slots(h2); s == "" || s == before2 {
			return fmt.Errorf("h2's slot %q (before %q)", s, before2)
		}
		return nil
	})
	t.Logf("relay restarted: both hold new slots %.1fs later", time.Since(begin).Seconds())
	growth(t, "h1 sends through the restarted relay", 20, func() (uint64, error) {
		in, err := h1.info()
		if err != nil {
			return 0, err
		}
		return in.P2P.PacketsRelayed, nil
	})
	if _, err := h1.sees(id2, 5); err != nil {
		t.Fatal(err)
	}
	t.Logf("relay restarted: relayed gossip between the hosts again %.1fs later", time.Since(begin).Seconds())
}

// connOf says how a reaches the member id, for messages.
func connOf(a *agentProc, id string) string {
	ms, err := a.members()
	if err != nil {
		return err.Error()
	}
	for _, m := range ms {
		if m.Name == id {
			return fmt.Sprintf("%q (%s, load age %.1fs)", m.P2PConn, m.Status, m.LoadAgeSeconds)
		}
	}
	return "absent"
}

func TestMDNSOnOneLAN(t *testing.T) {
	needNetns(t)
	l := newLab(t)
	// One namespace, one multicast-capable LAN interface (a veth whose other
	// end sits in a second namespace), two agents, no join list.
	l.addNS("lan")
	l.addNS("peer")
	l.link("lan", "eth0", "198.18.3.1/24", "peer", "eth0", "198.18.3.2/24")
	a := l.start("a", "lan", "--bind", "198.18.3.1:7946", "--mdns", "--http-addr", "127.0.0.1:7950")
	b := l.start("b", "lan", "--bind", "198.18.3.1:7947", "--mdns", "--http-addr", "127.0.0.1:7951")
	_, ida := a.quicAddr(t)
	_, idb := b.quicAddr(t)
	took := poll.Until(t, 60*time.Second, "two agents with --mdns and no join list find each other", func() error {
		if _, err := a.sees(idb, 5); err != nil {
			return err
		}
		_, err := b.sees(ida, 5)
		return err
	})
	t.Logf("found each other by mDNS in %.1fs", took.Seconds())
}
