//go:build nemesis

package nemesis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/agentproc"
	"github.com/shoalmesh/shoal/scale/providers"
)

var (
	flagSeed     = flag.Uint64("nemesis.seed", 0, "schedule seed (0: from the clock; printed)")
	flagDuration = flag.Duration("nemesis.duration", 60*time.Second, "random run: faults until holds and gaps add up to this (split between the exec and webhook runs)")
	flagNodes    = flag.Int("nemesis.nodes", 0, "agents in the random run, 5-7 (0: 5 + seed mod 3)")
	flagProvider = flag.String("nemesis.provider", "both", "random run's provider: exec, webhook or both (half the duration each)")
	flagLiveness = flag.Duration("nemesis.liveness", 5*time.Second, "(c): a coordinator acts within this after a heal")
	flagMinority = flag.Duration("nemesis.minority", 2500*time.Millisecond, "(e): a side without quorum stops acting within this")
	flagReport   = flag.String("nemesis.report", "", "append each run's summary (one JSON line) to this file")
	flagKeep     = flag.String("nemesis.keep", "", "copy a failed test's logs (agents, acting, shared) under this directory")
	flagLogLevel = flag.String("nemesis.loglevel", "info", "the agents' --log-level (debug shows every election step)")
)

var shoalBin string
var hasActingLog bool

// nemesisKey is the agents' gossip key (16 bytes, base64).
const nemesisKey = "bmVtZXNpcy1nb3NzaXAtaw=="

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(setup(m))
}

// required: a run that cannot happen fails instead of skipping (CI).
func required() bool { return os.Getenv("CI") == "true" || os.Getenv("SHOAL_REQUIRE_NEMESIS") == "1" }

func setup(m *testing.M) int {
	if why := canRun(); why != "" {
		if required() {
			fmt.Fprintf(os.Stderr, "FAIL: the nemesis test cannot run here: %s\n", why)
			return 1
		}
		fmt.Printf("SKIP: the nemesis test cannot run here: %s\n", why)
		return 0
	}
	dir, err := os.MkdirTemp("", "shoal-nemesis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if shoalBin = os.Getenv("SHOAL_NEMESIS_BIN"); shoalBin != "" {
		fmt.Printf("nemesis: using %s\n", shoalBin)
	} else if shoalBin, err = agentproc.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hasActingLog = agentproc.HasFlag(shoalBin, "acting-log")
	if !hasActingLog {
		fmt.Println("nemesis: this binary has no --acting-log: (a) is checked on the /v1/leader samples")
	}
	return m.Run()
}

func canRun() string {
	if os.Geteuid() != 0 {
		return "network namespaces and iptables need root"
	}
	for _, c := range []string{"ip", "iptables", "flock"} {
		if _, err := exec.LookPath(c); err != nil {
			return c + " is not installed"
		}
	}
	ns := "shoalnem-probe-" + randHex(3)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot make a network namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "exec", ns, "iptables", "-S").CombinedOutput(); err != nil {
		return fmt.Sprintf("iptables in a namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	return ""
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sh(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// lab is the network: a namespace with a bridge ("switch"), one
// namespace per agent on it (198.19.S.i), and a veth from the test's own
// namespace (198.19.S.254) through which the test reaches the agents' APIs
// and the agents reach the webhook receiver.
type lab struct {
	t      *testing.T
	prefix string
	subnet int
	spaces []string
}

func newLab(t *testing.T) *lab {
	l := &lab{t: t, prefix: "shoalnem-" + randHex(2) + "-"}
	t.Cleanup(l.teardown)
	// A /24 not on any interface here.
	taken, _ := exec.Command("ip", "-4", "-o", "addr").Output()
	for {
		b := make([]byte, 1)
		_, _ = rand.Read(b)
		l.subnet = 1 + int(b[0])%250
		if !strings.Contains(string(taken), fmt.Sprintf("198.19.%d.", l.subnet)) {
			break
		}
	}
	sw := l.prefix + "sw"
	l.must("ip", "netns", "add", sw)
	l.spaces = append(l.spaces, sw)
	l.must("ip", "netns", "exec", sw, "ip", "link", "add", "br0", "type", "bridge")
	l.must("ip", "netns", "exec", sw, "ip", "link", "set", "br0", "up")
	host := "nem" + randHex(3)
	l.must("ip", "link", "add", host, "type", "veth", "peer", "name", host+"p")
	l.must("ip", "link", "set", host+"p", "netns", sw)
	l.must("ip", "netns", "exec", sw, "ip", "link", "set", host+"p", "master", "br0", "up")
	l.must("ip", "addr", "add", l.ip(254)+"/24", "dev", host)
	l.must("ip", "link", "set", host, "up")
	return l
}

func (l *lab) ip(i int) string { return fmt.Sprintf("198.19.%d.%d", l.subnet, i) }

func (l *lab) must(args ...string) {
	l.t.Helper()
	if err := sh(args...); err != nil {
		l.t.Fatal(err)
	}
}

// addHost makes namespace ns with address ip(i) on the bridge.
func (l *lab) addHost(ns string, i int) {
	sw := l.prefix + "sw"
	l.must("ip", "netns", "add", ns)
	l.spaces = append(l.spaces, ns)
	l.must("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	v := "nem" + randHex(3)
	l.must("ip", "link", "add", v, "type", "veth", "peer", "name", v+"p")
	l.must("ip", "link", "set", v, "netns", ns)
	l.must("ip", "link", "set", v+"p", "netns", sw)
	l.must("ip", "netns", "exec", sw, "ip", "link", "set", v+"p", "master", "br0", "up")
	l.must("ip", "netns", "exec", ns, "ip", "link", "set", v, "name", "eth0")
	l.must("ip", "netns", "exec", ns, "ip", "addr", "add", l.ip(i)+"/24", "dev", "eth0")
	l.must("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
}

func (l *lab) teardown() {
	for _, ns := range l.spaces {
		if err := sh("ip", "netns", "del", ns); err != nil {
			l.t.Logf("cleanup: %v", err)
		}
	}
}

// node is one agent in its namespace.
type node struct {
	i        int
	name, ip string
	ns       string
	a        *agentproc.Agent
	mu       sync.Mutex
	state    string // up, stopped, dead, leaving
}

func (n *node) setState(s string) { n.mu.Lock(); n.state = s; n.mu.Unlock() }
func (n *node) getState() string  { n.mu.Lock(); defer n.mu.Unlock(); return n.state }

// options of a mesh.
type options struct {
	nodes    int
	provider string // exec or webhook
	metric   string // default cpu
	load     bool   // run the load injector
	high     bool   // the load is fixed, no phases (see fixLoad)
	startCPU int    // with high: the first fixed load (0: 90%)
	// countless: the provider has no authoritative count (exec without
	// current_command, webhook without current_url), as in defect 1; else
	// it reads the resource's count, what exactly-once needs when a
	// coordinator can die between acting and announcing.
	countless bool
	seed      uint64 // load phases
	poll      time.Duration
	extra     []string
}

// cluster is a running mesh with everything it records.
type cluster struct {
	t        *testing.T
	lab      *lab
	dir      string
	opt      options
	nodes    []*node
	shared   string
	recv     *receiver
	token    string
	start    time.Time
	mu       sync.Mutex
	samples  []Sample
	leaves   []Window
	heals    []Heal
	cuts     []Cut
	timeline []string
	faults   map[Kind]int
	only     string // check only these properties (a scenario that breaks the others on purpose)
	replay   string // the command that replays a random run
	stop     chan struct{}
	wg       sync.WaitGroup
	fixed    atomic.Int64 // with options.high: the CPU percent every node reports
}

// fixLoad makes every node report cpu percent from now on (options.high).
func (c *cluster) fixLoad(cpu int) {
	c.fixed.Store(int64(cpu))
	c.logf("load fixed at %d%% CPU", cpu)
	c.setLoad(float64(cpu))
}

func newCluster(t *testing.T, opt options) *cluster {
	if opt.metric == "" {
		opt.metric = "cpu"
	}
	if opt.poll == 0 {
		opt.poll = 100 * time.Millisecond
	}
	c := &cluster{t: t, dir: t.TempDir(), opt: opt, token: randHex(16), faults: map[Kind]int{}, stop: make(chan struct{})}
	c.fixed.Store(90)
	if opt.startCPU > 0 {
		c.fixed.Store(int64(opt.startCPU))
	}
	c.lab = newLab(t)
	c.shared = filepath.Join(c.dir, "shared.log")
	if err := os.WriteFile(c.shared, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	var scaleArgs []string
	switch opt.provider {
	case "exec":
		script := filepath.Join(c.dir, "act.sh")
		body := fmt.Sprintf(`#!/bin/sh
# The resource: every action appended to one log, under a lock.
exec 9>>%[1]s.lock
flock 9
printf '{"holder":"%%s","node":"%%s","term":%%s,"from":%%s,"to":%%s,"at_ns":%%s,"decided":"%%s","via":"exec"}\n' \
  "$SHOAL_SCALE_HOLDER" "$SHOAL_SCALE_NODE" "$SHOAL_SCALE_TERM" "$SHOAL_SCALE_CURRENT" "$SHOAL_SCALE_DESIRED" "$(date +%%s%%N)" "$SHOAL_SCALE_TIME" >> %[1]s
`, c.shared)
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		scaleArgs = []string{"--scale-provider", "exec", "--scale-resource", "/bin/sh " + script}
		if !opt.countless {
			cur := filepath.Join(c.dir, "current.sh")
			body := fmt.Sprintf(`#!/bin/sh
# The resource's count: the last action's "to", or the initial count.
n=$(tail -n 1 %s | sed -n 's/.*"to":\([0-9]*\).*/\1/p')
echo "${n:-%d}"
`, c.shared, opt.nodes)
			if err := os.WriteFile(cur, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			scaleArgs = append(scaleArgs, "--scale-opt", "current_command=/bin/sh "+cur)
		}
	case "webhook":
		c.recv = newReceiver(t, c.lab.ip(254), c.shared, opt.nodes)
		scaleArgs = []string{"--scale-provider", "webhook", "--scale-resource", c.recv.url, "--scale-opt", "secret=" + c.recv.secret,
			"--scale-opt", "timeout=2s", "--scale-opt", "retries=1"}
		if !opt.countless {
			scaleArgs = append(scaleArgs, "--scale-opt", "current_url="+strings.TrimSuffix(c.recv.url, "/scale")+"/current")
		}
	default:
		t.Fatalf("provider %q", opt.provider)
	}
	scaleArgs = append(scaleArgs, "--scale-metric", opt.metric,
		"--scale-threshold", "above 70 for 1s -> +1", "--scale-threshold", "below 30 for 1s -> -1",
		"--scale-min", "1", "--scale-max", "40", "--scale-interval", "200ms",
		"--scale-up-cooldown", "1s", "--scale-down-cooldown", "1s")
	for i := range opt.nodes {
		n := &node{i: i, name: fmt.Sprintf("n%d", i+1), ip: c.lab.ip(i + 1), ns: c.lab.prefix + fmt.Sprintf("n%d", i+1)}
		c.lab.addHost(n.ns, i+1)
		dir := filepath.Join(c.dir, n.name)
		n.a = &agentproc.Agent{Name: n.name, Bin: shoalBin, Prefix: []string{"ip", "netns", "exec", n.ns},
			Gossip: n.ip + ":7946", HTTP: n.ip + ":8500", DataDir: filepath.Join(dir, "data"), Log: filepath.Join(dir, "agent.log"), Token: c.token}
		// Gossip off loopback needs a key (or --insecure-gossip): give them one.
		args := []string{"--profile", "lan", "--encrypt", nemesisKey, "--enable-debug", "--priority", strconv.Itoa(i + 1), "--sample-interval", "200ms", "--log-level", *flagLogLevel, "--retry-join"}
		if hasActingLog {
			args = append(args, "--acting-log", filepath.Join(dir, "acting.jsonl"))
		}
		args = append(append(args, scaleArgs...), opt.extra...)
		n.a.Args = args
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(c.teardown)
	c.start = time.Now()
	for _, n := range c.nodes {
		c.startNode(n, n.i > 0)
	}
	c.waitWhole(30 * time.Second)
	c.wg.Add(1)
	go c.monitor()
	if opt.load {
		c.wg.Add(1)
		go c.injectLoad()
	}
	return c
}

// startNode starts (or restarts) n; join names the other nodes (the first
// start of n1 joins nobody).
func (c *cluster) startNode(n *node, join bool) {
	c.t.Helper()
	base := n.a.Args
	if join {
		for _, o := range c.nodes {
			if o != n {
				n.a.Args = append(n.a.Args, "--join", o.a.Gossip)
			}
		}
	}
	err := n.a.Start()
	n.a.Args = base
	if err != nil {
		c.t.Fatal(err)
	}
	n.setState("up")
	if err := n.a.WaitAPI(20 * time.Second); err != nil {
		c.t.Fatalf("%v\n%s", err, n.a.Tail(30))
	}
}

func (c *cluster) logf(format string, args ...any) {
	line := fmt.Sprintf("%7.2fs %s", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
	c.mu.Lock()
	c.timeline = append(c.timeline, line)
	c.mu.Unlock()
	c.t.Log(line)
}

func (c *cluster) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// waitWhole waits until every running node sees every running node alive.
func (c *cluster) waitWhole(d time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < d {
		last = c.whole()
		if last == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond) // the poll interval, not a wait for an outcome
	}
	c.t.Fatalf("mesh not whole within %v: %v", d, last)
	return 0
}

func (c *cluster) whole() error {
	var up []*node
	for _, n := range c.nodes {
		if n.getState() == "up" {
			up = append(up, n)
		}
	}
	for _, n := range up {
		ctx, cancel := c.ctx(time.Second)
		ms, err := n.a.Client().Members(ctx, client.MemberFilter{Status: "alive"})
		cancel()
		if err != nil {
			return err
		}
		if len(ms) != len(up) {
			return fmt.Errorf("%s sees %d alive, %d are up", n.name, len(ms), len(up))
		}
	}
	return nil
}

// monitor polls every running node's /v1/leader.
func (c *cluster) monitor() {
	defer c.wg.Done()
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(c.opt.poll)
			defer tk.Stop()
			for {
				select {
				case <-c.stop:
					return
				case <-tk.C:
				}
				if n.getState() != "up" && n.getState() != "leaving" {
					continue
				}
				sent := time.Now()
				ctx, cancel := c.ctx(400 * time.Millisecond)
				l, err := n.a.Client().Leader(ctx)
				cancel()
				if err != nil {
					continue
				}
				c.mu.Lock()
				c.samples = append(c.samples, Sample{Node: n.name, Sent: sent, At: time.Now(), Acting: l.Acting, Coordinator: l.Coordinator, Term: l.Term})
				c.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// injectLoad alternates high (90%) and low (10%) CPU on every node, in
// phases of 5-10 s drawn from the seed, re-sent every 500 ms (a restarted
// agent forgets it).
func (c *cluster) injectLoad() {
	defer c.wg.Done()
	r := newRand(c.opt.seed ^ 0x10ad)
	high := true
	phaseEnd := time.Now().Add(time.Duration(5000+r.IntN(5000)) * time.Millisecond)
	tk := time.NewTicker(500 * time.Millisecond)
	defer tk.Stop()
	for {
		if time.Now().After(phaseEnd) && !c.opt.high {
			high = !high
			phaseEnd = time.Now().Add(time.Duration(5000+r.IntN(5000)) * time.Millisecond)
		}
		cpu := 10.0
		if high {
			cpu = 90
		}
		if c.opt.high {
			cpu = float64(c.fixed.Load())
		}
		c.setLoad(cpu)
		select {
		case <-c.stop:
			return
		case <-tk.C:
		}
	}
}

func (c *cluster) setLoad(cpu float64) {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.getState() != "up" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := c.ctx(400 * time.Millisecond)
			defer cancel()
			_ = n.a.Client().SetDebugLoad(ctx, client.DebugLoad{CPUPercent: cpu, Cores: 1})
		}()
	}
	wg.Wait()
}

// coordinator is the node acting now, by asking every running node (up
// to d); nil when none acts.
func (c *cluster) coordinator(d time.Duration) *node {
	deadline := time.Now().Add(d)
	for {
		var best *node
		var bestTerm uint64
		for _, n := range c.nodes {
			if n.getState() != "up" {
				continue
			}
			ctx, cancel := c.ctx(400 * time.Millisecond)
			l, err := n.a.Client().Leader(ctx)
			cancel()
			if err == nil && l.Acting && l.Term >= bestTerm {
				best, bestTerm = n, l.Term
			}
		}
		if best != nil || time.Now().After(deadline) {
			return best
		}
		time.Sleep(100 * time.Millisecond) // the poll interval, not a wait for an outcome
	}
}

// waitLoads waits until every running node sees every running node's load.
func (c *cluster) waitLoads(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := c.whole()
		if err == nil {
			for _, n := range c.nodes {
				ctx, cancel := c.ctx(time.Second)
				ms, e := n.a.Client().Members(ctx, client.MemberFilter{Status: "alive"})
				cancel()
				for _, m := range ms {
					if e == nil && m.Load == nil {
						e = fmt.Errorf("%s has no load from %s", n.name, m.Name)
					}
				}
				if err = e; err != nil {
					break
				}
			}
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("loads not everywhere within %v: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond) // the poll interval, not a wait for an outcome
	}
}

// settle waits until a coordinator acts and has made two actions (with
// load), and returns it.
func (c *cluster) settle() *node {
	c.t.Helper()
	// As an operator would: ask for an election (the highest priority
	// wins), so every run starts from the same coordinator.
	ctx, cancel := c.ctx(10 * time.Second)
	_, err := c.nodes[0].a.Client().Elect(ctx)
	cancel()
	if err != nil {
		c.logf("leader --elect on n1: %v", err)
	}
	co := c.coordinator(30 * time.Second)
	if co == nil {
		c.t.Fatal("no coordinator acts within 30 s of the start")
	}
	if c.opt.load && !c.waitActions(0, 2, co.name, 30*time.Second) {
		c.t.Fatalf("%s did not act twice within 30 s", co.name)
	}
	co = c.coordinator(10 * time.Second)
	c.logf("settled: %s acts, %d actions so far", co.name, len(c.actions()))
	return co
}

// actions reads the shared log.
func (c *cluster) actions() []Action {
	acts, err := ReadActions(c.shared)
	if err != nil {
		c.t.Fatal(err)
	}
	return acts
}

// waitActions waits up to d until k more actions than before reached the
// resource (by holder, when holder is not ""); it reports whether they did.
func (c *cluster) waitActions(before, k int, holder string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		got := 0
		for _, a := range c.actions()[before:] {
			if holder == "" || a.Holder == holder {
				got++
			}
		}
		if got >= k {
			return true
		}
		if time.Now().After(deadline) {
			c.logf("only %d of %d actions (holder %q) within %v", got, k, holder, d)
			return false
		}
		time.Sleep(100 * time.Millisecond) // the poll interval, not a wait for an outcome
	}
}

// --- faults ---

func (c *cluster) kill(n *node) {
	_ = n.a.Signal(syscall.SIGKILL)
	_ = n.a.Signal(syscall.SIGCONT)
	_ = n.a.Wait(10 * time.Second)
	n.setState("dead")
	c.logf("kill -9 %s", n.name)
}

func (c *cluster) restart(n *node, why string) {
	c.startNode(n, true)
	c.heal("restart of " + n.name + why)
}

func (c *cluster) sigstop(ns ...*node) {
	for _, n := range ns {
		_ = n.a.Signal(syscall.SIGSTOP)
		n.setState("stopped")
	}
	c.logf("SIGSTOP %s", names(ns))
}

func (c *cluster) sigcont(ns ...*node) {
	for _, n := range ns {
		_ = n.a.Signal(syscall.SIGCONT)
		n.setState("up")
	}
	c.heal("SIGCONT of " + names(ns))
}

// leave is a graceful leave: SIGTERM and the exit, recorded as a window.
func (c *cluster) leave(n *node) {
	from := time.Now()
	n.setState("leaving")
	_ = n.a.Signal(syscall.SIGTERM)
	err := n.a.Wait(15 * time.Second)
	n.setState("dead")
	to := time.Now()
	c.mu.Lock()
	c.leaves = append(c.leaves, Window{Node: n.name, From: from, To: to})
	c.mu.Unlock()
	c.logf("SIGTERM %s: left in %v", n.name, to.Sub(from).Round(time.Millisecond))
	if err != nil {
		c.t.Errorf("%s did not exit within 15 s of SIGTERM", n.name)
		n.a.Kill()
	}
}

// cut drops packets from every node of from to every node of to, in the
// senders' namespaces.
func (c *cluster) cut(from, to []*node) {
	if err := cutRules(from, to); err != nil {
		c.t.Fatal(err)
	}
}

// cutRules adds the DROP rules of cut: one rule per sender, all senders at
// once, so that a cut takes effect within one command's time rather than
// one per pair (a dozen under load took over half a second).
func cutRules(from, to []*node) error {
	var dst []string
	for _, b := range to {
		dst = append(dst, b.ip)
	}
	errs := make(chan error, len(from))
	for _, a := range from {
		go func() {
			errs <- sh("ip", "netns", "exec", a.ns, "iptables", "-A", "OUTPUT", "-d", strings.Join(dst, ","), "-j", "DROP")
		}()
	}
	var first error
	for range from {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *cluster) partition(side []*node, oneWay bool) {
	c.partitionTimed(side, oneWay)
}

// partitionTimed is partition, and returns when the first rule went in
// and when the last one had.
func (c *cluster) partitionTimed(side []*node, oneWay bool) (start, done time.Time) {
	rest := without(c.nodes, side...)
	start = time.Now()
	what := "partition " + names(side) + " | " + names(rest)
	if oneWay {
		c.cut(side, rest)
		what = "one-way partition " + names(side) + " -> " + names(rest) + " dropped"
	} else {
		back := make(chan error, 1)
		go func() { back <- cutRules(rest, side) }()
		c.cut(side, rest)
		if err := <-back; err != nil {
			c.t.Fatal(err)
		}
	}
	done = time.Now()
	c.logf("%s (rules in %v)", what, done.Sub(start).Round(time.Millisecond))
	return start, done
}

func (c *cluster) healNet() {
	for _, n := range c.nodes {
		if err := sh("ip", "netns", "exec", n.ns, "iptables", "-F", "OUTPUT"); err != nil {
			c.t.Error(err)
		}
	}
	c.heal("partition healed")
}

func (c *cluster) heal(what string) {
	c.mu.Lock()
	c.heals = append(c.heals, Heal{At: time.Now(), What: what, Quiet: true})
	c.mu.Unlock()
	c.logf("heal: %s", what)
}

// noQuorum records that side has no quorum from now until healed() is
// called on the returned func.
func (c *cluster) noQuorum(side []*node, what string) func() {
	at := time.Now()
	return func() {
		var ns []string
		for _, n := range side {
			ns = append(ns, n.name)
		}
		c.mu.Lock()
		c.cuts = append(c.cuts, Cut{Side: ns, At: at, Healed: time.Now(), What: what})
		c.mu.Unlock()
	}
}

// apply runs one fault of a schedule: the fault, its hold, the heal and
// the gap.
func (c *cluster) apply(f Fault) {
	targets := make([]*node, len(f.Nodes))
	for i, x := range f.Nodes {
		targets[i] = c.nodes[x]
	}
	if f.Coord {
		if co := c.coordinator(3 * time.Second); co == nil {
			c.logf("%v: no coordinator acts; targets as drawn", f)
		} else if !contains(targets, co) {
			targets[0] = co
		}
	}
	c.logf("fault %v -> %s", f, names(targets))
	c.mu.Lock()
	c.faults[f.Kind]++
	c.mu.Unlock()
	switch f.Kind {
	case Kill9, KillRestart:
		c.kill(targets[0])
		time.Sleep(f.Hold) // the fault's drawn duration
		c.restart(targets[0], " after "+f.Hold.String())
	case Stop1, StopMajority:
		c.sigstop(targets...)
		var done func()
		if f.Kind == StopMajority {
			done = c.noQuorum(without(c.nodes, targets...), "a majority stopped")
		}
		time.Sleep(f.Hold) // the fault's drawn duration
		c.sigcont(targets...)
		if done != nil {
			done()
		}
	case Partition, OneWay:
		c.partition(targets, f.Kind == OneWay)
		done := c.noQuorum(targets, string(f.Kind)+" "+names(targets))
		time.Sleep(f.Hold) // the fault's drawn duration
		c.healNet()
		done()
	case Leave:
		c.leave(targets[0])
		time.Sleep(f.Hold) // the fault's drawn duration
		c.restart(targets[0], " (rejoin after a leave)")
	}
	time.Sleep(f.Gap) // the schedule's quiet time: liveness is checked in it
}

// finish stops the faults, the monitor and the load; every agent leaves
// gracefully (recorded as leaves); then it checks everything and returns
// the report.
func (c *cluster) finish(label string, seed uint64, schedule []Fault) Report {
	close(c.stop)
	c.wg.Wait()
	// Every agent leaves at once, as in a shutdown of the whole fleet.
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.getState() == "up" {
			wg.Add(1)
			go func() { defer wg.Done(); c.leave(n) }()
		}
	}
	wg.Wait()
	in := c.input()
	rep := Check(in)
	if c.only != "" {
		var keep []Violation
		for _, v := range rep.Violations {
			if strings.Contains(c.only, v.Prop) {
				keep = append(keep, v)
			}
		}
		rep.Violations = keep
	}
	c.summary(label, seed, in, rep)
	if len(rep.Violations) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %d violations (seed %d):\n", label, len(rep.Violations), seed)
		byProp := map[string]int{}
		for _, v := range rep.Violations {
			byProp[v.Prop]++
		}
		shown := map[string]int{}
		for _, v := range rep.Violations {
			if shown[v.Prop]++; shown[v.Prop] <= 8 {
				fmt.Fprintf(&b, "  %v\n", v)
			}
		}
		for p, k := range byProp {
			if k > 8 {
				fmt.Fprintf(&b, "  (%s) ... %d more: %s\n", p, k-8, Properties[p])
			}
		}
		if schedule != nil {
			b.WriteString(FormatSchedule(seed, schedule))
			fmt.Fprintf(&b, "replay: %s\n", c.replay)
		}
		c.t.Error(b.String())
	}
	return rep
}

func (c *cluster) input() Input {
	in := Input{Actions: c.actions(), Liveness: *flagLiveness, Minority: *flagMinority}
	if !c.opt.countless {
		in.Initial = c.opt.nodes
	}
	if c.recv != nil {
		in.Refused = c.recv.refusedActions()
	}
	for _, n := range c.nodes {
		recs, err := ReadActing(filepath.Join(c.dir, n.name, "acting.jsonl"))
		if err != nil {
			c.t.Error(err)
		}
		in.Acting = append(in.Acting, recs...)
	}
	c.mu.Lock()
	in.Samples = append([]Sample(nil), c.samples...)
	in.Leaves = append([]Window(nil), c.leaves...)
	in.Heals = append([]Heal(nil), c.heals...)
	in.Cuts = append([]Cut(nil), c.cuts...)
	c.mu.Unlock()
	return in
}

type summary struct {
	Label            string         `json:"label"`
	Seed             uint64         `json:"seed"`
	Provider         string         `json:"provider"`
	Nodes            int            `json:"nodes"`
	Seconds          float64        `json:"seconds"`
	Faults           map[Kind]int   `json:"faults"`
	Actions          int            `json:"actions"`
	Refused          int            `json:"refused"`
	Terms            int            `json:"terms"`
	HealToActingMaxS float64        `json:"heal_to_acting_max_s"`
	HealToActingP50S float64        `json:"heal_to_acting_p50_s"`
	HealsNoCoord     int            `json:"heals_without_coordinator"`
	MaxNoCoordS      float64        `json:"max_without_coordinator_s"`
	Violations       map[string]int `json:"violations"`
	ActingSource     string         `json:"acting_source"`
}

func (c *cluster) summary(label string, seed uint64, in Input, rep Report) {
	s := summary{Label: label, Seed: seed, Provider: c.opt.provider, Nodes: len(c.nodes), Seconds: time.Since(c.start).Seconds(),
		Faults: c.faults, Actions: len(in.Actions), Refused: len(in.Refused), Terms: rep.Terms,
		MaxNoCoordS: rep.MaxNoCoordinator.Seconds(), Violations: map[string]int{}, ActingSource: "/v1/leader samples"}
	if len(in.Acting) > 0 {
		s.ActingSource = "acting logs"
	}
	var ds []time.Duration
	for _, d := range rep.HealDelays {
		if d < 0 {
			s.HealsNoCoord++
			continue
		}
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) > 0 {
		s.HealToActingMaxS, s.HealToActingP50S = ds[len(ds)-1].Seconds(), ds[len(ds)/2].Seconds()
	}
	for _, v := range rep.Violations {
		s.Violations[v.Prop]++
	}
	nf := 0
	for _, k := range c.faults {
		nf += k
	}
	c.t.Logf("SUMMARY %s seed %d: %d nodes, %s, %.0f s; %d faults %v; %d actions reached the resource, %d refused by the receiver; %d terms acted; heal->acting p50 %.2f s max %.2f s, %d heals with no coordinator within %v; longest without an acting coordinator %.1f s; (a) from %s; violations %v",
		label, seed, s.Nodes, s.Provider, s.Seconds, nf, s.Faults, s.Actions, s.Refused, s.Terms, s.HealToActingP50S, s.HealToActingMaxS,
		s.HealsNoCoord, *flagLiveness, s.MaxNoCoordS, s.ActingSource, s.Violations)
	var ivs []string
	for _, iv := range rep.Intervals {
		ivs = append(ivs, iv.String())
	}
	if len(ivs) > 40 {
		ivs = append(ivs[:20], append([]string{"..."}, ivs[len(ivs)-20:]...)...)
	}
	c.t.Logf("acting intervals (%s):\n  %s", s.ActingSource, strings.Join(ivs, "\n  "))
	if *flagReport != "" {
		b, _ := json.Marshal(s)
		f, err := os.OpenFile(*flagReport, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			f.Write(append(b, '\n'))
			f.Close()
		}
	}
}

func (c *cluster) teardown() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		c.wg.Wait()
	}
	for _, n := range c.nodes {
		n.a.Kill()
	}
	if c.t.Failed() {
		for _, n := range c.nodes {
			c.t.Logf("--- %s, last lines of %s:\n%s", n.name, n.a.Log, n.a.Tail(25))
		}
		if *flagKeep != "" {
			dst := filepath.Join(*flagKeep, strings.ReplaceAll(c.t.Name(), "/", "_")+"-"+time.Now().UTC().Format("150405"))
			if err := os.CopyFS(dst, os.DirFS(c.dir)); err != nil {
				c.t.Logf("keep the logs: %v", err)
			} else {
				c.t.Logf("logs kept in %s", dst)
			}
		}
		if b, err := os.ReadFile(c.shared); err == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			c.t.Logf("--- shared log (%s), last lines:\n%s", c.shared, strings.Join(lines, "\n"))
		}
	}
}

func names(ns []*node) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func without(ns []*node, drop ...*node) []*node {
	var out []*node
	for _, n := range ns {
		if !contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

func contains(ns []*node, n *node) bool {
	for _, x := range ns {
		if x == n {
			return true
		}
	}
	return false
}

// receiver is the webhook provider's resource: it checks the signature,
// refuses a term below the highest it accepted (409), drops a repeated
// delivery, and appends what it accepts to the shared log.
type receiver struct {
	t       *testing.T
	url     string
	secret  string
	shared  string
	mu      sync.Mutex
	maxTerm uint64
	count   int // the resource's count
	seen    map[string]bool
	refused []Action
}

func newReceiver(t *testing.T, ip, shared string, initial int) *receiver {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, url: "http://" + ln.Addr().String() + "/scale", secret: randHex(16), shared: shared, seen: map[string]bool{}, count: initial}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet && req.URL.Path == "/current" {
		if !providers.VerifySignature([]byte(r.secret), nil, req.Header.Get(providers.SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		n := r.count
		r.mu.Unlock()
		fmt.Fprintf(w, `{"current": %d}`, n)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<16))
	if err != nil || !providers.VerifySignature([]byte(r.secret), body, req.Header.Get(providers.SignatureHeader)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p providers.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a := Action{Holder: p.Holder, Node: p.Node, Term: p.Term, From: p.Current, To: p.Desired, AtNS: time.Now().UnixNano(),
		Decided: p.Time.UTC().Format(time.RFC3339Nano), Via: "webhook"}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.Term < r.maxTerm {
		r.refused = append(r.refused, a)
		http.Error(w, fmt.Sprintf("term %d is below %d", p.Term, r.maxTerm), http.StatusConflict)
		return
	}
	if d := req.Header.Get(providers.DeliveryHeader); r.seen[d] {
		w.WriteHeader(http.StatusOK) // a retry of what was applied
		return
	} else {
		r.seen[d] = true
	}
	r.maxTerm = p.Term
	r.count = p.Desired
	line, _ := json.Marshal(a)
	f, err := os.OpenFile(r.shared, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		f.Close()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) refusedActions() []Action {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Action(nil), r.refused...)
}
