package main

// The footprint scenario: several Shoal binaries (builds, commits, profiles,
// mesh sizes) and the stock serf agent, each as a mesh of its own, all
// running side by side on one machine, measured at the same moment the same
// way. It answers "what does an agent cost on its host" as ratios to serf
// taken in one run, which a shared, noisy machine allows where absolute
// figures from separate runs do not.
//
//	go run ./cmd/shoal-scenario footprint -n 30 \
//	    -variant before=../.cache/bin/shoal-old -variant after=../.cache/bin/shoal-new
//	go run ./cmd/shoal-scenario footprint -no-serf \
//	    -variant p10=BIN:p2p:10 -variant p30=BIN:p2p:30 -variant p60=BIN:p2p:60

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoalmesh/shoal/tools/internal/procs"
)

// Variant is one mesh of the footprint scenario.
type Variant struct {
	Name    string `json:"name"`
	Bin     string `json:"binary"`
	Profile string `json:"profile"` // lan, p2p, ... ("serf" for the serf mesh)
	N       int    `json:"n"`
	// Env is added to the agents' environment (GOGC=100, ...).
	Env []string `json:"env,omitempty"`
	// BinBytes is the binary's size on disk.
	BinBytes int64  `json:"binary_bytes"`
	Version  string `json:"version"`
	Net      string `json:"net"`

	StartToConvergedS float64 `json:"start_to_converged_seconds"`
	// Per agent at the end of the idle window (see ProfileResult).
	RSSBytes    []float64 `json:"rss_bytes"`
	HWMBytes    []float64 `json:"hwm_bytes"`
	AnonBytes   []float64 `json:"rss_anon_bytes"`
	FileBytes   []float64 `json:"rss_file_bytes"`
	PSSBytes    []float64 `json:"pss_bytes"`
	Threads     []float64 `json:"threads"`
	HeapInuse   []float64 `json:"go_heap_inuse_bytes,omitempty"`
	StackInuse  []float64 `json:"go_stack_inuse_bytes,omitempty"`
	GoSys       []float64 `json:"go_sys_bytes,omitempty"`
	Goroutines  []float64 `json:"goroutines,omitempty"`
	IdleCPUPct  []float64 `json:"idle_cpu_pct"`
	IdleSeconds float64   `json:"idle_seconds"`
}

// FootprintResult is one run of the footprint scenario.
type FootprintResult struct {
	Command  string     `json:"command"`
	Started  time.Time  `json:"started"`
	Elapsed  float64    `json:"elapsed_seconds"`
	Machine  Machine    `json:"machine"`
	Settle   float64    `json:"settle_seconds"`
	Variants []*Variant `json:"variants"`
	Serf     *Variant   `json:"serf,omitempty"`
}

// FootprintConfig sets up the footprint scenario.
type FootprintConfig struct {
	Config
	Variants []Variant
	NoSerf   bool
}

// parseVariant reads NAME=BIN[:PROFILE[:N]].
func parseVariant(s string, defN int) (Variant, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return Variant{}, fmt.Errorf("-variant %q: want NAME=BINARY[:PROFILE[:N]]", s)
	}
	if strings.ContainsAny(name, " /") {
		return Variant{}, fmt.Errorf("-variant %q: the name %q may not hold spaces or slashes", s, name)
	}
	f := strings.Split(rest, ":")
	v := Variant{Name: name, Bin: f[0], Profile: "lan", N: defN}
	if len(f) > 3 {
		return Variant{}, fmt.Errorf("-variant %q: want NAME=BINARY[:PROFILE[:N]]", s)
	}
	if len(f) > 1 && f[1] != "" {
		v.Profile = f[1]
	}
	if len(f) > 2 {
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 2 || n > 250 {
			return Variant{}, fmt.Errorf("-variant %q: N %q: want 2 to 250 agents", s, f[2])
		}
		v.N = n
	}
	return v, nil
}

type variantFlag struct{ raw []string }

type envFlag struct{ raw []string }

func (f *envFlag) String() string { return strings.Join(f.raw, " ") }
func (f *envFlag) Set(s string) error {
	name, kv, ok := strings.Cut(s, ":")
	if k, _, ok2 := strings.Cut(kv, "="); !ok || !ok2 || name == "" || k == "" {
		return fmt.Errorf("-env %q: want NAME:KEY=VALUE", s)
	}
	f.raw = append(f.raw, s)
	return nil
}

func (f *variantFlag) String() string { return strings.Join(f.raw, " ") }
func (f *variantFlag) Set(s string) error {
	f.raw = append(f.raw, s)
	return nil
}

func runFootprintCmd(args []string, stdout, stderr io.Writer) int {
	cfg := FootprintConfig{Config: DefaultConfig()}
	cfg.Settle, cfg.Idle = 10*time.Second, 30*time.Second
	vf, ef := &variantFlag{}, &envFlag{}
	fs := flag.NewFlagSet("footprint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.N, "n", cfg.N, "agents per mesh (a variant may set its own)")
	fs.Var(vf, "variant", "NAME=BINARY[:PROFILE[:N]]: a mesh of N agents of BINARY on --profile PROFILE (lan); repeatable")
	fs.Var(ef, "env", "NAME:KEY=VALUE: add KEY=VALUE to the environment of variant NAME's agents (GOGC=100); repeatable")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "pause after every mesh converged, before the idle window")
	fs.DurationVar(&cfg.Idle, "idle", cfg.Idle, "idle window for CPU; memory is read at its end")
	fs.DurationVar(&cfg.Poll, "poll", cfg.Poll, "interval between polls of one member's member list")
	fs.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "bound on every wait (start, convergence)")
	fs.StringVar(&cfg.SerfBin, "serf-bin", "", "use this serf binary instead of building it from the module proxy")
	fs.BoolVar(&cfg.NoSerf, "no-serf", false, "no serf mesh (ratios are then not reported)")
	fs.StringVar(&cfg.Out, "out", "", "also write the results here: *.json as JSON, anything else as Markdown")
	return runScenario(fs, args, stdout, stderr, &cfg.Command, &cfg.Log, func(ctx context.Context) (report, error) {
		for _, s := range vf.raw {
			v, err := parseVariant(s, cfg.N)
			if err != nil {
				return nil, err
			}
			cfg.Variants = append(cfg.Variants, v)
		}
		for _, e := range ef.raw {
			name, kv, _ := strings.Cut(e, ":")
			i := slices.IndexFunc(cfg.Variants, func(v Variant) bool { return v.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("-env %q: no -variant named %q", e, name)
			}
			cfg.Variants[i].Env = append(cfg.Variants[i].Env, kv)
		}
		return RunFootprint(ctx, cfg)
	}, &cfg.Out)
}

func (c *FootprintConfig) check() error {
	if len(c.Variants) == 0 {
		return errors.New("no -variant given: name at least one shoal binary (NAME=BINARY[:PROFILE[:N]])")
	}
	if len(c.Variants) > 20 {
		return fmt.Errorf("%d variants: at most 20", len(c.Variants))
	}
	seen := map[string]bool{"serf": true}
	for _, v := range c.Variants {
		if seen[v.Name] {
			return fmt.Errorf("-variant name %q used twice (or is \"serf\")", v.Name)
		}
		seen[v.Name] = true
		if st, err := os.Stat(v.Bin); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("-variant %s: binary %q: not a file (%v)", v.Name, v.Bin, err)
		}
	}
	if c.N < 2 || c.N > 250 {
		return fmt.Errorf("-n %d: want 2 to 250 agents", c.N)
	}
	if c.Idle <= 0 || c.Settle < 0 || c.Poll <= 0 || c.Timeout <= 0 {
		return errors.New("-idle, -poll and -timeout must be positive, -settle not negative")
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	return nil
}

// RunFootprint runs the footprint scenario. Every process it starts is
// killed and the temporary directory deleted before it returns.
func RunFootprint(ctx context.Context, cfg FootprintConfig) (res *FootprintResult, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	logf := cfg.Log
	res = &FootprintResult{Command: cfg.Command, Started: time.Now(), Machine: machine(), Settle: cfg.Settle.Seconds()}
	var keyb [32]byte
	if _, err := rand.Read(keyb[:]); err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(keyb[:])
	ps, err := newProcSet("shoal-scenario-footprint-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := ps.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if res != nil { // nil when an error returned early
			res.Machine.LoadAvgEnd = loadavg()
			res.Elapsed = time.Since(res.Started).Seconds()
		}
	}()

	var impls []impl
	for i := range cfg.Variants {
		v := cfg.Variants[i]
		v.Net = fmt.Sprintf("127.0.%d", 70+i)
		if st, err := os.Stat(v.Bin); err == nil {
			v.BinBytes = st.Size()
		}
		v.Version = binVersion(v.Bin, "version")
		im := &shoalImpl{bin: v.Bin, net: v.Net, poll: cfg.Poll, name: v.Name, profile: v.Profile, env: v.Env}
		if v.Profile == "p2p" {
			im.key = key
		}
		res.Variants = append(res.Variants, &v)
		impls = append(impls, im)
	}
	if !cfg.NoSerf {
		serfBin := cfg.SerfBin
		if serfBin == "" {
			root, err := procs.RepoRoot()
			if err != nil {
				return nil, err
			}
			ver, err := serfVersion(ctx, root)
			if err != nil {
				return nil, err
			}
			if serfBin, err = buildSerf(ctx, root, ver, logf); err != nil {
				return nil, err
			}
		}
		res.Serf = &Variant{Name: "serf", Bin: serfBin, Profile: "serf", N: cfg.N, Net: "127.0.69", Version: binVersion(serfBin, "version")}
		if st, err := os.Stat(serfBin); err == nil {
			res.Serf.BinBytes = st.Size()
		}
		impls = append(impls, &serfImpl{bin: serfBin, net: res.Serf.Net, poll: cfg.Poll})
	}
	all := append([]*Variant(nil), res.Variants...)
	if res.Serf != nil {
		all = append(all, res.Serf)
	}

	// One mesh after another, each waited for until converged.
	meshes := make([][]*agentProc, len(all))
	for i, im := range impls {
		c := cfg.Config
		c.N = all[i].N
		agents, secs, err := startConverged(ctx, ps, im, c)
		if err != nil {
			return res, err
		}
		meshes[i], all[i].StartToConvergedS = agents, secs
	}
	logf("settling for %v", cfg.Settle)
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return res, err
	}

	// Idle window over every mesh at once: CPU from /proc, nothing asks
	// the agents anything; then memory from /proc, then the Go runtime's
	// figures from /metrics (asking allocates in the agent).
	cpu0 := make([][]uint64, len(meshes))
	for i, m := range meshes {
		for _, a := range m {
			c, err := readCPUTicks(a.PID)
			if err != nil {
				return res, fmt.Errorf("%s: %w", a.Name, err)
			}
			cpu0[i] = append(cpu0[i], c)
		}
	}
	t0 := time.Now()
	logf("idle window: %v, %d meshes side by side", cfg.Idle, len(meshes))
	if err := sleepCtx(ctx, cfg.Idle); err != nil {
		return res, err
	}
	secs := time.Since(t0).Seconds()
	for i, m := range meshes {
		v := all[i]
		v.IdleSeconds = secs
		for j, a := range m {
			if a.Exited() {
				return res, a.ExitError()
			}
			c1, err := readCPUTicks(a.PID)
			if err != nil {
				return res, fmt.Errorf("%s: %w", a.Name, err)
			}
			pm, err := readProcMem(a.PID)
			if err != nil {
				return res, fmt.Errorf("%s: %w", a.Name, err)
			}
			v.IdleCPUPct = append(v.IdleCPUPct, float64(c1-cpu0[i][j])/res.Machine.ClockTick/secs*100)
			v.RSSBytes = append(v.RSSBytes, pm.rss)
			v.HWMBytes = append(v.HWMBytes, pm.hwm)
			v.AnonBytes = append(v.AnonBytes, pm.anon)
			v.FileBytes = append(v.FileBytes, pm.file)
			v.PSSBytes = append(v.PSSBytes, pm.pss)
			v.Threads = append(v.Threads, pm.threads)
		}
	}
	for i, m := range meshes {
		v := all[i]
		if v.Profile == "serf" {
			continue
		}
		for _, a := range m {
			// A busy machine may keep an agent from answering in time:
			// retry, and leave its Go figures out rather than the run.
			var gm map[string]float64
			for try := 0; try < 3 && gm == nil; try++ {
				if gm, err = scrapeGoMem(ctx, fmt.Sprintf("%s:%d", a.IP, shoalHTTPPort)); err != nil {
					logf("%s: /metrics: %v", a.Name, err)
				}
			}
			if gm == nil {
				continue
			}
			v.HeapInuse = append(v.HeapInuse, gm["go_memstats_heap_inuse_bytes"])
			v.StackInuse = append(v.StackInuse, gm["go_memstats_stack_inuse_bytes"])
			v.GoSys = append(v.GoSys, gm["go_memstats_sys_bytes"])
			v.Goroutines = append(v.Goroutines, gm["go_goroutines"])
		}
	}
	for _, v := range all {
		logf("%s: RSS median %s MB (anon %s, file %s), idle CPU mean %s%%", v.Name, mb(median(v.RSSBytes)),
			mb(median(v.AnonBytes)), mb(median(v.FileBytes)), f3(mean(v.IdleCPUPct)))
	}
	return res, nil
}

func mean(xs []float64) float64 { return summarize(xs).Mean }

func mib(b float64) string {
	if b <= 0 || math.IsNaN(b) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", b/(1<<20))
}

// perPeer is the slope of median RSS over mesh size between variants of
// the same binary and profile: what one more peer costs, in bytes.
type perPeer struct {
	bin, profile string
	points       [][2]float64 // n, median RSS
	anon         [][2]float64 // n, median RssAnon
}

func (r *FootprintResult) perPeer() []perPeer {
	byKey := map[string]*perPeer{}
	var order []string
	for _, v := range r.Variants {
		k := v.Bin + "\x00" + v.Profile
		p := byKey[k]
		if p == nil {
			p = &perPeer{bin: v.Bin, profile: v.Profile}
			byKey[k] = p
			order = append(order, k)
		}
		p.points = append(p.points, [2]float64{float64(v.N), median(v.RSSBytes)})
		p.anon = append(p.anon, [2]float64{float64(v.N), median(v.AnonBytes)})
	}
	var out []perPeer
	for _, k := range order {
		p := byKey[k]
		ns := map[float64]bool{}
		for _, pt := range p.points {
			ns[pt[0]] = true
		}
		if len(ns) < 2 {
			continue
		}
		sort.Slice(p.points, func(i, j int) bool { return p.points[i][0] < p.points[j][0] })
		sort.Slice(p.anon, func(i, j int) bool { return p.anon[i][0] < p.anon[j][0] })
		out = append(out, *p)
	}
	return out
}

// slope is the least-squares slope of y over x.
func slope(pts [][2]float64) float64 {
	var sx, sy, sxx, sxy float64
	n := float64(len(pts))
	for _, p := range pts {
		sx += p[0]
		sy += p[1]
		sxx += p[0] * p[0]
		sxy += p[0] * p[1]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return math.NaN()
	}
	return (n*sxy - sx*sy) / d
}

type fpRow struct{ cells []string }

func (r *FootprintResult) header() []string {
	m := r.Machine
	var vs []string
	for _, v := range r.Variants {
		env := ""
		if len(v.Env) > 0 {
			env = ", env " + strings.Join(v.Env, " ")
		}
		vs = append(vs, fmt.Sprintf("%s = %s (%s MiB) --profile %s, N=%d%s", v.Name, v.Bin, mib(float64(v.BinBytes)), v.Profile, v.N, env))
	}
	if r.Serf != nil {
		vs = append(vs, fmt.Sprintf("serf = %s (%s MiB), N=%d", r.Serf.Bin, mib(float64(r.Serf.BinBytes)), r.Serf.N))
	}
	h := []string{fmt.Sprintf("footprint scenario: %d meshes side by side, settle %.0fs, idle window %.1fs", len(vs), r.Settle, r.idle())}
	h = append(h, vs...)
	h = append(h, fmt.Sprintf("machine: %d cores (%s), %s RAM, Linux %s, %s; loadavg %s at start, %s at end",
		m.NProc, m.CPU, m.MemTotal, m.Kernel, m.GoVersion, m.LoadAvg, m.LoadAvgEnd))
	return h
}

func (r *FootprintResult) idle() float64 {
	if len(r.Variants) > 0 {
		return r.Variants[0].IdleSeconds
	}
	return math.NaN()
}

func (r *FootprintResult) columns() []*Variant {
	cols := append([]*Variant(nil), r.Variants...)
	if r.Serf != nil {
		cols = append(cols, r.Serf)
	}
	return cols
}

func (r *FootprintResult) rows() (head []string, rows []fpRow) {
	cols := r.columns()
	head = []string{"metric"}
	for _, v := range cols {
		head = append(head, v.Name)
	}
	add := func(label string, f func(v *Variant) string) {
		rw := fpRow{cells: []string{label}}
		for _, v := range cols {
			rw.cells = append(rw.cells, f(v))
		}
		rows = append(rows, rw)
	}
	orNA := func(xs []float64, f func([]float64) float64, format func(float64) string) string {
		if len(xs) == 0 {
			return "—"
		}
		return format(f(xs))
	}
	add("agents (N), profile", func(v *Variant) string { return fmt.Sprintf("%d, %s", v.N, v.Profile) })
	add("binary (MiB)", func(v *Variant) string { return mib(float64(v.BinBytes)) })
	add("RSS per agent, median (MB)", func(v *Variant) string { return orNA(v.RSSBytes, median, mb) })
	add("RSS per agent, max (MB)", func(v *Variant) string { return orNA(v.RSSBytes, maxOf, mb) })
	if r.Serf != nil {
		s := median(r.Serf.RSSBytes)
		add("RSS median / serf's", func(v *Variant) string { return ratio(median(v.RSSBytes), s) })
	}
	add("  anonymous (RssAnon), median (MB)", func(v *Variant) string { return orNA(v.AnonBytes, median, mb) })
	add("  file-backed (RssFile), median (MB)", func(v *Variant) string { return orNA(v.FileBytes, median, mb) })
	add("PSS, median (MB)", func(v *Variant) string { return orNA(v.PSSBytes, median, mb) })
	add("peak RSS (VmHWM), max (MB)", func(v *Variant) string { return orNA(v.HWMBytes, maxOf, mb) })
	add("Go heap in use, median (MB)", func(v *Variant) string { return orNA(v.HeapInuse, median, mb) })
	add("Go stacks in use, median (MB)", func(v *Variant) string { return orNA(v.StackInuse, median, mb) })
	add("Go runtime sys, median (MB)", func(v *Variant) string { return orNA(v.GoSys, median, mb) })
	add("goroutines, median", func(v *Variant) string { return orNA(v.Goroutines, median, f0) })
	add("OS threads, median", func(v *Variant) string { return orNA(v.Threads, median, f0) })
	add("idle CPU per agent, mean (% of a core)", func(v *Variant) string { return orNA(v.IdleCPUPct, mean, f3) })
	add("idle CPU per agent, median (% of a core)", func(v *Variant) string { return orNA(v.IdleCPUPct, median, f3) })
	if r.Serf != nil {
		s := mean(r.Serf.IdleCPUPct)
		add("idle CPU mean / serf's", func(v *Variant) string { return ratio(mean(v.IdleCPUPct), s) })
	}
	add("start of seed to converged (s)", func(v *Variant) string { return f2(v.StartToConvergedS) })
	return head, rows
}

func (r *FootprintResult) notes() []string {
	var out []string
	for _, p := range r.perPeer() {
		var ns []string
		for _, pt := range p.points {
			ns = append(ns, f0(pt[0]))
		}
		out = append(out, fmt.Sprintf("per additional peer (%s, --profile %s, N = %s): RSS %+.0f KB, RssAnon %+.0f KB (least-squares slope of the medians)",
			filepath.Base(p.bin), p.profile, strings.Join(ns, ", "), slope(p.points)/1e3, slope(p.anon)/1e3))
	}
	return out
}

// Table is the plain-text report.
func (r *FootprintResult) Table() string {
	var b bytes.Buffer
	for _, h := range r.header() {
		fmt.Fprintln(&b, h)
	}
	fmt.Fprintln(&b)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	head, rows := r.rows()
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, rw := range rows {
		fmt.Fprintln(tw, strings.Join(rw.cells, "\t")+"\t")
	}
	tw.Flush()
	for _, n := range r.notes() {
		fmt.Fprintln(&b, n)
	}
	fmt.Fprintf(&b, "run took %.0fs\n", r.Elapsed)
	return b.String()
}

// Markdown is a section for docs/benchmarks.md.
func (r *FootprintResult) Markdown() string {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("Generated by `shoal-scenario footprint` on %s; every figure below comes from that one run.", r.Started.UTC().Format(time.DateOnly))
	p("")
	p("```sh")
	p("%s", r.Command)
	p("```")
	p("")
	for _, h := range r.header() {
		p("- %s", h)
	}
	p("")
	head, rows := r.rows()
	p("| %s |", strings.Join(head, " | "))
	p("|---%s|", strings.Repeat("|---:", len(head)-1))
	for _, rw := range rows {
		c := append([]string(nil), rw.cells...)
		if strings.HasPrefix(c[0], "  ") {
			c[0] = "&nbsp;&nbsp;" + strings.TrimSpace(c[0])
		}
		p("| %s |", strings.Join(c, " | "))
	}
	p("")
	for _, n := range r.notes() {
		p("- %s", n)
	}
	return b.String()
}

// WriteFile writes JSON for *.json, the Markdown section otherwise.
func (r *FootprintResult) WriteFile(path string) error {
	var data []byte
	if strings.HasSuffix(path, ".json") {
		c := *r
		fix := func(v *Variant) *Variant {
			if v == nil {
				return nil
			}
			x := *v
			pss := append([]float64(nil), x.PSSBytes...)
			for i := range pss {
				if math.IsNaN(pss[i]) {
					pss[i] = -1
				}
			}
			x.PSSBytes = pss
			return &x
		}
		c.Variants = nil
		for _, v := range r.Variants {
			c.Variants = append(c.Variants, fix(v))
		}
		c.Serf = fix(r.Serf)
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
