package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoalmesh/shoal/tools/internal/procs"
)

// The p2p scenario: N `shoal agent --profile lan` and N `shoal agent
// --profile p2p` processes of the same binary, side by side, measured the
// same way. The target: a p2p agent's resident memory within +12 MB
// of a lan agent's.
const targetP2PExtraRSS = 12e6

// DefaultP2PConfig is the configuration of `shoal-scenario p2p`.
func DefaultP2PConfig() Config {
	c := DefaultConfig()
	c.N, c.Settle, c.Idle = 10, 10*time.Second, 20*time.Second
	c.ShoalNet, c.P2PNet = "127.0.40", "127.0.41"
	return c
}

func (c *Config) checkP2P() error {
	if c.N < 2 {
		return fmt.Errorf("-n %d: need at least 2 agents (a seed and one to kill)", c.N)
	}
	if c.Trials < 1 || c.Trials > c.N-1 || c.N+c.Trials > 250 {
		return fmt.Errorf("-trials %d: use 1 to n-1 (%d), and n+trials at most 250", c.Trials, c.N-1)
	}
	if c.Idle <= 0 || c.Settle < 0 || c.Poll <= 0 || c.Timeout <= 0 {
		return errors.New("-idle, -poll and -timeout must be positive, -settle not negative")
	}
	if err := checkNets("-lan-net", c.ShoalNet, "-p2p-net", c.P2PNet); err != nil {
		return err
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	return nil
}

// ProfileResult is what was measured for the agents of one profile.
type ProfileResult struct {
	Profile           string  `json:"profile"`
	Agents            int     `json:"agents"`
	StartToConvergedS float64 `json:"start_to_converged_seconds"`

	// Per agent, at the end of the idle window: /proc/PID/status (VmRSS,
	// VmHWM, RssAnon, RssFile, Threads), /proc/PID/smaps_rollup (Pss), and
	// the Go runtime's own figures from /metrics.
	RSSBytes     []float64 `json:"rss_bytes"`
	HWMBytes     []float64 `json:"hwm_bytes"`
	AnonBytes    []float64 `json:"rss_anon_bytes"`
	FileBytes    []float64 `json:"rss_file_bytes"`
	PSSBytes     []float64 `json:"pss_bytes"`
	Threads      []float64 `json:"threads"`
	HeapInuse    []float64 `json:"go_heap_inuse_bytes"`
	StackInuse   []float64 `json:"go_stack_inuse_bytes"`
	GoSys        []float64 `json:"go_sys_bytes"`
	Goroutines   []float64 `json:"goroutines"`
	IdleCPUPct   []float64 `json:"idle_cpu_pct"`
	IdleSeconds  float64   `json:"idle_seconds"`
	GossipBps    float64   `json:"gossip_bytes_per_sec_per_node"`
	GossipPps    float64   `json:"gossip_packets_per_sec_per_node"`
	GossipMethod string    `json:"gossip_bytes_method"`

	Joins      []Trial `json:"joins"`
	Detections []Trial `json:"detections"`
}

// P2PResult is one run of the p2p scenario.
type P2PResult struct {
	Config  Config         `json:"-"`
	Command string         `json:"command"`
	Started time.Time      `json:"started"`
	Elapsed float64        `json:"elapsed_seconds"`
	N       int            `json:"n"`
	Machine Machine        `json:"machine"`
	Version string         `json:"shoal_version"`
	Binary  string         `json:"binary"`
	Method  string         `json:"bytes_method"`
	Lan     *ProfileResult `json:"lan"`
	P2P     *ProfileResult `json:"p2p"`
}

// RunP2P runs the p2p scenario. Every process it starts is killed, the
// iptables chain removed and the temporary directory deleted before it returns.
func RunP2P(ctx context.Context, cfg Config) (res *P2PResult, err error) {
	if err := cfg.checkP2P(); err != nil {
		return nil, err
	}
	logf := cfg.Log
	res = &P2PResult{Config: cfg, Command: cfg.Command, Started: time.Now(), N: cfg.N, Machine: machine(),
		Lan: &ProfileResult{Profile: "lan", Agents: cfg.N}, P2P: &ProfileResult{Profile: "p2p", Agents: cfg.N}}
	root, err := procs.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin, rev, err := shoalBinary(ctx, root, cfg.ShoalBin, cfg.ShoalRev, logf)
	if err != nil {
		return nil, err
	}
	res.Binary, res.Version = bin, binVersion(bin, "version")+rev
	out, err := exec.CommandContext(ctx, bin, "keygen").Output()
	if err != nil {
		return nil, fmt.Errorf("%s keygen: %w", bin, err)
	}
	key := strings.TrimSpace(string(out))

	ps, err := newProcSet("shoal-scenario-p2p-")
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

	switch {
	case cfg.NoIptables:
		res.Method = "not measured (-no-iptables)"
	case os.Geteuid() != 0:
		res.Method = "not measured (iptables needs root)"
	default:
		chain := "SHOALP2P-" + strconv.Itoa(os.Getpid())
		if ipt, err = setupIptables(ctx, chain, map[string]string{"lan": cfg.ShoalNet, "p2p": cfg.P2PNet}); err != nil {
			res.Method = "not measured (iptables not usable: " + err.Error() + ")"
			ipt, err = nil, nil
		} else {
			res.Method = "iptables accounting on lo (chain " + chain + ")"
		}
	}
	logf("gossip bytes: %s", res.Method)

	// Both profiles get the same key, so that the comparison is of the
	// transports (memberlist's AES-GCM on UDP/TCP against libp2p).
	lan := &shoalImpl{bin: bin, net: cfg.ShoalNet, poll: cfg.Poll, name: "lan", profile: "lan", key: key}
	p2p := &shoalImpl{bin: bin, net: cfg.P2PNet, poll: cfg.Poll, name: "p2p", profile: "p2p", key: key}
	impls := []impl{lan, p2p}
	prs := []*ProfileResult{res.Lan, res.P2P}
	var meshes [2][]*agentProc
	for i, im := range impls {
		agents, secs, err := startConverged(ctx, ps, im, cfg)
		if err != nil {
			return res, err
		}
		meshes[i], prs[i].StartToConvergedS = agents, secs
	}
	logf("settling for %v", cfg.Settle)
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return res, err
	}
	if err := p2pIdleWindow(ctx, cfg, res, meshes, ipt); err != nil {
		return res, err
	}

	// Trials, alternating the profiles so that the machine's noise falls on
	// both alike.
	for t := 1; t <= cfg.Trials; t++ {
		for i, im := range impls {
			tr, agents, err := joinTrial(ctx, ps, im, meshes[i], cfg, cfg.N+t)
			if err != nil {
				return res, err
			}
			meshes[i] = agents
			prs[i].Joins = append(prs[i].Joins, tr)
			logf("%s: join %d: %s seen alive by all %d in %.2fs", im.Name(), t, tr.Node, tr.Observers, tr.AllSeconds)
		}
		for i, im := range impls {
			victim := meshes[i][cfg.N-t] // original agents, counting down from the last; never the seed
			tr, err := killTrial(ctx, im, meshes[i], victim, cfg)
			if err != nil {
				return res, err
			}
			prs[i].Detections = append(prs[i].Detections, tr)
			logf("%s: kill -9 %d: %s marked failed by all %d in %.2fs (first %.2fs)",
				im.Name(), t, tr.Node, tr.Observers, tr.AllSeconds, tr.FirstSeconds)
		}
	}
	return res, nil
}

// p2pIdleWindow measures idle CPU and gossip bytes of both meshes over the
// same window, without asking the agents anything, then memory.
func p2pIdleWindow(ctx context.Context, cfg Config, res *P2PResult, meshes [2][]*agentProc, ipt *iptAccounting) error {
	prs := []*ProfileResult{res.Lan, res.P2P}
	var all []*agentProc
	for _, m := range meshes {
		all = append(all, m...)
	}
	var err error
	var ipt0, ipt1 map[string]iptCount
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
	cfg.Log("idle window: %v, both meshes, nothing asks them anything", cfg.Idle)
	if err := sleepCtx(ctx, cfg.Idle); err != nil {
		return err
	}
	secs := time.Since(t0).Seconds()
	if ipt != nil {
		if ipt1, err = ipt.read(ctx); err != nil {
			return err
		}
	}
	// CPU and memory from /proc first, then the agents' /metrics (asking
	// allocates in the agent).
	for i, a := range all {
		if a.Exited() {
			return a.ExitError()
		}
		pr := prs[0]
		if i >= len(meshes[0]) {
			pr = prs[1]
		}
		c1, err := readCPUTicks(a.PID)
		if err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
		pm, err := readProcMem(a.PID)
		if err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
		pr.IdleSeconds = secs
		pr.IdleCPUPct = append(pr.IdleCPUPct, float64(c1-cpu0[i])/res.Machine.ClockTick/secs*100)
		pr.RSSBytes = append(pr.RSSBytes, pm.rss)
		pr.HWMBytes = append(pr.HWMBytes, pm.hwm)
		pr.AnonBytes = append(pr.AnonBytes, pm.anon)
		pr.FileBytes = append(pr.FileBytes, pm.file)
		pr.PSSBytes = append(pr.PSSBytes, pm.pss)
		pr.Threads = append(pr.Threads, pm.threads)
	}
	for i, m := range meshes {
		for _, a := range m {
			gm, err := scrapeGoMem(ctx, fmt.Sprintf("%s:%d", a.IP, shoalHTTPPort))
			if err != nil {
				return fmt.Errorf("%s: /metrics: %w", a.Name, err)
			}
			pr := prs[i]
			pr.HeapInuse = append(pr.HeapInuse, gm["go_memstats_heap_inuse_bytes"])
			pr.StackInuse = append(pr.StackInuse, gm["go_memstats_stack_inuse_bytes"])
			pr.GoSys = append(pr.GoSys, gm["go_memstats_sys_bytes"])
			pr.Goroutines = append(pr.Goroutines, gm["go_goroutines"])
		}
	}
	for _, pr := range prs {
		pr.GossipBps, pr.GossipPps, pr.GossipMethod = math.NaN(), math.NaN(), "n/a"
		if ipt != nil {
			d := ipt1[pr.Profile]
			d.Bytes -= ipt0[pr.Profile].Bytes
			d.Packets -= ipt0[pr.Profile].Packets
			pr.GossipBps = float64(d.Bytes) / secs / float64(pr.Agents)
			pr.GossipPps = float64(d.Packets) / secs / float64(pr.Agents)
			pr.GossipMethod = "iptables"
		}
	}
	cfg.Log("idle window done (%.1fs); RSS median lan %s MB, p2p %s MB", secs, mb(median(res.Lan.RSSBytes)), mb(median(res.P2P.RSSBytes)))
	return nil
}

type procMem struct{ rss, hwm, anon, file, pss, threads float64 }

// readProcMem reads /proc/PID/status and /proc/PID/smaps_rollup.
func readProcMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	st := procFields(b)
	if _, ok := st["VmRSS"]; !ok {
		return procMem{}, errors.New("no VmRSS in status")
	}
	pm := procMem{rss: st["VmRSS"], hwm: st["VmHWM"], anon: st["RssAnon"], file: st["RssFile"], threads: st["Threads"], pss: math.NaN()}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		if v, ok := procFields(b)["Pss"]; ok {
			pm.pss = v
		}
	}
	return pm, nil
}

// procFields parses "Key: value [kB]" lines; kB values are returned in bytes.
func procFields(b []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 || len(f) > 2 {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		if len(f) == 2 {
			if f[1] != "kB" {
				continue
			}
			n *= 1024
		}
		out[k] = n
	}
	return out
}

// scrapeGoMem reads the Go runtime's gauges from an agent's /metrics.
func scrapeGoMem(ctx context.Context, addr string) (map[string]float64, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseGoMem(b), nil
}

func parseGoMem(b []byte) map[string]float64 {
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "go_memstats_") && !strings.HasPrefix(l, "go_goroutines ") {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

func maxOf(xs []float64) float64 { return summarize(xs).Max }

func diffMB(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f", (a-b)/1e6)
}

// signed formats x with format and a sign.
func signed(format func(float64) string, x float64) string {
	if math.IsNaN(x) || x < 0 {
		return format(x)
	}
	return "+" + format(x)
}

func diff2(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) {
		return "n/a"
	}
	return fmt.Sprintf("%+.2f", a-b)
}

type p2pRow struct{ label, lan, p2p, diff, ratio string }

func (r *P2PResult) rows() []p2pRow {
	l, p := r.Lan, r.P2P
	var rows []p2pRow
	memRow := func(label string, f func([]float64) float64, a, b []float64) {
		x, y := f(a), f(b)
		rows = append(rows, p2pRow{label, mb(x), mb(y), diffMB(y, x), ratio(y, x)})
	}
	numRow := func(label string, f func([]float64) float64, a, b []float64, format func(float64) string) {
		x, y := f(a), f(b)
		d := "n/a"
		if !math.IsNaN(x) && !math.IsNaN(y) {
			d = format(y - x)
			if y >= x {
				d = "+" + d
			}
		}
		rows = append(rows, p2pRow{label, format(x), format(y), d, ratio(y, x)})
	}
	memRow("RSS (VmRSS) per agent, median (MB)", median, l.RSSBytes, p.RSSBytes)
	memRow("RSS (VmRSS) per agent, max (MB)", maxOf, l.RSSBytes, p.RSSBytes)
	memRow("  anonymous (RssAnon), median (MB)", median, l.AnonBytes, p.AnonBytes)
	memRow("  file-backed (RssFile: the binary's pages, shared), median (MB)", median, l.FileBytes, p.FileBytes)
	memRow("PSS (shared pages split between the 2N agents), median (MB)", median, l.PSSBytes, p.PSSBytes)
	memRow("peak RSS (VmHWM) per agent, max (MB)", maxOf, l.HWMBytes, p.HWMBytes)
	memRow("Go heap in use, median (MB)", median, l.HeapInuse, p.HeapInuse)
	memRow("Go stacks in use, median (MB)", median, l.StackInuse, p.StackInuse)
	memRow("Go runtime total from the OS (sys), median (MB)", median, l.GoSys, p.GoSys)
	numRow("goroutines, median", median, l.Goroutines, p.Goroutines, f0)
	numRow("OS threads, median", median, l.Threads, p.Threads, f0)
	numRow("idle CPU per agent, median (% of a core)", median, l.IdleCPUPct, p.IdleCPUPct, f3)
	numRow("idle CPU per agent, max (% of a core)", maxOf, l.IdleCPUPct, p.IdleCPUPct, f3)
	rows = append(rows, p2pRow{fmt.Sprintf("gossip bytes/s per node (%s)", l.GossipMethod), f0(l.GossipBps), f0(p.GossipBps), signed(f0, p.GossipBps-l.GossipBps), ratio(p.GossipBps, l.GossipBps)})
	rows = append(rows, p2pRow{fmt.Sprintf("gossip packets/s per node (%s)", l.GossipMethod), f2(l.GossipPps), f2(p.GossipPps), diff2(p.GossipPps, l.GossipPps), ratio(p.GossipPps, l.GossipPps)})
	rows = append(rows, p2pRow{"join: start of seed to all N alive everywhere (s)", f2(l.StartToConvergedS), f2(p.StartToConvergedS),
		diff2(p.StartToConvergedS, l.StartToConvergedS), ratio(p.StartToConvergedS, l.StartToConvergedS)})
	lj, pj := median(trialsAll(l.Joins)), median(trialsAll(p.Joins))
	rows = append(rows, p2pRow{"join: all see a new member alive, median (s)", f2(lj), f2(pj), diff2(pj, lj), ratio(pj, lj)})
	rows = append(rows, p2pRow{"  per trial (s)", list(trialsAll(l.Joins)), list(trialsAll(p.Joins)), "", ""})
	ld, pd := median(trialsAll(l.Detections)), median(trialsAll(p.Detections))
	rows = append(rows, p2pRow{"detection: all mark kill -9 failed, median (s)", f2(ld), f2(pd), diff2(pd, ld), ratio(pd, ld)})
	rows = append(rows, p2pRow{"  per trial (s)", list(trialsAll(l.Detections)), list(trialsAll(p.Detections)), "", ""})
	lf, pf := median(trialsFirst(l.Detections)), median(trialsFirst(p.Detections))
	rows = append(rows, p2pRow{"  first member to mark it failed, median (s)", f2(lf), f2(pf), diff2(pf, lf), ratio(pf, lf)})
	return rows
}

// verdict is the +12 MB target on the median and on the max.
func (r *P2PResult) verdict() (string, bool) {
	dm := median(r.P2P.RSSBytes) - median(r.Lan.RSSBytes)
	dx := maxOf(r.P2P.RSSBytes) - maxOf(r.Lan.RSSBytes)
	ok := dm <= targetP2PExtraRSS && dx <= targetP2PExtraRSS
	return fmt.Sprintf("p2p RSS within +12 MB of lan: median %+.1f MB, max %+.1f MB", dm/1e6, dx/1e6), ok
}

func (r *P2PResult) header() []string {
	m := r.Machine
	return []string{
		fmt.Sprintf("p2p scenario: N=%d `shoal agent --profile lan` and N=%d `--profile p2p` side by side, settle %v, idle window %.1fs, %d join and %d kill -9 trials each",
			r.N, r.N, r.Config.Settle, r.Lan.IdleSeconds, len(r.Lan.Joins), len(r.Lan.Detections)),
		fmt.Sprintf("shoal: %s (one binary for both profiles; both with the same --encrypt key)", r.Version),
		fmt.Sprintf("machine: %d cores (%s), %s RAM, Linux %s, %s; loadavg %s at start, %s at end",
			m.NProc, m.CPU, m.MemTotal, m.Kernel, m.GoVersion, m.LoadAvg, m.LoadAvgEnd),
		fmt.Sprintf("gossip bytes: %s", r.Method),
	}
}

// Table is the plain-text report.
func (r *P2PResult) Table() string {
	var b bytes.Buffer
	for _, h := range r.header() {
		fmt.Fprintln(&b, h)
	}
	fmt.Fprintln(&b)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tlan\tp2p\tp2p−lan\tp2p/lan")
	for _, rw := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rw.label, rw.lan, rw.p2p, rw.diff, rw.ratio)
	}
	tw.Flush()
	v, ok := r.verdict()
	word := "MISSED"
	if ok {
		word = "met"
	}
	fmt.Fprintf(&b, "\ntarget: %-6s %s\nrun took %.0fs\n", word, v, r.Elapsed)
	return b.String()
}

// Markdown is a section for docs/benchmarks.md.
func (r *P2PResult) Markdown() string {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	m := r.Machine
	p("Generated by `shoal-scenario p2p` on %s; every figure below comes from that one run. Rerun from the", r.Started.UTC().Format(time.DateOnly))
	p("repository root (as root for the gossip byte counts):")
	p("")
	p("```sh")
	p("%s", r.Command)
	p("```")
	p("")
	p("| | |")
	p("|---|---|")
	p("| machine | %d CPUs (%s), %s, Linux %s, %s |", m.NProc, m.CPU, m.MemTotal, m.Kernel, m.GoVersion)
	p("| load average (1, 5, 15 min) | %s at start, %s at end |", m.LoadAvg, m.LoadAvgEnd)
	p("| shoal | %s, one binary for both profiles, both with the same `--encrypt` key |", r.Version)
	p("| run | N=%d agents per profile on %s.x (lan) and %s.x (p2p), settle %v, idle window %.1f s, %d join and %d kill -9 trials each, %.0f s in all |",
		r.N, r.Config.ShoalNet, r.Config.P2PNet, r.Config.Settle, r.Lan.IdleSeconds, len(r.Lan.Joins), len(r.Lan.Detections), r.Elapsed)
	p("| gossip bytes | %s |", r.Method)
	p("")
	p("| metric | lan | p2p | p2p − lan | p2p/lan |")
	p("|---|---:|---:|---:|---:|")
	for _, rw := range r.rows() {
		label := rw.label
		if strings.HasPrefix(label, "  ") {
			label = "&nbsp;&nbsp;" + strings.TrimSpace(label)
		}
		p("| %s | %s | %s | %s | %s |", label, rw.lan, rw.p2p, rw.diff, rw.ratio)
	}
	p("")
	v, ok := r.verdict()
	word := "**missed**"
	if ok {
		word = "met"
	}
	p("Target: %s: %s.", v, word)
	return b.String()
}

// WriteFile writes JSON for *.json, the Markdown section otherwise.
func (r *P2PResult) WriteFile(path string) error {
	var data []byte
	if strings.HasSuffix(path, ".json") {
		c := *r
		fix := func(pr *ProfileResult) *ProfileResult {
			x := *pr
			for _, p := range []*float64{&x.GossipBps, &x.GossipPps} {
				if math.IsNaN(*p) {
					*p = -1
				}
			}
			pss := append([]float64(nil), x.PSSBytes...)
			for i := range pss {
				if math.IsNaN(pss[i]) {
					pss[i] = -1
				}
			}
			x.PSSBytes = pss
			return &x
		}
		c.Lan, c.P2P = fix(r.Lan), fix(r.P2P)
		var err error
		if data, err = json.MarshalIndent(&c, "", "  "); err != nil {
			return err
		}
		data = append(data, '\n')
	} else {
		data = []byte(r.Markdown())
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, data, 0o644)
}
