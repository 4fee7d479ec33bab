// Package largen runs a large mesh in one process: N real stacks (serf,
// memberlist and, for Shoal, its load gossip) on an in-memory network
// (mesh/memnet) with a latency per link, loss, and some hosts whose packets
// wait (short of CPU), and measures what a fleet would see: join
// convergence, failure detection, false failures, load age, bytes and
// packets per node, CPU and memory per node.
//
// The same run on stock serf (serf and memberlist with their LAN defaults,
// no Shoal gossip) gives the baseline: Run with Stack "serf".
//
//	(cd tools && go run ./cmd/shoal-scenario large -n 1000)
//
// Every node runs real timers on one machine, so CPU per node is what the
// process spent over the idle window divided by N, and a machine that is
// short of CPU shows as late timers for every node at once: read the
// figures with the run's load average.
package largen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/mesh/memnet"
	"github.com/shoalmesh/shoal/metrics"
)

// Stacks.
const (
	StackShoal = "shoal"
	StackSerf  = "serf"
)

// Config describes a run.
type Config struct {
	// N is the number of nodes; Stack "shoal" (the mesh package, lan
	// profile) or "serf" (stock serf and memberlist, LAN defaults).
	N     int
	Stack string
	Seed  uint64
	// Each directed link's one-way latency is drawn once, uniformly from
	// [LatencyMin, LatencyMax]; each packet adds up to Jitter and is lost
	// with probability Loss.
	LatencyMin, LatencyMax, Jitter time.Duration
	Loss                           float64
	// Starved is the share of hosts whose packets, in and out, wait up to
	// StarvedJitter more (a process short of CPU).
	Starved       float64
	StarvedJitter time.Duration
	// ChangeEvery is the mean time between a node's load moving past a
	// bucket (Shoal only).
	ChangeEvery time.Duration
	// ConfirmInterval as in mesh.Config (0: its default).
	ConfirmInterval time.Duration
	// JoinBatch nodes start and join at once.
	JoinBatch int
	// Settle is the pause after convergence; Idle the measurement window.
	Settle, Idle time.Duration
	// KillTrials and JoinTrials: nodes killed (shut down without leaving)
	// and nodes added after the idle window, one at a time.
	KillTrials, JoinTrials int
	// Timeout bounds every wait.
	Timeout time.Duration
	// Logf, if set, receives progress lines.
	Logf func(format string, a ...any)
}

// Defaults returns the configuration of `shoal-scenario large`.
func Defaults() Config {
	return Config{N: 1000, Stack: StackShoal, Seed: 1, LatencyMin: time.Millisecond, LatencyMax: 50 * time.Millisecond,
		Jitter: time.Millisecond, Loss: 0.01, Starved: 0.02, StarvedJitter: 300 * time.Millisecond,
		ChangeEvery: 10 * time.Second, JoinBatch: 50, Settle: 20 * time.Second, Idle: 60 * time.Second,
		KillTrials: 2, JoinTrials: 2, Timeout: 5 * time.Minute}
}

// Result holds the figures of a run.
type Result struct {
	Stack string `json:"stack"`
	N     int    `json:"n"`
	// Converged: from the first start until every node lists all N alive.
	Converged time.Duration `json:"converged_ns"`
	// Join: per trial, until every node lists the new one alive.
	Join []time.Duration `json:"join_ns"`
	// DetectFirst/DetectAll: per kill, until the first and until every
	// survivor marks it failed.
	DetectFirst []time.Duration `json:"detect_first_ns"`
	DetectAll   []time.Duration `json:"detect_all_ns"`
	// FalseFailures counts member-failed events, over the whole run, about
	// members that were not killed (per observer), FalseMembers those
	// members; FalseIdle the events during the idle window.
	FalseFailures, FalseMembers, FalseIdle int
	// Over the idle window, per node and second: everything sent (packets
	// with 28 bytes of IP/UDP header each, and stream bytes), packets,
	// Shoal's load gossip (packets with headers), stream (push/pull) bytes.
	Idle                   time.Duration `json:"idle_ns"`
	BytesOut, PacketsOut   float64
	LoadBytes, LoadPackets float64
	StreamBytes            float64
	Wants, Answers         float64
	// CPUPercent is the process's CPU over the idle window, per node, in
	// % of one core; HeapMB and SysMB the Go heap in use (after a GC) and
	// the runtime's memory from the OS, per node.
	CPUPercent    float64
	HeapMB, SysMB float64
	Goroutines    int
	// Load age over (observer, member) pairs sampled during the idle
	// window (Shoal only); AgeMissing pairs without load.
	AgeP50, AgeP99, AgeMax time.Duration
	AgePairs, AgeMissing   int
	// Warnings counts the stack's own warnings and errors by message.
	Warnings map[string]int
	// LoadAvg is /proc/loadavg at the start and the end.
	LoadAvg [2]string
}

type node struct {
	name string
	ip   string
	m    *mesh.Mesh
	s    *serf.Serf
	st   *counts // serf stack
	dead atomic.Bool
}

// counts is the serf stack's traffic through its transport.
type counts struct {
	pkts, bytes, streams atomic.Uint64
}

type countingTransport struct {
	*memnet.Endpoint
	c *counts
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.c.pkts.Add(1)
	t.c.bytes.Add(uint64(len(b)))
	return t.Endpoint.WriteToAddress(b, a)
}

type streamCounter struct {
	net.Conn
	c *counts
}

func (s *streamCounter) Write(b []byte) (int, error) {
	n, err := s.Conn.Write(b)
	s.c.streams.Add(uint64(n))
	return n, err
}

// tracker records, from every node's events, when it marked a member
// failed, and the failures of members that were not killed.
type tracker struct {
	mu      sync.Mutex
	failed  map[string]map[int]time.Time // member -> observer -> when first marked failed
	killed  map[string]bool
	idle    bool
	falseEv int
	falseM  map[string]bool
	falseIn int
}

func newTracker() *tracker {
	return &tracker{failed: map[string]map[int]time.Time{}, killed: map[string]bool{}, falseM: map[string]bool{}}
}

func (t *tracker) event(obs int, typ, member string, at time.Time) {
	if typ != "member-failed" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed[member] == nil {
		t.failed[member] = map[int]time.Time{}
	}
	if _, ok := t.failed[member][obs]; !ok {
		t.failed[member][obs] = at
	}
	if !t.killed[member] {
		t.falseEv++
		t.falseM[member] = true
		if t.idle {
			t.falseIn++
		}
	}
}

// Run runs the scenario.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.N < 2 {
		return nil, fmt.Errorf("largen: %d nodes, need at least 2", cfg.N)
	}
	if cfg.Stack != StackShoal && cfg.Stack != StackSerf {
		return nil, fmt.Errorf("largen: stack %q: use %s or %s", cfg.Stack, StackShoal, StackSerf)
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	res := &Result{Stack: cfg.Stack, N: cfg.N, Warnings: map[string]int{}}
	res.LoadAvg[0] = loadAvg()
	r := &run{cfg: cfg, logf: logf, res: res, nw: memnet.New(cfg.Seed), key: []byte("largen-gossip-key-32-bytes-long!"),
		tr: newTracker(), rng: rand.New(rand.NewPCG(cfg.Seed, 77)), warn: &warnCounter{m: map[string]int{}}}
	r.links()
	defer r.shutdown()
	if err := r.start(ctx); err != nil {
		return res, err
	}
	if err := r.measureIdle(ctx); err != nil {
		return res, err
	}
	if err := r.kills(ctx); err != nil {
		return res, err
	}
	if err := r.joins(ctx); err != nil {
		return res, err
	}
	r.tr.mu.Lock()
	res.FalseFailures, res.FalseMembers, res.FalseIdle = r.tr.falseEv, len(r.tr.falseM), r.tr.falseIn
	r.tr.mu.Unlock()
	res.Warnings = r.warn.snapshot()
	res.LoadAvg[1] = loadAvg()
	return res, nil
}

type run struct {
	cfg   Config
	logf  func(string, ...any)
	res   *Result
	nw    *memnet.Network
	key   []byte
	tr    *tracker
	rng   *rand.Rand
	warn  *warnCounter
	mu    sync.Mutex
	nodes []*node
}

func ipOf(i int) string {
	i++
	return fmt.Sprintf("10.%d.%d.%d", 64+i>>16, (i>>8)&255, i&255)
}

// links sets every link's latency from the seed, and marks the starved
// hosts.
func (r *run) links() {
	cfg := r.cfg
	starved := map[netip.Addr]bool{}
	for i := 0; i < cfg.N+cfg.JoinTrials; i++ {
		if r.rng.Float64() < cfg.Starved {
			starved[netip.MustParseAddr(ipOf(i))] = true
		}
	}
	r.nw.SetLinkFunc(func(from, to netip.Addr) memnet.Link {
		h := fnv.New64a()
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], cfg.Seed)
		h.Write(b[:])
		h.Write(from.AsSlice())
		h.Write(to.AsSlice())
		l := memnet.Link{Latency: cfg.LatencyMin, Jitter: cfg.Jitter, Loss: cfg.Loss}
		if span := cfg.LatencyMax - cfg.LatencyMin; span > 0 {
			l.Latency += time.Duration(h.Sum64() % uint64(span+1))
		}
		if starved[from] || starved[to] {
			l.Jitter += cfg.StarvedJitter
		}
		return l
	})
}

// warnCounter is a slog handler that counts warnings and errors by
// message (the stack's memberlist and serf logs come through the mesh's
// log bridge, or through a log.Logger for the serf stack).
type warnCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (w *warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnCounter) Handle(_ context.Context, rec slog.Record) error {
	w.add(rec.Message)
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }

func (w *warnCounter) add(msg string) {
	// Keep the message, not the names and addresses in it.
	if i := strings.IndexAny(msg, "0123456789"); i > 0 {
		msg = msg[:i]
	}
	if len(msg) > 80 {
		msg = msg[:80]
	}
	w.mu.Lock()
	w.m[strings.TrimSpace(msg)]++
	w.mu.Unlock()
}

// Write takes memberlist's and serf's log lines (serf stack).
func (w *warnCounter) Write(p []byte) (int, error) {
	s := string(p)
	if strings.Contains(s, "[WARN]") || strings.Contains(s, "[ERR]") {
		if i := strings.Index(s, "] "); i >= 0 {
			s = s[i+2:]
		}
		w.add(s)
	}
	return len(p), nil
}

func (w *warnCounter) snapshot() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.m {
		out[k] = v
	}
	return out
}

// newNode starts node i (not joined).
func (r *run) newNode(i int) (*node, error) {
	n := &node{name: fmt.Sprintf("n%05d", i), ip: ipOf(i)}
	if r.cfg.Stack == StackShoal {
		rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)))
		var cpu atomic.Int64
		cpu.Store(int64(rng.IntN(90)))
		every := r.cfg.ChangeEvery
		var mu sync.Mutex
		m, err := mesh.New(mesh.Config{
			NodeName: n.name, BindAddr: n.ip, BindPort: 7946, Profile: mesh.ProfileLAN,
			Transport: mesh.MemoryTransport(r.nw), Keys: [][]byte{r.key}, Label: "largen",
			ConfirmInterval: r.cfg.ConfirmInterval,
			Logger:          slog.New(r.warn),
			Load: func() (metrics.Load, bool) {
				// Called once a round (100 ms): a move past a bucket every
				// ChangeEvery on average.
				mu.Lock()
				if every > 0 && rng.Float64() < float64(100*time.Millisecond)/float64(every) {
					cpu.Store(int64(rng.IntN(90)))
				}
				mu.Unlock()
				return metrics.Load{CPUPercent: float64(cpu.Load()), MemPercent: 50, Cores: 2, MemAvailable: 4 << 30}, true
			},
			OnEvent: func(e mesh.Event) { r.tr.event(i, e.Type, e.Member, e.Time) },
		})
		if err != nil {
			return nil, err
		}
		n.m = m
		return n, nil
	}
	n.st = &counts{}
	ep, err := r.nw.Listen(n.ip+":7946", memnet.Options{Conn: func(c net.Conn) net.Conn { return &streamCounter{Conn: c, c: n.st} }})
	if err != nil {
		return nil, err
	}
	sc := serf.DefaultConfig()
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = n.name, n.ip, 7946
	mc.Transport = &countingTransport{Endpoint: ep, c: n.st}
	mc.Label = "largen"
	kr, err := memberlist.NewKeyring([][]byte{r.key}, r.key)
	if err != nil {
		return nil, err
	}
	mc.Keyring = kr
	lg := log.New(r.warn, "", 0)
	mc.Logger = lg
	sc.Logger = lg
	sc.MemberlistConfig = mc
	sc.NodeName = n.name
	ev := make(chan serf.Event, 4096)
	sc.EventCh = ev
	s, err := serf.Create(sc)
	if err != nil {
		ep.Shutdown()
		return nil, err
	}
	n.s = s
	go func() {
		for e := range ev {
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			now := time.Now()
			for _, mem := range me.Members {
				r.tr.event(i, me.Type.String(), mem.Name, now)
			}
		}
	}()
	return n, nil
}

func (n *node) join(seeds []string) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var k int
		if n.m != nil {
			k, err = n.m.Join(seeds)
		} else {
			k, err = n.s.Join(seeds, true)
		}
		if k > 0 {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond) // back off between join attempts
	}
	return fmt.Errorf("%s: join %v: %w", n.name, seeds, err)
}

func (n *node) stop() {
	if n.dead.Swap(true) {
		return
	}
	if n.m != nil {
		n.m.Shutdown()
	} else {
		n.s.Shutdown()
	}
}

func (r *run) shutdown() {
	r.mu.Lock()
	nodes := slices.Clone(r.nodes)
	r.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, n := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			n.stop()
			<-sem
		}()
	}
	wg.Wait()
}

// waitFor polls cond every 250 ms until it holds, ctx ends or the timeout
// passes; it logs cond's answer every 10 s.
func (r *run) waitFor(ctx context.Context, what string, cond func() error) (time.Duration, error) {
	start := time.Now()
	said := start
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > r.cfg.Timeout {
			return 0, fmt.Errorf("%s: not within %v: %w", what, r.cfg.Timeout, err)
		}
		if time.Since(said) > 10*time.Second {
			said = time.Now()
			r.logf("%s: waiting %v for %s: %v", r.cfg.Stack, time.Since(start).Round(time.Second), what, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond): // the poll interval
		}
	}
}

// alive returns the members n lists alive, itself included: its View's
// for Shoal (what a user of the mesh reads), serf's member list for serf.
func (n *node) alive() map[string]bool {
	out := map[string]bool{}
	if n.m != nil {
		for _, mem := range n.m.View().Members() {
			if mem.Status == mesh.StatusAlive {
				out[mem.Name] = true
			}
		}
		return out
	}
	for _, mem := range n.s.Members() {
		if mem.Status == serf.StatusAlive {
			out[mem.Name] = true
		}
	}
	return out
}

// behind counts the live nodes that do not list every live node alive,
// and names the first one's missing members.
func (r *run) behind() error { return r.behindOn("") }

// behindOn is behind about one member (all live members for "").
func (r *run) behindOn(only string) error {
	r.mu.Lock()
	nodes := slices.Clone(r.nodes)
	r.mu.Unlock()
	live := map[string]bool{}
	for _, n := range nodes {
		if !n.dead.Load() && (only == "" || n.name == only) {
			live[n.name] = true
		}
	}
	behind, example := 0, ""
	for _, n := range nodes {
		if n.dead.Load() {
			continue
		}
		a := n.alive()
		var missing []string
		for name := range live {
			if !a[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			behind++
			if example == "" {
				slices.Sort(missing)
				example = fmt.Sprintf("%s lacks %d: %v", n.name, len(missing), missing[:min(len(missing), 5)])
			}
		}
	}
	if behind > 0 {
		return fmt.Errorf("%d nodes do not list every live node alive (%s)", behind, example)
	}
	return nil
}

func (r *run) seeds() []string {
	var s []string
	for i := 0; i < min(3, len(r.nodes)); i++ {
		s = append(s, r.nodes[i].ip+":7946")
	}
	return s
}

// start starts the N nodes, JoinBatch at a time, and waits until every
// node lists all N alive.
func (r *run) start(ctx context.Context) error {
	t0 := time.Now()
	for i := 0; i < r.cfg.N; {
		k := r.cfg.JoinBatch
		if i < 3 {
			k = 1 // the seeds first, one by one
		}
		k = min(k, r.cfg.N-i)
		var wg sync.WaitGroup
		errs := make([]error, k)
		batch := make([]*node, k)
		for b := 0; b < k; b++ {
			n, err := r.newNode(i + b)
			if err != nil {
				return err
			}
			batch[b] = n
		}
		r.mu.Lock()
		r.nodes = append(r.nodes, batch...)
		seeds := r.seeds()
		r.mu.Unlock()
		for b, n := range batch {
			if i+b == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[b] = n.join(seeds)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		i += k
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if i%(10*r.cfg.JoinBatch) < k {
			r.logf("%s: %d of %d started (%v)", r.cfg.Stack, i, r.cfg.N, time.Since(t0).Round(time.Second))
		}
	}
	_, err := r.waitFor(ctx, "every node lists all alive", r.behind)
	if err != nil {
		return err
	}
	r.res.Converged = time.Since(t0)
	r.logf("%s: %d nodes converged in %v", r.cfg.Stack, r.cfg.N, r.res.Converged.Round(time.Millisecond))
	return nil
}

type snap struct {
	pkts, bytes, streams, lpkts, lbytes, wants, answers uint64
}

func (r *run) traffic() snap {
	var s snap
	for _, n := range r.nodes {
		if n.dead.Load() {
			continue
		}
		if n.m != nil {
			st := n.m.Stats()
			s.pkts += st.PacketsOut.Load()
			s.bytes += st.BytesOut.Load() - st.StreamBytesOut.Load()
			s.streams += st.StreamBytesOut.Load()
			s.lpkts += st.ShoalPacketsOut.Load()
			s.lbytes += st.ShoalBytesOut.Load()
			s.wants += st.WantsSent.Load()
			s.answers += st.WantsAnswered.Load()
		} else {
			s.pkts += n.st.pkts.Load()
			s.bytes += n.st.bytes.Load()
			s.streams += n.st.streams.Load()
		}
	}
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureIdle settles, then measures traffic, CPU and load ages over the
// idle window, and memory at its end.
func (r *run) measureIdle(ctx context.Context) error {
	r.logf("%s: settling %v", r.cfg.Stack, r.cfg.Settle)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.cfg.Settle): // the settle pause itself
	}
	r.tr.mu.Lock()
	r.tr.idle = true
	r.tr.mu.Unlock()
	s0, c0, t0 := r.traffic(), cpuTime(), time.Now()
	var ages []time.Duration
	missing := 0
	end := t0.Add(r.cfg.Idle)
	r.logf("%s: idle window %v", r.cfg.Stack, r.cfg.Idle)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second): // the sampling interval of the load ages
		}
		if r.cfg.Stack != StackShoal {
			continue
		}
		now := time.Now()
		for k := 0; k < 20; k++ {
			obs := r.nodes[r.rng.IntN(len(r.nodes))]
			for _, mem := range obs.m.View().Members() {
				if mem.Self || mem.Status != mesh.StatusAlive {
					continue
				}
				if mem.Load == nil {
					missing++
					continue
				}
				ages = append(ages, mem.LoadAge(now))
			}
		}
	}
	s1, c1, el := r.traffic(), cpuTime(), time.Since(t0)
	r.tr.mu.Lock()
	r.tr.idle = false
	r.tr.mu.Unlock()
	per := func(a, b uint64) float64 { return float64(b-a) / float64(r.cfg.N) / el.Seconds() }
	res := r.res
	res.Idle = el
	res.PacketsOut = per(s0.pkts, s1.pkts)
	res.BytesOut = per(s0.bytes, s1.bytes) + 28*res.PacketsOut + per(s0.streams, s1.streams)
	res.StreamBytes = per(s0.streams, s1.streams)
	res.LoadPackets = per(s0.lpkts, s1.lpkts)
	res.LoadBytes = per(s0.lbytes, s1.lbytes) + 28*res.LoadPackets
	res.Wants, res.Answers = per(s0.wants, s1.wants), per(s0.answers, s1.answers)
	res.CPUPercent = 100 * (c1 - c0).Seconds() / el.Seconds() / float64(r.cfg.N)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapMB = float64(ms.HeapInuse) / 1e6 / float64(r.cfg.N)
	res.SysMB = float64(ms.Sys) / 1e6 / float64(r.cfg.N)
	res.Goroutines = runtime.NumGoroutine()
	if len(ages) > 0 {
		sort.Slice(ages, func(i, j int) bool { return ages[i] < ages[j] })
		res.AgeP50, res.AgeP99, res.AgeMax = ages[len(ages)/2], ages[len(ages)*99/100], ages[len(ages)-1]
	}
	res.AgePairs, res.AgeMissing = len(ages), missing
	r.logf("%s: %.0f B/s/node (load gossip %.0f), %.1f packets/s/node, CPU %.3f%% of a core/node, heap %.2f MB/node, age p50/p99/max %v/%v/%v",
		r.cfg.Stack, res.BytesOut, res.LoadBytes, res.PacketsOut, res.CPUPercent, res.HeapMB, res.AgeP50, res.AgeP99, res.AgeMax)
	return nil
}

// kills shuts nodes down one at a time (no leave) and times their
// detection.
func (r *run) kills(ctx context.Context) error {
	for k := 0; k < r.cfg.KillTrials; k++ {
		victim := r.nodes[3+r.rng.IntN(len(r.nodes)-3)]
		for victim.dead.Load() {
			victim = r.nodes[3+r.rng.IntN(len(r.nodes)-3)]
		}
		r.tr.mu.Lock()
		r.tr.killed[victim.name] = true
		delete(r.tr.failed, victim.name) // a false failure before the kill is counted apart
		r.tr.mu.Unlock()
		t0 := time.Now()
		victim.stop()
		_, err := r.waitFor(ctx, "every survivor marks "+victim.name+" failed", func() error {
			r.tr.mu.Lock()
			defer r.tr.mu.Unlock()
			got := 0
			want := 0
			for i, n := range r.nodes {
				if !n.dead.Load() {
					want++
					if _, ok := r.tr.failed[victim.name][i]; ok {
						got++
					}
				}
			}
			if got < want {
				return fmt.Errorf("%d of %d", got, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.tr.mu.Lock()
		var first, last time.Time
		for i, at := range r.tr.failed[victim.name] {
			if r.nodes[i].dead.Load() {
				continue
			}
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
		r.tr.mu.Unlock()
		r.res.DetectFirst = append(r.res.DetectFirst, first.Sub(t0))
		r.res.DetectAll = append(r.res.DetectAll, last.Sub(t0))
		r.logf("%s: kill %d (%s): first marked failed after %v, all after %v", r.cfg.Stack, k+1, victim.name, first.Sub(t0).Round(time.Millisecond), last.Sub(t0).Round(time.Millisecond))
	}
	return nil
}

// joins adds nodes one at a time and times until all list them alive.
func (r *run) joins(ctx context.Context) error {
	for k := 0; k < r.cfg.JoinTrials; k++ {
		i := len(r.nodes)
		t0 := time.Now()
		n, err := r.newNode(i)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.nodes = append(r.nodes, n)
		seeds := r.seeds()
		r.mu.Unlock()
		if err := n.join(seeds); err != nil {
			return err
		}
		d, err := r.waitFor(ctx, "every node lists "+n.name+" alive", func() error { return r.behindOn(n.name) })
		if err != nil {
			return err
		}
		d = time.Since(t0)
		r.res.Join = append(r.res.Join, d)
		r.logf("%s: join %d (%s): all list it alive after %v", r.cfg.Stack, k+1, n.name, d.Round(time.Millisecond))
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// ModelConfig is the dissemination model (mesh.SimulateDissemination) on
// cfg's links, loss, starved hosts and load changes, with the mesh's lan
// timings and encryption, over 40 s after a 20 s warm-up: what the harness
// should measure for Shoal's load gossip in its idle window.
func ModelConfig(cfg Config) mesh.SimConfig {
	rate := 0.0
	if cfg.ChangeEvery > 0 {
		rate = 1 / cfg.ChangeEvery.Seconds()
	}
	return mesh.SimConfig{Nodes: cfg.N, GossipInterval: 100 * time.Millisecond, ConfirmInterval: cfg.ConfirmInterval,
		PacketBudget: 1400, Loss: cfg.Loss, LatencyMin: cfg.LatencyMin, LatencyMax: cfg.LatencyMax, Jitter: cfg.Jitter,
		Starved: cfg.Starved, StarvedDelay: cfg.StarvedJitter, Duration: 60 * time.Second, Warmup: 20 * time.Second,
		Encrypted: true, Seed: cfg.Seed, ChangeRate: rate}
}
