package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/tools/internal/procs"
)

// Config sets up the mesh scenario.
type Config struct {
	N          int
	Idle       time.Duration
	Settle     time.Duration
	Out        string
	Trials     int
	LoadRounds int
	LoadWindow time.Duration
	Poll       time.Duration
	Timeout    time.Duration
	ShoalNet   string
	SerfNet    string
	// P2PNet is the p2p agents' network in the p2p scenario (ShoalNet is
	// then the lan agents').
	P2PNet     string
	ShoalBin   string
	ShoalRev   string
	SerfBin    string
	NoIptables bool
	// Command is how this run was invoked, for the report.
	Command string
	Log     func(format string, a ...any)
}

// DefaultConfig is the configuration of `shoal-scenario mesh`.
func DefaultConfig() Config {
	return Config{N: 30, Idle: 20 * time.Second, Settle: 5 * time.Second, Trials: 3,
		LoadRounds: 20, LoadWindow: 10 * time.Second, Poll: 50 * time.Millisecond, Timeout: 90 * time.Second,
		ShoalNet: "127.0.10", SerfNet: "127.0.20"}
}

func (c *Config) check() error {
	if c.N < 2 {
		return fmt.Errorf("-n %d: need at least 2 agents (a seed and one to kill)", c.N)
	}
	if c.Trials < 1 {
		return fmt.Errorf("-trials %d: need at least 1", c.Trials)
	}
	if c.N+c.Trials > 250 {
		return fmt.Errorf("-n %d with -trials %d: more than 250 addresses in a /24", c.N, c.Trials)
	}
	if c.Trials > c.N-1 {
		return fmt.Errorf("-trials %d: at most n-1 (%d) non-seed agents to kill", c.Trials, c.N-1)
	}
	if c.Idle <= 0 || c.LoadWindow <= 0 || c.LoadRounds < 1 || c.Poll <= 0 || c.Timeout <= 0 {
		return errors.New("-idle, -load-window, -poll and -timeout must be positive, -load-rounds at least 1")
	}
	if err := checkNets("-shoal-net", c.ShoalNet, "-serf-net", c.SerfNet); err != nil {
		return err
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	return nil
}

// checkNets checks the two /24s the agents of a run live in: three octets
// of 127.0.0.0/8 each, not the same.
func checkNets(flagA, a, flagB, b string) error {
	for _, n := range []string{a, b} {
		if p := strings.Split(n, "."); len(p) != 3 || p[0] != "127" {
			return fmt.Errorf("network %q: want three octets of 127.0.0.0/8, like 127.0.10", n)
		}
	}
	if a == b {
		return fmt.Errorf("%s and %s must differ", flagA, flagB)
	}
	return nil
}

// ImplResult is what was measured for one implementation.
type ImplResult struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Binary  string `json:"binary"`
	Agents  int    `json:"agents"`
	// StartToConverged is the time from starting the seed until all N agents list all N alive.
	StartToConvergedS float64 `json:"start_to_converged_seconds"`

	RSSBytes    []float64 `json:"rss_bytes"`    // VmRSS per agent at the end of the idle window
	HWMBytes    []float64 `json:"hwm_bytes"`    // VmHWM (peak RSS) per agent
	IdleCPUPct  []float64 `json:"idle_cpu_pct"` // % of one core per agent over the idle window
	RSS         stats     `json:"rss"`          // bytes
	HWM         stats     `json:"hwm"`          // bytes
	IdleCPU     stats     `json:"idle_cpu"`     // % of one core
	IdleSeconds float64   `json:"idle_seconds"` // measured length of the idle window

	// Gossip bytes per second per node over the idle window, from iptables
	// (IP bytes, headers included); NaN when not measured.
	GossipBps     float64 `json:"gossip_bytes_per_sec_per_node"`
	GossipPps     float64 `json:"gossip_packets_per_sec_per_node"`
	GossipBpsFrom string  `json:"gossip_bytes_method"`

	Joins      []Trial `json:"joins"`
	Detections []Trial `json:"detections"`

	// Shoal only: the agents' own counters (payload bytes) and the load age.
	AgentBytesOutPerSec     float64  `json:"agent_bytes_out_per_sec_per_node,omitempty"`
	AgentLoadBytesOutPerSec float64  `json:"agent_load_bytes_out_per_sec_per_node,omitempty"`
	LoadAge                 *LoadAge `json:"load_age,omitempty"`
	Dropped                 uint64   `json:"dropped_packets,omitempty"`
}

// Trial is one convergence or failure-detection measurement.
type Trial struct {
	Node string `json:"node"`
	// AllSeconds is when the last observer saw it; FirstSeconds the first.
	AllSeconds   float64 `json:"all_seconds"`
	FirstSeconds float64 `json:"first_seconds"`
	// SelfSeconds (joins only) is when the new agent itself listed the seed alive.
	SelfSeconds float64 `json:"self_seconds,omitempty"`
	Observers   int     `json:"observers"`
}

// LoadAge summarises load_age_seconds over (observer, member) pairs.
type LoadAge struct {
	Rounds  int `json:"rounds"`
	Pairs   int `json:"pairs"`
	Missing int `json:"missing"` // pairs of alive members without any load yet
	// Unanswered is how many (observer, round) samples got no answer from
	// the observer's API in time (not counted in Pairs).
	Unanswered int     `json:"unanswered,omitempty"`
	P50        float64 `json:"p50_seconds"`
	P99        float64 `json:"p99_seconds"`
	Max        float64 `json:"max_seconds"`
	// SelfP50 is the age of each agent's own load as it reports it: how old a
	// sample is when it is published, before any gossip.
	SelfP50 float64 `json:"self_p50_seconds"`
}

// Machine describes where the run happened.
type Machine struct {
	NProc      int     `json:"nproc"`
	MemTotal   string  `json:"mem_total"`
	CPU        string  `json:"cpu_model"`
	Kernel     string  `json:"kernel"`
	GoVersion  string  `json:"go_version"`
	LoadAvg    string  `json:"loadavg_at_start"`
	LoadAvgEnd string  `json:"loadavg_at_end"`
	ClockTick  float64 `json:"clock_ticks_per_sec"`
}

// Result is one run of the mesh scenario.
type Result struct {
	Config  Config      `json:"-"`
	Command string      `json:"command"`
	Started time.Time   `json:"started"`
	Elapsed float64     `json:"elapsed_seconds"`
	N       int         `json:"n"`
	Machine Machine     `json:"machine"`
	Method  string      `json:"bytes_method"`
	Shoal   *ImplResult `json:"shoal"`
	Serf    *ImplResult `json:"serf"`
	Notes   []string    `json:"notes"`
}

// RunMesh runs the mesh scenario. Every process it starts is killed, the
// iptables chain removed and the temporary directory deleted before it returns.
func RunMesh(ctx context.Context, cfg Config) (res *Result, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	logf := cfg.Log
	res = &Result{Config: cfg, Command: cfg.Command, Started: time.Now(), N: cfg.N}
	res.Machine = machine()
	root, err := procs.RepoRoot()
	if err != nil {
		return nil, err
	}

	// Binaries.
	shoalBin, shoalRev, err := shoalBinary(ctx, root, cfg.ShoalBin, cfg.ShoalRev, logf)
	if err != nil {
		return nil, err
	}
	serfVer, err := serfVersion(ctx, root)
	if err != nil {
		return nil, err
	}
	serfBin := cfg.SerfBin
	if serfBin == "" {
		if serfBin, err = buildSerf(ctx, root, serfVer, logf); err != nil {
			return nil, err
		}
	}
	res.Shoal = &ImplResult{Name: "shoal", Binary: shoalBin, Agents: cfg.N, Version: binVersion(shoalBin, "version") + shoalRev}
	res.Serf = &ImplResult{Name: "serf", Binary: serfBin, Agents: cfg.N, Version: "module " + serfVer + " (reports " + binVersion(serfBin, "version") + ")"}

	ps, err := newProcSet("shoal-scenario-")
	if err != nil {
		return nil, err
	}
	var ipt *iptAccounting
	defer func() {
		if cerr := ps.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if terr := ipt.teardown(); terr != nil {
			err = errors.Join(err, terr)
		}
		if res != nil { // nil when an error returned early
			res.Machine.LoadAvgEnd = loadavg()
			res.Elapsed = time.Since(res.Started).Seconds()
		}
	}()

	// Gossip byte accounting.
	nets := map[string]string{"shoal": cfg.ShoalNet, "serf": cfg.SerfNet}
	if cfg.NoIptables {
		res.Method = "agent counters (iptables disabled by -no-iptables)"
	} else if os.Geteuid() != 0 {
		res.Method = "agent counters (iptables needs root)"
	} else {
		chain := "SHOALSCEN-" + strconv.Itoa(os.Getpid())
		if ipt, err = setupIptables(ctx, chain, nets); err != nil {
			res.Method = "agent counters (iptables not usable: " + err.Error() + ")"
			logf("iptables not usable, falling back to Shoal's own counters: %v", err)
			ipt, err = nil, nil
		} else {
			res.Method = "iptables accounting on lo (chain " + chain + ")"
		}
	}
	logf("gossip bytes: %s", res.Method)

	shoal := &shoalImpl{bin: shoalBin, net: cfg.ShoalNet, poll: cfg.Poll}
	serf := &serfImpl{bin: serfBin, net: cfg.SerfNet, poll: cfg.Poll}

	// Start both meshes, one after the other, each waited for until it has
	// converged (so that one mesh's start-up does not count against the
	// other's convergence).
	var meshes [2][]*agentProc
	for i, im := range []impl{shoal, serf} {
		ir := []*ImplResult{res.Shoal, res.Serf}[i]
		agents, secs, err := startConverged(ctx, ps, im, cfg)
		if err != nil {
			return res, err
		}
		meshes[i], ir.StartToConvergedS = agents, secs
	}

	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return res, err
	}

	// Idle window: both meshes at once, nothing polls them.
	if err := idleWindow(ctx, cfg, res, shoal, meshes[0], meshes[1], ipt); err != nil {
		return res, err
	}

	// Load age (Shoal only): polls, so after the idle window.
	la, err := loadAge(ctx, cfg, shoal, meshes[0])
	if err != nil {
		return res, err
	}
	res.Shoal.LoadAge = la
	logf("shoal: load age over %d pairs: p50 %.2fs p99 %.2fs max %.2fs (%d without load; %d observer samples unanswered)", la.Pairs, la.P50, la.P99, la.Max, la.Missing, la.Unanswered)

	// Trials, alternating implementations so that the machine's noise
	// falls on both alike.
	for t := 1; t <= cfg.Trials; t++ {
		for i, im := range []impl{shoal, serf} {
			ir := []*ImplResult{res.Shoal, res.Serf}[i]
			tr, agents, err := joinTrial(ctx, ps, im, meshes[i], cfg, cfg.N+t)
			if err != nil {
				return res, err
			}
			meshes[i] = agents
			ir.Joins = append(ir.Joins, tr)
			logf("%s: join %d: %s seen alive by all %d in %.2fs (first %.2fs, new agent listed the seed at %.2fs)",
				im.Name(), t, tr.Node, tr.Observers, tr.AllSeconds, tr.FirstSeconds, tr.SelfSeconds)
		}
		for i, im := range []impl{shoal, serf} {
			ir := []*ImplResult{res.Shoal, res.Serf}[i]
			victim := meshes[i][cfg.N-t] // original agents, counting down from the last; never the seed
			tr, err := killTrial(ctx, im, meshes[i], victim, cfg)
			if err != nil {
				return res, err
			}
			ir.Detections = append(ir.Detections, tr)
			logf("%s: kill -9 %d: %s marked failed by all %d in %.2fs (first %.2fs)",
				im.Name(), t, tr.Node, tr.Observers, tr.AllSeconds, tr.FirstSeconds)
		}
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func allAlive(ms []member, names []string) bool {
	st := make(map[string]string, len(ms))
	for _, m := range ms {
		st[m.Name] = m.Status
	}
	for _, n := range names {
		if st[n] != "alive" {
			return false
		}
	}
	return true
}

func statusOf(ms []member, name string) string {
	for _, m := range ms {
		if m.Name == name {
			return m.Status
		}
	}
	return "absent"
}

// startConverged starts a mesh of cfg.N agents of im and waits until every
// agent lists all of them alive. It returns the agents and the time from
// starting the seed until the last agent did.
func startConverged(ctx context.Context, ps *procSet, im impl, cfg Config) ([]*agentProc, float64, error) {
	agents, err := startMesh(ctx, ps, im, cfg)
	if err != nil {
		return nil, 0, err
	}
	cfg.Log("%s: %d agents started in %.1fs", im.Name(), cfg.N, time.Since(agents[0].Started).Seconds())
	names := make([]string, len(agents))
	for j, a := range agents {
		names[j] = a.Name
	}
	t0 := agents[0].Started
	times, err := waitAll(ctx, im, agents, cfg, t0, func(ms []member) bool { return allAlive(ms, names) },
		fmt.Sprintf("%s: every agent lists all %d alive", im.Name(), cfg.N))
	if err != nil {
		return nil, 0, err
	}
	_, last := minMax(times)
	cfg.Log("%s: converged, %.1fs after the seed started", im.Name(), last)
	return agents, last, nil
}

// startMesh starts the seed, waits until it answers, then starts the others
// joined to it and waits until each answers.
func startMesh(ctx context.Context, ps *procSet, im impl, cfg Config) ([]*agentProc, error) {
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	seed, err := ps.start(im, 1, "")
	if err != nil {
		return nil, err
	}
	if err := im.connect(wctx, seed); err != nil {
		return nil, fmt.Errorf("%s seed: %w", im.Name(), err)
	}
	agents := []*agentProc{seed}
	for i := 2; i <= cfg.N; i++ {
		a, err := ps.start(im, i, im.joinAddr(seed))
		if err != nil {
			return nil, err
		}
		agents = append(agents, a)
	}
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i+1] = im.connect(wctx, a)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: starting agents: %w", im.Name(), err)
	}
	return agents, nil
}

// waitAll polls every observer's member list until ok holds for each. It
// returns, per observer, the time since t0 at which the answer that
// satisfied ok arrived. Each observer is polled every cfg.Poll until it is
// satisfied, then left alone. It fails after cfg.Timeout, naming the
// observers that were not satisfied.
func waitAll(ctx context.Context, im impl, observers []*agentProc, cfg Config, t0 time.Time,
	ok func([]member) bool, what string) ([]time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	times := make([]time.Duration, len(observers))
	lastErr := make([]string, len(observers))
	dead := make([]error, len(observers))
	var wg sync.WaitGroup
	for i, a := range observers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if a.Exited() {
					dead[i] = a.ExitError()
					cancel()
					return
				}
				ms, err := im.members(wctx, a)
				if err == nil && ok(ms) {
					times[i] = time.Since(t0)
					return
				}
				if err != nil {
					lastErr[i] = err.Error()
				} else {
					lastErr[i] = summarizeStatuses(ms)
				}
				select {
				case <-wctx.Done():
					return
				case <-time.After(cfg.Poll):
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(dead...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var missing []string
	for i, a := range observers {
		if times[i] == 0 {
			missing = append(missing, fmt.Sprintf("%s (%s)", a.Name, lastErr[i]))
		}
	}
	if len(missing) > 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("timed out after %v waiting until %s; %d of %d not there: %s",
			cfg.Timeout, what, len(missing), len(observers), strings.Join(missing, "; "))
	}
	return times, nil
}

func summarizeStatuses(ms []member) string {
	c := map[string]int{}
	for _, m := range ms {
		c[m.Status]++
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", c[k], k))
	}
	return "lists " + strings.Join(parts, ", ")
}

func alive(agents []*agentProc) []*agentProc {
	var out []*agentProc
	for _, a := range agents {
		if !a.Killed() {
			out = append(out, a)
		}
	}
	return out
}

// joinTrial starts agent idx joined to the seed and measures, from the moment
// the process is started, until every alive member (the new one included)
// lists it alive.
func joinTrial(ctx context.Context, ps *procSet, im impl, agents []*agentProc, cfg Config, idx int) (Trial, []*agentProc, error) {
	seed := agents[0]
	a, err := ps.start(im, idx, im.joinAddr(seed))
	if err != nil {
		return Trial{}, agents, err
	}
	t0 := a.Started
	agents = append(agents, a)
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	// The new agent is itself an observer: connect to it concurrently so its
	// start-up does not hold up polling the others.
	var selfT time.Duration
	selfErr := make(chan error, 1)
	go func() {
		if err := im.connect(cctx, a); err != nil {
			selfErr <- err
			return
		}
		ts, err := waitAll(cctx, im, []*agentProc{a}, cfg, t0, func(ms []member) bool { return statusOf(ms, seed.Name) == "alive" },
			a.Name+" lists the seed alive")
		if err == nil {
			selfT = ts[0]
		}
		selfErr <- err
	}()
	obs := alive(agents[:len(agents)-1])
	times, err := waitAll(ctx, im, obs, cfg, t0, func(ms []member) bool { return statusOf(ms, a.Name) == "alive" },
		fmt.Sprintf("%s: every member lists the new %s alive", im.Name(), a.Name))
	if err != nil {
		return Trial{}, agents, err
	}
	if err := <-selfErr; err != nil {
		return Trial{}, agents, fmt.Errorf("%s: new agent: %w", im.Name(), err)
	}
	times = append(times, selfT)
	tr := Trial{Node: a.Name, Observers: len(times), SelfSeconds: selfT.Seconds()}
	tr.FirstSeconds, tr.AllSeconds = minMax(times)
	return tr, agents, nil
}

// killTrial kills victim with SIGKILL and measures until every survivor
// lists it failed.
func killTrial(ctx context.Context, im impl, agents []*agentProc, victim *agentProc, cfg Config) (Trial, error) {
	if victim.Killed() || victim.Index == 1 {
		return Trial{}, fmt.Errorf("bad victim %s", victim.Name)
	}
	// Close the RPC connection to the victim first, so that the serf
	// client does not log the connection's end as an error.
	victim.closeConn()
	t0 := time.Now()
	if err := victim.Kill(); err != nil {
		return Trial{}, err
	}
	obs := alive(agents)
	times, err := waitAll(ctx, im, obs, cfg, t0, func(ms []member) bool { return statusOf(ms, victim.Name) == "failed" },
		fmt.Sprintf("%s: every survivor marks the kill -9'ed %s failed", im.Name(), victim.Name))
	if err != nil {
		return Trial{}, err
	}
	tr := Trial{Node: victim.Name, Observers: len(times)}
	tr.FirstSeconds, tr.AllSeconds = minMax(times)
	return tr, nil
}

func minMax(ds []time.Duration) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, d := range ds {
		lo = min(lo, d.Seconds())
		hi = max(hi, d.Seconds())
	}
	return lo, hi
}

// idleWindow measures CPU, memory and gossip bytes of both meshes over the
// same window, without asking the agents anything in between.
func idleWindow(ctx context.Context, cfg Config, res *Result, shoal *shoalImpl, shoalAgents, serfAgents []*agentProc, ipt *iptAccounting) error {
	logf := cfg.Log
	all := append(append([]*agentProc(nil), shoalAgents...), serfAgents...)
	tick := res.Machine.ClockTick

	infos0, err := shoalInfos(ctx, shoal, shoalAgents)
	if err != nil {
		return err
	}
	var ipt0 map[string]iptCount
	if ipt != nil {
		if ipt0, err = ipt.read(ctx); err != nil {
			return err
		}
	}
	cpu0 := make([]uint64, len(all))
	for i, a := range all {
		if cpu0[i], err = readCPUTicks(a.PID); err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
	}
	t0 := time.Now()
	logf("idle window: %v, both meshes, nothing polls them", cfg.Idle)
	if err := sleepCtx(ctx, cfg.Idle); err != nil {
		return err
	}
	cpu1 := make([]uint64, len(all))
	for i, a := range all {
		if a.Exited() {
			return a.ExitError()
		}
		if cpu1[i], err = readCPUTicks(a.PID); err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
	}
	secs := time.Since(t0).Seconds()
	var ipt1 map[string]iptCount
	if ipt != nil {
		if ipt1, err = ipt.read(ctx); err != nil {
			return err
		}
	}
	infos1, err := shoalInfos(ctx, shoal, shoalAgents)
	if err != nil {
		return err
	}

	for i, a := range all {
		ir := res.Shoal
		if a.impl.Name() == "serf" {
			ir = res.Serf
		}
		ir.IdleSeconds = secs
		ir.IdleCPUPct = append(ir.IdleCPUPct, float64(cpu1[i]-cpu0[i])/tick/secs*100)
		rss, hwm, err := readRSS(a.PID)
		if err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
		ir.RSSBytes = append(ir.RSSBytes, float64(rss))
		ir.HWMBytes = append(ir.HWMBytes, float64(hwm))
	}
	for _, ir := range []*ImplResult{res.Shoal, res.Serf} {
		ir.IdleCPU, ir.RSS, ir.HWM = summarize(ir.IdleCPUPct), summarize(ir.RSSBytes), summarize(ir.HWMBytes)
		ir.GossipBps, ir.GossipPps = math.NaN(), math.NaN()
		if ipt != nil {
			d := ipt1[ir.Name]
			d.Bytes -= ipt0[ir.Name].Bytes
			d.Packets -= ipt0[ir.Name].Packets
			ir.GossipBps = float64(d.Bytes) / secs / float64(ir.Agents)
			ir.GossipPps = float64(d.Packets) / secs / float64(ir.Agents)
			ir.GossipBpsFrom = "iptables"
		}
	}
	var out, load uint64
	for i := range infos0 {
		out += infos1[i].Traffic.BytesOut - infos0[i].Traffic.BytesOut
		load += infos1[i].Traffic.LoadBytesOut - infos0[i].Traffic.LoadBytesOut
		res.Shoal.Dropped += infos1[i].Traffic.Dropped
	}
	res.Shoal.AgentBytesOutPerSec = float64(out) / secs / float64(len(infos0))
	res.Shoal.AgentLoadBytesOutPerSec = float64(load) / secs / float64(len(infos0))
	if ipt == nil {
		res.Shoal.GossipBps = res.Shoal.AgentBytesOutPerSec
		res.Shoal.GossipBpsFrom = "agent counters (payload)"
		res.Serf.GossipBpsFrom = "n/a"
	}
	logf("idle window done (%.1fs)", secs)
	return nil
}

func shoalInfos(ctx context.Context, shoal *shoalImpl, agents []*agentProc) ([]infoT, error) {
	out := make([]infoT, len(agents))
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = shoal.info(ctx, a)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// loadAge samples every Shoal agent's member list cfg.LoadRounds times over
// cfg.LoadWindow and summarises load_age_seconds over (observer, member)
// pairs of alive members other than the observer itself.
func loadAge(ctx context.Context, cfg Config, shoal *shoalImpl, agents []*agentProc) (*LoadAge, error) {
	var ages, self []float64
	missing, unanswered := 0, 0
	interval := cfg.LoadWindow / time.Duration(cfg.LoadRounds)
	next := time.Now()
	for r := 0; r < cfg.LoadRounds; r++ {
		if err := sleepCtx(ctx, time.Until(next)); err != nil {
			return nil, err
		}
		next = next.Add(interval)
		// A few at a time: a hundred requests at once on a machine running
		// two hundred agents time out. An observer that does not answer
		// within its timeout is counted (unanswered), not guessed; the ages
		// are computed by each observer when it answers.
		lists := make([][]memberFull, len(agents))
		errs := make([]error, len(agents))
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i, a := range agents {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				lists[i], errs[i] = shoal.fullMembers(ctx, a)
			}()
		}
		wg.Wait()
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
			}
		}
		if failed > len(agents)/2 {
			return nil, fmt.Errorf("load age: %d of %d agents did not answer: %w", failed, len(agents), errors.Join(errs...))
		}
		unanswered += failed
		for _, ms := range lists {
			for _, m := range ms {
				if m.Status != "alive" {
					continue
				}
				switch {
				case m.Self && m.LoadAgeSeconds >= 0:
					self = append(self, m.LoadAgeSeconds)
				case m.Self:
				case m.LoadAgeSeconds < 0:
					missing++
				default:
					ages = append(ages, m.LoadAgeSeconds)
				}
			}
		}
	}
	sort.Float64s(ages)
	la := &LoadAge{Rounds: cfg.LoadRounds, Pairs: len(ages) + missing, Missing: missing, Unanswered: unanswered,
		P50: percentile(ages, 50), P99: percentile(ages, 99), SelfP50: median(self)}
	if len(ages) > 0 {
		la.Max = ages[len(ages)-1]
	} else {
		la.Max = math.NaN()
	}
	return la, nil
}

func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg: loadavg(), ClockTick: clockTicks()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				f := strings.Fields(v)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					m.MemTotal = fmt.Sprintf("%.1f GiB", kb/1024/1024)
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command("nproc").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			m.NProc = n
		}
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// binVersion runs `bin arg` and returns its first line of output.
func binVersion(bin, arg string) string {
	b, err := exec.Command(bin, arg).CombinedOutput()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(line)
}

// gitRev describes the working tree the shoal binary was built from.
func gitRev(root string) string {
	b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := " @ " + strings.TrimSpace(string(b))
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += fmt.Sprintf(" + working tree with uncommitted changes in %d files", len(strings.Split(strings.TrimSpace(string(st)), "\n")))
	}
	return rev
}
