package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/tools/internal/procs"
)

// proc is one agent or raft voter process.
type proc struct {
	*procs.Proc
	ip string
}

// start starts a node in a fresh directory of its own under g.Dir (no
// snapshot or state from an earlier round), its log in there, without the
// runner's SHOAL_* variables in its environment.
func start(g *procs.Group, name, ip string, argv []string) (*proc, error) {
	dir := filepath.Join(g.Dir, name)
	_ = os.RemoveAll(dir)
	p, err := g.Start(procs.Spec{Name: name, Argv: argv, Dir: dir, Env: procs.EnvWithout("SHOAL_"), Log: filepath.Join(dir, "log")})
	if err != nil {
		return nil, err
	}
	return &proc{Proc: p, ip: ip}, nil
}

// view is what one node says about the coordinator, and (Shoal) whether it
// marks a given member failed.
type view struct {
	coord  string
	term   uint64
	failed bool
	// at is when the node gave this answer: the midpoint of the request
	// for the coordinator (not the end of the poll, which would count the
	// poll's own round trips as failover time).
	at time.Time
}

// failedEvery: the survivors' member lists (Shoal's failure detection, some
// 10 s after the kill) are asked for every this many polls, so that the
// pollers of a hundred survivors load the machine less while the election
// is timed.
const failedEvery = 4

// impl is one implementation under test.
type impl interface {
	name() string
	// start brings up a mesh of n and returns its nodes once a
	// coordinator is established and named by all.
	start(ctx context.Context, g *procs.Group, n int) ([]*proc, error)
	// ask returns p's view; victim is the member whose failure to report.
	ask(ctx context.Context, p *proc, victim string) (view, error)
}

var hc = &http.Client{Timeout: 2 * time.Second}

func getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// waitAgree polls every node until all name one coordinator under one term
// with ok(coord, term) true; it returns that coordinator and term.
func waitAgree(ctx context.Context, im impl, nodes []*proc, cfg Config, ok func(string, uint64) bool) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var last string
	for {
		coord, term, agree := "", uint64(0), true
		for _, p := range nodes {
			if p.Exited() {
				return "", 0, p.ExitError()
			}
			v, err := im.ask(ctx, p, "")
			if err != nil {
				last, agree = err.Error(), false
				break
			}
			if coord == "" {
				coord, term = v.coord, v.term
			}
			if v.coord == "" || v.coord != coord || v.term != term || !ok(v.coord, v.term) {
				last, agree = fmt.Sprintf("%s names %q/%d", p.Name, v.coord, v.term), false
				break
			}
		}
		if agree {
			return coord, term, nil
		}
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("%s: no agreement within %v: %s", im.name(), cfg.Timeout, last)
		case <-time.After(cfg.Poll):
		}
	}
}

// Trial is one kill -9 of a coordinator.
type Trial struct {
	Impl      string  `json:"impl"`
	N         int     `json:"n"`
	Alive     int     `json:"alive"` // survivors
	Victim    string  `json:"victim"`
	OldTerm   uint64  `json:"old_term"`
	New       string  `json:"new"`
	NewTerm   uint64  `json:"new_term"`
	Failover  float64 `json:"failover_s"`  // kill to every survivor naming New
	Detection float64 `json:"detection_s"` // kill to every survivor marking the victim failed (Shoal)
	FirstName float64 `json:"first_name_s"`
	// Messages is how many election messages (claims, answers, promises,
	// refusals) the survivors sent from the kill to the agreement, and
	// LeaseMsgs how many lease renewals and grants (Shoal; -1 for raft).
	Messages, LeaseMsgs int64
}

// counter is implemented by an impl that can count its election messages.
type counter interface {
	messages(ctx context.Context, ps []*proc) (election, lease int64, err error)
}

// killTrial kills the coordinator victim and measures, per survivor, when it
// first named the final new coordinator and when it marked the victim failed.
func killTrial(ctx context.Context, im impl, victim *proc, survivors []*proc, oldTerm uint64, cfg Config) (Trial, error) {
	tr := Trial{Impl: im.name(), Alive: len(survivors), Victim: victim.Name, OldTerm: oldTerm, Detection: -1}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	type obs struct {
		v        view
		since    time.Duration // when v.coord/v.term was first seen
		detected time.Duration
	}
	var mu sync.Mutex
	state := make([]obs, len(survivors))
	tr.Messages, tr.LeaseMsgs = -1, -1
	cnt, counts := im.(counter)
	var msgs0, lease0 int64
	if counts {
		var err error
		if msgs0, lease0, err = cnt.messages(ctx, survivors); err != nil {
			return tr, err
		}
	}
	t0 := time.Now()
	if err := victim.Kill(); err != nil {
		return tr, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range survivors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				who := ""
				if k%failedEvery == 0 {
					who = victim.Name
				}
				v, err := im.ask(ctx, p, who)
				at := v.at.Sub(t0)
				if err == nil {
					mu.Lock()
					s := &state[i]
					if v.coord != s.v.coord || v.term != s.v.term {
						s.v.coord, s.v.term, s.since = v.coord, v.term, at
					}
					if v.failed && s.detected == 0 {
						s.detected = at
					}
					mu.Unlock()
				}
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-time.After(cfg.Poll):
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	wantDetect := im.name() == "shoal"
	for {
		mu.Lock()
		agreed, detected := true, true
		var newest time.Duration
		var maxDet time.Duration
		first := time.Duration(-1)
		c, term := state[0].v.coord, state[0].v.term
		for _, s := range state {
			if s.v.coord == "" || s.v.coord == victim.Name || s.v.coord != c || s.v.term != term || s.v.term <= oldTerm {
				agreed = false
			}
			newest = max(newest, s.since)
			if first < 0 || s.since < first {
				first = s.since
			}
			if s.detected == 0 {
				detected = false
			}
			maxDet = max(maxDet, s.detected)
		}
		mu.Unlock()
		if agreed && tr.New == "" {
			tr.New, tr.NewTerm, tr.Failover, tr.FirstName = c, term, newest.Seconds(), first.Seconds()
			if counts {
				// Read at once when all agree (before waiting for the
				// failure detector below, whose time would add renewals).
				m, l, err := cnt.messages(ctx, survivors)
				if err != nil {
					return tr, err
				}
				tr.Messages, tr.LeaseMsgs = m-msgs0, l-lease0
				counts = false
			}
		}
		if !agreed {
			tr.New = ""
			counts = cnt != nil
		}
		if agreed && (detected || !wantDetect) {
			tr.New, tr.NewTerm, tr.Failover, tr.FirstName = c, term, newest.Seconds(), first.Seconds()
			if wantDetect {
				tr.Detection = maxDet.Seconds()
			}
			return tr, nil
		}
		select {
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			var views []string
			for i, s := range state {
				views = append(views, fmt.Sprintf("%s: %q/%d failed-seen=%v", survivors[i].Name, s.v.coord, s.v.term, s.detected > 0))
			}
			return tr, fmt.Errorf("%s: after killing %s, no agreement within %v: %s", im.name(), victim.Name, cfg.Timeout, strings.Join(views, "; "))
		case <-time.After(cfg.Poll):
		}
	}
}

// Result is a whole run.
type Result struct {
	Command  string
	Started  time.Time
	Elapsed  time.Duration
	Machine  string
	LoadAvg  [2]string
	ShoalRev string
	Profile  string
	Trials   []Trial
}

// Run measures every size with both implementations.
func Run(ctx context.Context, cfg Config, command string) (*Result, error) {
	res := &Result{Command: command, Started: time.Now(), Profile: cfg.Profile}
	res.LoadAvg[0] = loadavg()
	res.Machine = fmt.Sprintf("%d CPUs (%s), %s, %s", runtime.NumCPU(), cpuModel(), runtime.Version(), kernel())
	g, err := procs.NewGroup("shoal-failover-")
	if err != nil {
		return nil, err
	}
	if cfg.Keep {
		defer func() {
			_ = g.KillAll()
			cfg.Log("kept %s (agents' logs: */log)", g.Dir)
		}()
	} else {
		defer g.Close()
	}

	var impls []impl
	if cfg.Skip != "shoal" {
		bin := cfg.ShoalBin
		if bin == "" {
			var err error
			if bin, res.ShoalRev, err = buildShoal(ctx, g.Dir, cfg.ShoalRev, cfg.Log); err != nil {
				return nil, err
			}
		} else {
			res.ShoalRev = "prebuilt " + bin
		}
		impls = append(impls, &shoalImpl{bin: bin, profile: cfg.Profile, poll: cfg.Poll, cfg: cfg})
	}
	if cfg.Skip != "raft" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		impls = append(impls, &raftImpl{bin: self, cfg: cfg})
	}
	for _, n := range cfg.Sizes {
		kills := min(cfg.Kills, (n-1)/2)
		for round := 1; round <= cfg.Rounds; round++ {
			for _, im := range impls {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				cfg.Log("%s N=%d round %d: starting", im.name(), n, round)
				nodes, err := im.start(ctx, g, n)
				if err != nil {
					return nil, err
				}
				coord, term, err := waitAgree(ctx, im, nodes, cfg, func(string, uint64) bool { return true })
				if err != nil {
					return nil, err
				}
				alive := nodes
				for k := 0; k < kills; k++ {
					i := slices.IndexFunc(alive, func(p *proc) bool { return p.Name == coord })
					if i < 0 {
						return nil, fmt.Errorf("%s: coordinator %q is not a running node", im.name(), coord)
					}
					victim := alive[i]
					alive = slices.Delete(slices.Clone(alive), i, i+1)
					tr, err := killTrial(ctx, im, victim, alive, term, cfg)
					if err != nil {
						return nil, err
					}
					tr.N = n
					det := ""
					if tr.Detection >= 0 {
						det = fmt.Sprintf("; all mark it failed after %.2fs", tr.Detection)
					}
					cfg.Log("%s N=%d: killed %s (term %d): all %d survivors name %s (term %d) after %.2fs%s",
						im.name(), n, tr.Victim, tr.OldTerm, tr.Alive, tr.New, tr.NewTerm, tr.Failover, det)
					res.Trials = append(res.Trials, tr)
					coord, term = tr.New, tr.NewTerm
				}
				if err := g.KillAll(); err != nil {
					cfg.Log("%v", err)
				}
			}
		}
	}
	res.Elapsed = time.Since(res.Started)
	res.LoadAvg[1] = loadavg()
	return res, nil
}

// buildShoal builds ./cmd/shoal as committed at rev (once per commit, into
// the repository's .cache/bin, so work in progress in the working tree does
// not leak in), or the working tree into tmp when rev is "".
func buildShoal(ctx context.Context, tmp, rev string, logf func(string, ...any)) (bin, desc string, err error) {
	root, err := procs.RepoRoot()
	if err != nil {
		return "", "", err
	}
	if rev != "" {
		bin, hash, err := procs.BuildShoalAt(ctx, root, rev, logf)
		if err != nil {
			return "", "", err
		}
		return bin, fmt.Sprintf("%s (committed tree of %s)", hash, rev), nil
	}
	desc = "working tree"
	logf("building shoal from %s", desc)
	bin = filepath.Join(tmp, "shoal")
	if err := procs.BuildShoal(ctx, root, bin); err != nil {
		return "", "", err
	}
	return bin, desc, nil
}

// shoalImpl runs `shoal agent` processes and asks them over the HTTP API.
type shoalImpl struct {
	bin, profile string
	poll         time.Duration
	cfg          Config
}

func (s *shoalImpl) name() string { return "shoal" }

func (s *shoalImpl) start(ctx context.Context, g *procs.Group, n int) ([]*proc, error) {
	var nodes []*proc
	for i := 1; i <= n; i++ {
		ip := fmt.Sprintf("127.0.30.%d", i)
		name := fmt.Sprintf("shoal-%02d", i)
		argv := []string{s.bin, "agent", "--node", name, "--bind", ip + ":7946", "--http-addr", ip + ":7950",
			"--profile", s.profile, "--priority", strconv.Itoa(i), "--data-dir", filepath.Join(g.Dir, name, "data"),
			"--log-level", s.cfg.LogLevel, "--leave-on-terminate=false"}
		if i > 1 {
			argv = append(argv, "--join", "127.0.30.1:7946", "--retry-join", "--retry-max", "10")
		}
		p, err := start(g, name, ip, argv)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, p)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	watch := make([]*procs.Proc, len(nodes))
	for i, p := range nodes {
		watch[i] = p.Proc
	}
	err := procs.Until(wctx, 100*time.Millisecond, func() error {
		for _, p := range nodes {
			ms, err := client.New(p.ip+":7950", "").Members(wctx, client.MemberFilter{Status: "alive"})
			if err != nil || len(ms) != n {
				return fmt.Errorf("%s: %d alive, %v", p.Name, len(ms), err)
			}
		}
		return nil
	}, watch...)
	var nr *procs.NotReadyError
	if errors.As(err, &nr) {
		return nil, fmt.Errorf("shoal mesh of %d did not converge within %v: %v", n, s.cfg.Timeout, nr.Last)
	}
	if err != nil {
		return nil, err
	}
	// The election is lazy: ask for a coordinator once.
	if _, err := client.New(nodes[0].ip+":7950", "").Elect(wctx); err != nil {
		return nil, err
	}
	return nodes, nil
}

// messages sums the election messages the agents sent, from /metrics.
func (s *shoalImpl) messages(ctx context.Context, ps []*proc) (election, lease int64, err error) {
	for _, p := range ps {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.ip+":7950/metrics", nil)
		if err != nil {
			return 0, 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, fmt.Errorf("%s /metrics: %w", p.Name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			rest, ok := strings.CutPrefix(l, `shoal_election_messages_sent_total{type="`)
			if !ok {
				continue
			}
			typ, val, _ := strings.Cut(rest, `"} `)
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return 0, 0, fmt.Errorf("%s /metrics: %q: %w", p.Name, l, err)
			}
			if typ == "lease" {
				lease += int64(v)
			} else {
				election += int64(v)
			}
		}
	}
	return election, lease, nil
}

func (s *shoalImpl) ask(ctx context.Context, p *proc, victim string) (view, error) {
	c := client.New(p.ip+":7950", "")
	t1 := time.Now()
	l, err := c.Leader(ctx)
	if err != nil {
		return view{}, err
	}
	v := view{coord: l.Coordinator, term: l.Term, at: t1.Add(time.Since(t1) / 2)}
	if victim != "" {
		ms, err := c.Members(ctx, client.MemberFilter{Status: "failed"})
		if err != nil {
			return view{}, err
		}
		v.failed = slices.ContainsFunc(ms, func(m client.Member) bool { return m.Name == victim })
	}
	return v, nil
}

// raftImpl runs hashicorp/raft voters (this binary's raft-node command).
type raftImpl struct {
	bin string
	cfg Config
}

func (r *raftImpl) name() string { return "raft" }

func (r *raftImpl) start(ctx context.Context, g *procs.Group, n int) ([]*proc, error) {
	var peers []string
	for i := 1; i <= n; i++ {
		peers = append(peers, fmt.Sprintf("raft-%02d=127.0.40.%d:8300", i, i))
	}
	var nodes []*proc
	for i := 1; i <= n; i++ {
		ip := fmt.Sprintf("127.0.40.%d", i)
		name := fmt.Sprintf("raft-%02d", i)
		p, err := start(g, name, ip, []string{r.bin, "raft-node", "-id", name, "-bind", ip + ":8300",
			"-http", ip + ":8301", "-peers", strings.Join(peers, ",")})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, p)
	}
	return nodes, nil
}

func (r *raftImpl) ask(ctx context.Context, p *proc, _ string) (view, error) {
	var l raftLeader
	t1 := time.Now()
	if err := getJSON(ctx, "http://"+p.ip+":8301/leader", &l); err != nil {
		return view{}, err
	}
	t, _ := strconv.ParseUint(l.Term, 10, 64)
	return view{coord: l.Leader, term: t, at: t1.Add(time.Since(t1) / 2)}, nil
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

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "?"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + string(bytes.TrimSpace(b))
}
