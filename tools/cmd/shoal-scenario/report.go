package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets Shoal is reported against. Nothing is tuned to meet them.
const (
	targetRSSBytes   = 25e6 // per agent
	targetIdleCPUPct = 0.5  // % of one core per agent
	targetLoadAgeP99 = 2.0  // seconds, N=30, lan
)

type row struct {
	label, shoal, serf, ratio string
}

func mb(b float64) string { return fmt.Sprintf("%.1f", b/1e6) }

func f2(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", x)
}

func f3(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", x)
}

func f0(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", x)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func trialsAll(ts []Trial) []float64 {
	out := make([]float64, len(ts))
	for i, t := range ts {
		out[i] = t.AllSeconds
	}
	return out
}

func trialsFirst(ts []Trial) []float64 {
	out := make([]float64, len(ts))
	for i, t := range ts {
		out[i] = t.FirstSeconds
	}
	return out
}

func list(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = f2(x)
	}
	return strings.Join(s, " ")
}

func (r *Result) rows() []row {
	sh, sf := r.Shoal, r.Serf
	var rows []row
	add := func(label, a, b, q string) { rows = append(rows, row{label, a, b, q}) }
	add("RSS per agent, mean (MB)", mb(sh.RSS.Mean), mb(sf.RSS.Mean), ratio(sh.RSS.Mean, sf.RSS.Mean))
	add("RSS per agent, max (MB)", mb(sh.RSS.Max), mb(sf.RSS.Max), ratio(sh.RSS.Max, sf.RSS.Max))
	add("peak RSS (VmHWM) per agent, max (MB)", mb(sh.HWM.Max), mb(sf.HWM.Max), ratio(sh.HWM.Max, sf.HWM.Max))
	add("idle CPU per agent, mean (% of a core)", f3(sh.IdleCPU.Mean), f3(sf.IdleCPU.Mean), ratio(sh.IdleCPU.Mean, sf.IdleCPU.Mean))
	add("idle CPU per agent, max (% of a core)", f3(sh.IdleCPU.Max), f3(sf.IdleCPU.Max), ratio(sh.IdleCPU.Max, sf.IdleCPU.Max))
	cs, cf := median(trialsAll(sh.Joins)), median(trialsAll(sf.Joins))
	add("convergence: all see new member, median (s)", f2(cs), f2(cf), ratio(cs, cf))
	add("  per trial (s)", list(trialsAll(sh.Joins)), list(trialsAll(sf.Joins)), "")
	ds, df := median(trialsAll(sh.Detections)), median(trialsAll(sf.Detections))
	add("detection: all mark kill -9 failed, median (s)", f2(ds), f2(df), ratio(ds, df))
	add("  per trial (s)", list(trialsAll(sh.Detections)), list(trialsAll(sf.Detections)), "")
	fs, ff := median(trialsFirst(sh.Detections)), median(trialsFirst(sf.Detections))
	add("  first member to mark it failed, median (s)", f2(fs), f2(ff), ratio(fs, ff))
	add(fmt.Sprintf("gossip bytes/s per node (%s)", sh.GossipBpsFrom), f0(sh.GossipBps), f0(sf.GossipBps), ratio(sh.GossipBps, sf.GossipBps))
	if sh.GossipBpsFrom == "iptables" {
		add("gossip packets/s per node (iptables)", f2(sh.GossipPps), f2(sf.GossipPps), ratio(sh.GossipPps, sf.GossipPps))
	}
	add("start of seed to converged mesh (s)", f2(sh.StartToConvergedS), f2(sf.StartToConvergedS), ratio(sh.StartToConvergedS, sf.StartToConvergedS))
	if la := sh.LoadAge; la != nil {
		add("load age p50 / p99 / max (s)", fmt.Sprintf("%s / %s / %s", f2(la.P50), f2(la.P99), f2(la.Max)), "—", "")
		add("  (observer, member) pairs; without load; observer samples unanswered", fmt.Sprintf("%d; %d; %d", la.Pairs, la.Missing, la.Unanswered), "—", "")
		add("  own load's age when read, median (s)", f2(la.SelfP50), "—", "")
	}
	add("gossip payload bytes/s per node (agent counters)", f0(sh.AgentBytesOutPerSec), "—", "")
	add("  of which load gossip (agent counters)", f0(sh.AgentLoadBytesOutPerSec), "—", "")
	return rows
}

// spread is "lo–hi" of xs.
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "n/a"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return f2(lo) + "–" + f2(hi) + "s"
}

// observations are remarks computed from the figures.
func (r *Result) observations() []string {
	var o []string
	sh, sf := r.Shoal, r.Serf
	if sh.AgentBytesOutPerSec > 0 {
		o = append(o, fmt.Sprintf("Shoal's own load gossip is %s of the %s payload bytes/s each Shoal agent sends (%.0f%%); "+
			"the rest is serf/memberlist traffic on the same port.", f0(sh.AgentLoadBytesOutPerSec), f0(sh.AgentBytesOutPerSec),
			100*sh.AgentLoadBytesOutPerSec/sh.AgentBytesOutPerSec))
	}
	if sh.GossipBpsFrom == "iptables" && sf.GossipBps > 0 && sh.GossipBps > 0 {
		o = append(o, fmt.Sprintf("On the wire (iptables), a Shoal node sends %s bytes/s against serf's %s (%s).",
			f0(sh.GossipBps), f0(sf.GossipBps), ratio(sh.GossipBps, sf.GossipBps)))
	}
	var busy float64
	for _, la := range []string{r.Machine.LoadAvg, r.Machine.LoadAvgEnd} {
		if f := strings.Fields(la); len(f) > 0 {
			var x float64
			if _, err := fmt.Sscanf(f[0], "%g", &x); err == nil {
				busy = max(busy, x)
			}
		}
	}
	if busy > float64(r.Machine.NProc) {
		o = append(o, fmt.Sprintf("The machine was busy with other work: the 1-minute load average reached %.1f on %d cores, "+
			"while the %d idle agents together used %.0f%% of one core. Absolute times and CPU figures are noisy; the ratios less so.",
			busy, r.Machine.NProc, 2*r.N, float64(r.N)*(sh.IdleCPU.Mean+sf.IdleCPU.Mean)))
	}
	if sh.Dropped > 0 {
		o = append(o, fmt.Sprintf("Shoal agents counted %d dropped gossip packets in all (sum of gossip.dropped at the end of the idle window).", sh.Dropped))
	}
	return o
}

type verdict struct {
	target, result string
	met            bool
}

func (r *Result) verdicts() []verdict {
	sh, sf := r.Shoal, r.Serf
	var v []verdict
	v = append(v, verdict{"RSS ≤ 25 MB per Shoal agent",
		fmt.Sprintf("max %s MB, mean %s MB", mb(sh.RSS.Max), mb(sh.RSS.Mean)), sh.RSS.Max <= targetRSSBytes})
	v = append(v, verdict{"idle CPU ≤ 0.5% of a core per Shoal agent",
		fmt.Sprintf("max %s%%, mean %s%%", f3(sh.IdleCPU.Max), f3(sh.IdleCPU.Mean)), sh.IdleCPU.Max <= targetIdleCPUPct})
	ds, df := median(trialsAll(sh.Detections)), median(trialsAll(sf.Detections))
	v = append(v, verdict{"failure detection no slower than serf",
		fmt.Sprintf("median %ss vs serf %ss (%s); trials %s vs %s", f2(ds), f2(df), ratio(ds, df),
			spread(trialsAll(sh.Detections)), spread(trialsAll(sf.Detections))), ds <= df})
	cs, cf := median(trialsAll(sh.Joins)), median(trialsAll(sf.Joins))
	v = append(v, verdict{"convergence no slower than serf",
		fmt.Sprintf("median %ss vs serf %ss (%s); trials %s vs %s", f2(cs), f2(cf), ratio(cs, cf),
			spread(trialsAll(sh.Joins)), spread(trialsAll(sf.Joins))), cs <= cf})
	if la := sh.LoadAge; la != nil {
		what := "load age p99 < 2 s"
		if r.N != 30 {
			what += fmt.Sprintf(" (target is for N=30; this run N=%d)", r.N)
		}
		v = append(v, verdict{what, fmt.Sprintf("p99 %ss (p50 %ss, max %ss)", f2(la.P99), f2(la.P50), f2(la.Max)),
			!math.IsNaN(la.P99) && la.P99 < targetLoadAgeP99 && la.Missing == 0})
	}
	return v
}

func (v verdict) word() string {
	if v.met {
		return "met"
	}
	return "MISSED"
}

func (r *Result) header() []string {
	m := r.Machine
	return []string{
		fmt.Sprintf("mesh scenario: N=%d agents per implementation, idle window %.1fs, %d join and %d kill -9 trials each",
			r.N, r.Shoal.IdleSeconds, len(r.Shoal.Joins), len(r.Shoal.Detections)),
		fmt.Sprintf("shoal: %s; serf: %s", r.Shoal.Version, r.Serf.Version),
		fmt.Sprintf("machine: %d cores (%s), %s RAM, Linux %s, %s; loadavg %s at start, %s at end",
			m.NProc, m.CPU, m.MemTotal, m.Kernel, m.GoVersion, m.LoadAvg, m.LoadAvgEnd),
		fmt.Sprintf("gossip bytes measured with: %s", r.Method),
	}
}

// Table is the plain-text report.
func (r *Result) Table() string {
	var b bytes.Buffer
	for _, h := range r.header() {
		fmt.Fprintln(&b, h)
	}
	fmt.Fprintln(&b)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tshoal\tserf\tshoal/serf")
	for _, rw := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rw.label, rw.shoal, rw.serf, rw.ratio)
	}
	tw.Flush()
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "targets (Shoal):")
	for _, v := range r.verdicts() {
		fmt.Fprintf(&b, "  %-7s %s: %s\n", v.word(), v.target, v.result)
	}
	for _, o := range r.observations() {
		fmt.Fprintf(&b, "note: %s\n", o)
	}
	fmt.Fprintf(&b, "run took %.0fs\n", r.Elapsed)
	return b.String()
}

// WriteFile writes JSON for *.json, Markdown otherwise.
func (r *Result) WriteFile(path string) error {
	var data []byte
	if strings.HasSuffix(path, ".json") {
		var err error
		if data, err = json.MarshalIndent(r.jsonSafe(), "", "  "); err != nil {
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

// jsonSafe replaces NaN (not representable in JSON) with -1.
func (r *Result) jsonSafe() *Result {
	c := *r
	fix := func(ir *ImplResult) *ImplResult {
		x := *ir
		for _, p := range []*float64{&x.GossipBps, &x.GossipPps, &x.RSS.Mean, &x.RSS.Max, &x.HWM.Mean, &x.HWM.Max, &x.IdleCPU.Mean, &x.IdleCPU.Max} {
			if math.IsNaN(*p) {
				*p = -1
			}
		}
		if x.LoadAge != nil {
			la := *x.LoadAge
			for _, p := range []*float64{&la.P50, &la.P99, &la.Max, &la.SelfP50} {
				if math.IsNaN(*p) {
					*p = -1
				}
			}
			x.LoadAge = &la
		}
		return &x
	}
	c.Shoal, c.Serf = fix(r.Shoal), fix(r.Serf)
	return &c
}

// Markdown is docs/benchmarks.md.
func (r *Result) Markdown() string {
	var b bytes.Buffer
	m := r.Machine
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("# Benchmarks: Shoal next to stock serf")
	p("")
	p("Generated by `shoal-scenario mesh` on %s. Every figure below comes from that one run; the machine is",
		r.Started.UTC().Format(time.DateOnly))
	p("shared and noisy, so read the Shoal/serf ratios, measured side by side in the same run, before the absolute figures.")
	p("")
	p("Rerun (from the repository root, as root so that iptables accounting is available):")
	p("")
	p("```sh")
	p("%s", r.Command)
	p("```")
	p("")
	p("`-shoal-rev HEAD` builds `./cmd/shoal` from the committed tree (via `git archive`, so work in progress in")
	p("the working tree does not leak in); without it the working tree is built. The stock serf agent is built once")
	p("from the module proxy, at the serf version in `go.mod`, into `.cache/bin/serf-VERSION` and reused. The run")
	p("takes about two minutes at N=30; every agent is killed, the iptables chain removed and the temporary")
	p("directory deleted at the end, also on error or Ctrl-C. `-out results.json` writes the raw figures instead.")
	p("A three-agent smoke run of the same code: `cd tools && SHOAL_SCENARIO=1 go test -run TestScenarioSmoke ./cmd/shoal-scenario`.")
	p("")
	p("## Machine")
	p("")
	p("| | |")
	p("|---|---|")
	p("| nproc | %d |", m.NProc)
	p("| CPU | %s |", m.CPU)
	p("| memory | %s |", m.MemTotal)
	p("| kernel | Linux %s |", m.Kernel)
	p("| Go | %s |", m.GoVersion)
	p("| load average (1, 5, 15 min) | %s at start, %s at end |", m.LoadAvg, m.LoadAvgEnd)
	p("| shoal | %s, `go build ./cmd/shoal`, profile `lan` |", r.Shoal.Version)
	p("| serf | `github.com/hashicorp/serf/cmd/serf`, %s, default (lan) profile |", r.Serf.Version)
	p("| gossip bytes | %s |", r.Method)
	p("| run | N=%d agents per implementation, idle window %.1f s, %d join and %d kill -9 trials each, %.0f s in all |",
		r.N, r.Shoal.IdleSeconds, len(r.Shoal.Joins), len(r.Shoal.Detections), r.Elapsed)
	p("")
	p("## Results")
	p("")
	p("| metric | shoal | serf | shoal/serf |")
	p("|---|---:|---:|---:|")
	for _, rw := range r.rows() {
		label := rw.label
		if strings.HasPrefix(label, "  ") {
			label = "&nbsp;&nbsp;" + strings.TrimSpace(label)
		}
		p("| %s | %s | %s | %s |", label, rw.shoal, rw.serf, rw.ratio)
	}
	p("")
	p("## Targets (Shoal)")
	p("")
	p("| target | result | |")
	p("|---|---|---|")
	for _, v := range r.verdicts() {
		p("| %s | %s | %s |", v.target, v.result, v.word())
	}
	p("")
	if obs := r.observations(); len(obs) > 0 {
		p("## Observations from this run")
		p("")
		for _, o := range obs {
			p("- %s", o)
		}
		p("")
	}
	p("## What each row means")
	p("")
	p("The runner starts N `shoal agent --profile lan` processes on %s.1…N and N stock `serf agent` processes",
		r.Config.ShoalNet)
	p("on %s.1…N, all on gossip port %d, each joined to agent 1 of its own kind. Both meshes run at the same", r.Config.SerfNet, gossipPort)
	p("time. Shoal is asked over its HTTP API (`/v1/members`, `/v1/info`), serf over its RPC port with")
	p("`github.com/hashicorp/serf/client`, one connection per agent, reused. Every wait polls and is bounded.")
	p("")
	p("- **RSS per agent**: `VmRSS` from `/proc/PID/status` of each agent process at the end of the idle window,")
	p("  in MB (10⁶ bytes); mean and max over the N agents. **Peak RSS** is `VmHWM`, the high-water mark since start.")
	p("- **idle CPU per agent**: `utime + stime` from `/proc/PID/stat` over the idle window (%.0f s, after the meshes", r.Shoal.IdleSeconds)
	p("  converged and a %v pause), as %% of one core; mean and max over the N agents. Nothing asks the agents", r.Config.Settle)
	p("  anything during the window. The resolution is one clock tick (1/%.0f s) per agent over the window.", m.ClockTick)
	p("- **convergence**: agent N+1 is started joined to agent 1; from the moment its process starts, every")
	p("  member's member list (the new agent's included) is polled every %v until all list it `alive`. The", r.Config.Poll)
	p("  figure is when the last one did, so it includes the new agent's start-up. Median over the trials.")
	p("- **detection**: one original non-seed agent gets SIGKILL; from just before the signal, every survivor is")
	p("  polled every %v until all list it `failed`. Median over the trials; \"first member\" is when the first", r.Config.Poll)
	p("  survivor did. Trials alternate Shoal and serf so that the machine's noise falls on both alike.")
	p("- **gossip bytes/s per node**: bytes of packets between agents during the idle window, divided by N and by")
	p("  the window. With iptables, a chain of counting rules, jumped to from `OUTPUT -o lo`, counts every")
	p("  packet to or from port %d on each implementation's /24 once (UDP gossip and TCP push-pull; IP bytes,", gossipPort)
	p("  headers included; the HTTP API and serf's RPC do not match). This is what each node sends per second.")
	p("  The chain is created for the run and deleted after it. Without iptables the Shoal figure falls back to")
	p("  the agent's own payload counters and serf's is n/a.")
	p("- **start of seed to converged mesh**: from starting agent 1 until all N list all N alive (the agents are")
	p("  started one after another; start-up cost is included).")
	p("- **load age** (Shoal only): after the idle window, %d rounds over %v, every agent's `/v1/members` is read;", r.Config.LoadRounds, r.Config.LoadWindow)
	p("  `load_age_seconds` (now minus the time the member published that load) of every alive member other than")
	p("  the observer itself is pooled, and p50/p99/max taken (nearest rank). \"without load\" counts pairs where")
	p("  the observer held no load for the member at all. \"own load's age\" is the age each agent reports for")
	p("  its own load: how old a sample already is before any gossip.")
	p("- **gossip payload bytes/s per node (agent counters)**: the sum over agents of `gossip.bytes_out` from")
	p("  `/v1/info` over the idle window, per node and second (payload only, no IP/UDP headers), and the part of")
	p("  it that is Shoal's own load gossip (`load_bytes_out`).")
	p("")
	p("Raw figures (per agent, per trial) are in the JSON output: `-out results.json`.")
	return b.String()
}
