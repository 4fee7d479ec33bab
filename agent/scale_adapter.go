package agent

// The scale adapter: the goroutine, ticker, history and provider calls
// around the pure scale.Policy (see scale/doc.go).
//
// Every node evaluates the policy on every tick (it is cheap: the View is in
// memory), so that whoever becomes coordinator has its windows already
// filled. Only the node that holds an acting lease calls the provider, with
// that lease; a node whose policy wants a change while no coordinator is
// known asks for an election. After every action the coordinator puts the
// action in its mesh.TagScale tag, so every node records it and a new
// coordinator neither repeats nor reverses it inside the cooldown; on
// takeover the new coordinator also reads the provider's own record of the
// last action (scale.LastActionReader) and its history.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/election"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
	"github.com/shoalmesh/shoal/scale"
	_ "github.com/shoalmesh/shoal/scale/providers" // dry-run, webhook, exec, aws, kubernetes
)

// ScaleConfig is the scale section of Config: which provider, and the
// policy. Provider "" turns scaling off.
type ScaleConfig struct {
	// Provider is a registered provider: dry-run, webhook, exec, aws (and
	// kubernetes where built in). "" turns scaling off.
	Provider string `json:"provider"`
	// Resource is what the provider scales: a webhook URL, a command, an
	// Auto Scaling group, "[namespace/]deployment/NAME".
	Resource string `json:"resource"`
	// Options are provider settings (key=value), e.g. secret=..., timeout=10s.
	Options map[string]string `json:"options"`
	// Metric is what the policy watches: cpu, mem, net or tag:NAME, with
	// :mean (default), :max, :min or :pNN across alive members.
	Metric string `json:"metric"`
	// Target is the Metric's target value per instance (e.g. 70 for 70% CPU).
	Target float64 `json:"target"`
	// Tolerance is the band around Target inside which nothing changes
	// (0.1 is ±10%).
	Tolerance float64 `json:"tolerance"`
	// Min and Max bound the instance count (Max 0: unbounded).
	Min int `json:"min"`
	Max int `json:"max"`
	// UpWindow: a higher recommendation must hold this long; DownWindow:
	// scale-down stabilization (highest recommendation over it).
	UpWindow   Duration `json:"up_window"`
	DownWindow Duration `json:"down_window"`
	// UpCooldown and DownCooldown: the wait after any action before
	// scaling up, respectively down.
	UpCooldown   Duration `json:"up_cooldown"`
	DownCooldown Duration `json:"down_cooldown"`
	// Step limits per StepPeriod: the larger of a count and a percentage of
	// the count at the period's start.
	UpStep          int      `json:"up_step"`
	UpStepPercent   float64  `json:"up_step_percent"`
	DownStep        int      `json:"down_step"`
	DownStepPercent float64  `json:"down_step_percent"`
	StepPeriod      Duration `json:"step_period"`
	// Thresholds, when set, replace the HPA rule with fixed steps, e.g.
	// "above 75% for 30s -> +1", "below 20% for 5m -> -1".
	Thresholds []string `json:"thresholds"`
	// DryRun evaluates and records decisions but calls no provider.
	DryRun bool `json:"dry_run"`
	// Interval is how often the policy is evaluated.
	Interval Duration `json:"interval"`
}

// DefaultScaleConfig returns scale.DefaultConfig's policy, scaling off.
func DefaultScaleConfig() ScaleConfig {
	p := scale.DefaultConfig()
	return ScaleConfig{
		Metric: p.Metric, Target: p.Target, Tolerance: p.Tolerance, Min: p.Min, Max: p.Max,
		UpWindow: Duration(p.UpWindow), DownWindow: Duration(p.DownWindow),
		UpCooldown: Duration(p.UpCooldown), DownCooldown: Duration(p.DownCooldown),
		UpStep: p.UpStep, UpStepPercent: p.UpStepPercent, DownStep: p.DownStep, DownStepPercent: p.DownStepPercent,
		StepPeriod: Duration(p.StepPeriod), Interval: Duration(time.Second),
	}
}

// PolicyConfig turns the section into the policy's Config.
func (s ScaleConfig) PolicyConfig() (scale.Config, error) {
	c := scale.Config{
		Metric: s.Metric, Target: s.Target, Tolerance: s.Tolerance, Min: s.Min, Max: s.Max,
		UpWindow: time.Duration(s.UpWindow), DownWindow: time.Duration(s.DownWindow),
		UpCooldown: time.Duration(s.UpCooldown), DownCooldown: time.Duration(s.DownCooldown),
		UpStep: s.UpStep, UpStepPercent: s.UpStepPercent, DownStep: s.DownStep, DownStepPercent: s.DownStepPercent,
		StepPeriod: time.Duration(s.StepPeriod), Mode: scale.ModeTarget, DryRun: s.DryRun,
	}
	for _, t := range s.Thresholds {
		th, err := scale.ParseThreshold(t)
		if err != nil {
			return c, err
		}
		c.Thresholds = append(c.Thresholds, th)
		c.Mode = scale.ModeThresholds
	}
	return c, c.Validate()
}

// validate checks the section; called by Config.Validate.
func (s *ScaleConfig) validate() error {
	if s.Provider == "" {
		return nil
	}
	if !scale.Registered(s.Provider) {
		return fmt.Errorf("%w: scale-provider: %v", ErrConfig, scale.UnknownProviderError(s.Provider))
	}
	if _, err := s.PolicyConfig(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if s.Interval < Duration(10*time.Millisecond) {
		return fmt.Errorf("%w: scale-interval %v below 10ms", ErrConfig, time.Duration(s.Interval))
	}
	return nil
}

// scaleRunner evaluates the policy on a ticker and, as coordinator, calls
// the provider.
type scaleRunner struct {
	a        *Agent
	log      *slog.Logger
	cfg      ScaleConfig
	clock    metrics.Clock
	provider scale.Provider // nil when scaling is off
	history  *scale.History
	stop     chan struct{}
	done     chan struct{}

	hookMu  sync.Mutex
	leaseFn func() (election.Lease, bool) // test hook: overrides the election's lease

	// Owned by run.
	policy      *scale.Policy
	wasActing   bool
	knownCount  int // the count after the last action seen in the mesh (0: none)
	provCount   int
	provAt      time.Time
	provKnown   bool
	retryAt     time.Time // after a failed or refused call, wait until then
	backoff     time.Duration
	lastElectAt time.Time

	mu        sync.Mutex
	status    client.ScaleStatus
	decisions map[string]uint64
}

func (a *Agent) startScale(ctx context.Context) error {
	cfg := a.cfg.Scale
	r := &scaleRunner{a: a, log: a.log.With("component", "scale"), cfg: cfg, clock: metrics.SystemClock{},
		stop: make(chan struct{}), done: make(chan struct{}), decisions: map[string]uint64{}}
	path := ""
	if a.cfg.DataDir != "" {
		if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data directory %s: %w", a.cfg.DataDir, err)
		}
		path = filepath.Join(a.cfg.DataDir, scale.HistoryFile)
	}
	h, err := scale.OpenHistory(path, 1000)
	if err != nil {
		return err
	}
	r.history = h
	r.status = client.ScaleStatus{Node: a.cfg.NodeName, Enabled: cfg.Provider != ""}
	if cfg.Provider == "" {
		close(r.done)
		a.scale = r
		return nil
	}
	fail := func(err error) error {
		_ = h.Close()
		return err
	}
	pc, err := cfg.PolicyConfig()
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrConfig, err))
	}
	if r.policy, err = scale.New(pc); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrConfig, err))
	}
	p, err := scale.NewProvider(scale.ProviderConfig{Name: cfg.Provider, Resource: cfg.Resource, Options: cfg.Options,
		StateDir: a.cfg.DataDir, Node: a.cfg.NodeName, Logger: a.log})
	if err != nil {
		return fail(fmt.Errorf("scale provider %s: %w", cfg.Provider, err))
	}
	r.provider = p
	// Cooldowns survive a restart: the last action from the history.
	if rec, ok := h.LastAction(); ok {
		act, _ := rec.Action()
		r.policy.Record(act)
		r.knownCount = rec.Decision.Desired
		r.log.Info("last scale action from the history", "time", rec.Decision.Time, "from", act.From, "to", act.To, "outcome", rec.Outcome)
	}
	r.status.Provider, r.status.Resource = cfg.Provider, cfg.Resource
	a.scale = r
	go r.run()
	return nil
}

func (a *Agent) stopScale() {
	r := a.scale
	if r == nil {
		return
	}
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
	_ = r.history.Close()
}

// setLeaseHook makes the runner act under fn's lease instead of the
// election's (tests: two nodes that both believe they coordinate).
func (r *scaleRunner) setLeaseHook(fn func() (election.Lease, bool)) {
	r.hookMu.Lock()
	defer r.hookMu.Unlock()
	r.leaseFn = fn
}

func (r *scaleRunner) lease() (election.Lease, bool) {
	r.hookMu.Lock()
	fn := r.leaseFn
	r.hookMu.Unlock()
	if fn != nil {
		return fn()
	}
	if e := r.a.runner(); e != nil {
		return e.Lease()
	}
	return election.Lease{}, false
}

func (r *scaleRunner) coordinator() (string, uint64) {
	if e := r.a.runner(); e != nil {
		s, _ := e.snapshot()
		return s.status.Coordinator, s.status.Term
	}
	return "", 0
}

func (r *scaleRunner) run() {
	defer close(r.done)
	t := r.clock.NewTicker(time.Duration(r.cfg.Interval))
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C():
			r.step(ctx)
		}
	}
}

// step is one evaluation.
func (r *scaleRunner) step(ctx context.Context) {
	now := r.clock.Now()
	ms := r.a.mesh.View().Members()
	loads, alive := memberLoads(ms)
	value, valid, _ := scale.Aggregate(r.cfg.Metric, loads)
	r.observe(ms)
	lease, acting := r.lease()
	if acting && !r.wasActing {
		r.takeover(ctx, lease)
	}
	r.wasActing = acting

	current, source := alive, "mesh"
	if r.knownCount > 0 {
		current, source = r.knownCount, "last action"
	}
	var provErr error
	if acting {
		if n, err := r.providerCount(ctx, now); err == nil {
			current, source = n, "provider"
		} else if !errors.Is(err, scale.ErrCountUnknown) {
			provErr = err
		}
	}
	d := r.policy.Evaluate(now, scale.Input{Current: current, Value: value, Valid: valid})
	coord, term := r.coordinator()
	r.publish(func(s *client.ScaleStatus) {
		s.Mode, s.Metric, s.Target, s.Min, s.Max, s.DryRun = r.policy.Config().Mode, d.Metric, d.Target, r.cfg.Min, r.cfg.Max, d.DryRun
		s.Value, s.ValueValid, s.Members = value, valid, len(loads)
		s.Current, s.CurrentSource, s.Desired, s.Recommendation, s.Action, s.Reasons = current, source, d.Desired, d.Recommendation, d.Action, d.Reasons
		s.Acting, s.Coordinator, s.Term = acting, coord, term
		s.UpdatedAt = now.UTC().Format(time.RFC3339Nano)
		s.Error = ""
		if provErr != nil {
			s.Error = provErr.Error()
		}
	})
	if provErr != nil {
		if now.After(r.retryAt) {
			r.log.Warn("provider count", "err", provErr)
			r.fail(now)
		}
		return
	}
	if d.Action == scale.ActionNone {
		return
	}
	if !acting {
		// Only the coordinator acts. Ask for one if none is known (at most
		// once a second; the election runs lazily).
		if coord == "" && now.Sub(r.lastElectAt) >= time.Second {
			r.lastElectAt = now
			if e := r.a.runner(); e != nil {
				e.Request()
			}
		}
		return
	}
	if now.Before(r.retryAt) {
		return
	}
	rec := scale.Record{Time: now.UTC(), Node: r.a.cfg.NodeName, Provider: r.provider.Name(), Lease: lease, Decision: d}
	switch {
	case d.DryRun:
		rec.Outcome = scale.OutcomeDryRun
	default:
		// Check the lease again right before the call.
		if l2, ok := r.lease(); !ok || l2 != lease {
			rec.Outcome, rec.Error = scale.OutcomeRefused, "lost the coordinator lease before the call"
			break
		}
		err := r.provider.Scale(ctx, d.Desired, lease, d)
		switch {
		case err == nil:
			rec.Outcome = scale.OutcomeApplied
		case errors.Is(err, election.ErrStaleTerm):
			rec.Outcome, rec.Error = scale.OutcomeRefused, err.Error()
		default:
			rec.Outcome, rec.Error = scale.OutcomeFailed, err.Error()
		}
	}
	r.record(rec)
	if act, ok := rec.Action(); ok {
		r.policy.Record(act)
		r.knownCount = d.Desired
		r.provCount, r.provAt, r.provKnown = d.Desired, now, true
		r.backoff = 0
		r.announce(lease, act)
		r.log.Info("scaled", "outcome", rec.Outcome, "from", d.Current, "to", d.Desired, "term", lease.Term, "reason", d.Reason())
	} else {
		r.log.Warn("scale decision not applied", "outcome", rec.Outcome, "from", d.Current, "to", d.Desired, "term", lease.Term, "err", rec.Error)
		r.fail(now)
		r.provKnown = false
	}
}

// fail spaces out calls after a failure: 1 s, doubling to 1 min.
func (r *scaleRunner) fail(now time.Time) {
	r.backoff = min(max(2*r.backoff, time.Second), time.Minute)
	r.retryAt = now.Add(r.backoff)
}

// providerCount asks the provider at most every 5 s (and after actions).
func (r *scaleRunner) providerCount(ctx context.Context, now time.Time) (int, error) {
	if r.provKnown && now.Sub(r.provAt) < 5*time.Second {
		return r.provCount, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := r.provider.Current(cctx)
	if err != nil {
		r.provKnown = false
		return 0, err
	}
	r.provCount, r.provAt, r.provKnown = n, now, true
	return n, nil
}

// takeover reads the provider's record of the last action when this node
// starts acting.
func (r *scaleRunner) takeover(ctx context.Context, lease election.Lease) {
	r.provKnown = false
	lr, ok := r.provider.(scale.LastActionReader)
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	last, found, err := lr.LastAction(cctx)
	if err != nil {
		r.log.Warn("reading the provider's last action on takeover", "err", err)
		return
	}
	if found {
		r.learn(scale.Action{Time: last.Time, From: last.From, To: last.To}, last.Lease, "provider")
	}
	r.log.Info("acting as scale coordinator", "term", lease.Term, "last_action_from_provider", found)
}

// observe records the newest action announced in the members' tags.
func (r *scaleRunner) observe(ms []mesh.Member) {
	for _, m := range ms {
		if m.Self {
			continue
		}
		if !m.Shoal.ScaleOK {
			continue
		}
		st := m.Shoal.Scale
		lease := election.Lease{Holder: m.Name, Term: st.Term, Priority: st.Priority}
		r.learn(scale.Action{Time: st.Time, From: st.From, To: st.To}, lease, "mesh")
	}
}

// learn records another coordinator's action if it is newer than the last
// one the policy knows.
func (r *scaleRunner) learn(act scale.Action, lease election.Lease, from string) {
	if last, ok := r.policy.LastAction(); ok && !act.Time.After(last.Time) {
		return
	}
	r.policy.Record(act)
	r.knownCount = act.To
	d := scale.Decision{Time: act.Time, Current: act.From, Desired: act.To, Action: scale.ActionUp,
		Reasons: []string{fmt.Sprintf("action by %s under term %d, learnt from the %s", lease.Holder, lease.Term, from)}}
	if act.To < act.From {
		d.Action = scale.ActionDown
	}
	r.record(scale.Record{Time: r.clock.Now().UTC(), Node: r.a.cfg.NodeName, Provider: r.cfg.Provider, Outcome: scale.OutcomeObserved, Lease: lease, Decision: d})
}

func (r *scaleRunner) record(rec scale.Record) {
	if err := r.history.Append(rec); err != nil {
		r.log.Error("scale history", "err", err)
	}
	cr := toClientScaleRecord(rec)
	r.publish(func(s *client.ScaleStatus) {
		if rec.Outcome != scale.OutcomeObserved || s.LastDecision == nil {
			s.LastDecision = &cr
		}
	})
	r.mu.Lock()
	r.decisions[rec.Outcome]++
	r.mu.Unlock()
}

// announce puts the action in this node's mesh.TagScale, through the
// mesh (the one owner of the node's tags).
func (r *scaleRunner) announce(lease election.Lease, act scale.Action) {
	st := mesh.ScaleTag{Term: lease.Term, Priority: lease.Priority, Time: act.Time, From: act.From, To: act.To}
	if err := r.a.mesh.AnnounceScale(st); err != nil {
		r.log.Warn("announcing the scale action", "err", err)
	}
}

// memberLoads collects the alive Shoal members' load, and counts the alive
// Shoal members.
func memberLoads(ms []mesh.Member) ([]scale.MemberLoad, int) {
	var out []scale.MemberLoad
	alive := 0
	for _, m := range ms {
		if m.Status != mesh.StatusAlive {
			continue
		}
		if !m.Shoal.Agent {
			continue
		}
		alive++
		if m.Load == nil {
			continue
		}
		// Named is the View's parsed map, shared: the policy only reads it.
		out = append(out, scale.MemberLoad{Name: m.Name, CPU: m.Load.CPUPercent, Mem: m.Load.MemPercent,
			Net: m.Load.NetRxBps + m.Load.NetTxBps, Named: m.Shoal.Numeric})
	}
	return out, alive
}

func (r *scaleRunner) publish(f func(*client.ScaleStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.status)
}

func (r *scaleRunner) statusView() client.ScaleStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Decisions = map[string]uint64{}
	for k, v := range r.decisions {
		s.Decisions[k] = v
	}
	s.Reasons = append([]string(nil), s.Reasons...)
	return s
}

func toClientScaleRecord(r scale.Record) client.ScaleRecord {
	d := r.Decision
	return client.ScaleRecord{
		Time: r.Time.Format(time.RFC3339Nano), Node: r.Node, Provider: r.Provider, Outcome: r.Outcome, Error: r.Error,
		Holder: r.Lease.Holder, Priority: r.Lease.Priority, Term: r.Lease.Term,
		DecidedAt: d.Time.UTC().Format(time.RFC3339Nano), Current: d.Current, Desired: d.Desired, Action: d.Action,
		Metric: d.Metric, Value: d.Value, Target: d.Target, DryRun: d.DryRun, Reasons: d.Reasons,
	}
}

func (a *Agent) registerScaleRoutes(mux *http.ServeMux, reg *prometheus.Registry) {
	if a.cfg.EnableDebug || a.cfg.Profile == mesh.ProfileLocal {
		mux.HandleFunc("POST /v1/debug/load", a.handleDebugLoad)
	}
	r := a.scale
	if r == nil {
		return
	}
	reg.MustRegister(&scaleCollector{r: r})
	mux.HandleFunc("GET /v1/scale/status", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusOK, r.statusView())
	})
	mux.HandleFunc("GET /v1/scale/history", func(w http.ResponseWriter, req *http.Request) {
		n := 0
		if s := req.URL.Query().Get("limit"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				writeErr(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a count ≥ 0", s))
				return
			}
			n = v
		}
		recs := r.history.Recent(n)
		out := make([]client.ScaleRecord, len(recs))
		for i, rec := range recs {
			out[i] = toClientScaleRecord(rec)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// handleDebugLoad sets (or with {"clear": true} clears) a synthetic load
// that this node reports instead of its measured figures: a test hook,
// served only with --enable-debug or in the local profile.
func (a *Agent) handleDebugLoad(w http.ResponseWriter, r *http.Request) {
	var req client.DebugLoad
	if err := readJSON(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if req.Clear {
		a.monitor.Override(nil)
		writeJSON(w, http.StatusOK, map[string]string{"status": "cleared"})
		return
	}
	for name, v := range map[string]float64{"cpu_percent": req.CPUPercent, "mem_percent": req.MemPercent} {
		if v < 0 || v > 100 || math.IsNaN(v) {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("%s %v: want 0..100", name, v))
			return
		}
	}
	l := metrics.Load{CPUPercent: req.CPUPercent, MemPercent: req.MemPercent, NetRxBps: req.NetRxBps, NetTxBps: req.NetTxBps,
		Load1: req.Load1, Cores: req.Cores, Taken: time.Now()}
	if l.Cores == 0 {
		l.Cores = 1
	}
	a.monitor.Override(&l)
	writeJSON(w, http.StatusOK, map[string]string{"status": "set"})
}

// scaleCollector reads the status at scrape time.
type scaleCollector struct {
	r                                        *scaleRunner
	desired, current, value, acting, decided *prometheus.Desc
}

func (c *scaleCollector) descs() []*prometheus.Desc {
	if c.desired == nil {
		d := descMaker("shoal_scale_")
		c.desired = d("desired", "Instance count the policy asks for (last evaluation).")
		c.current = d("current", "Instance count the policy started from (provider, last action or mesh).")
		c.value = d("metric_value", "Aggregate value of the watched metric.", "metric")
		c.acting = d("acting", "1 while this node acts as the scale coordinator.")
		c.decided = d("decisions_total", "Scale decisions recorded, by outcome.", "outcome")
	}
	return []*prometheus.Desc{c.desired, c.current, c.value, c.acting, c.decided}
}

func (c *scaleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

func (c *scaleCollector) Collect(ch chan<- prometheus.Metric) {
	c.descs()
	s := c.r.statusView()
	if !s.Enabled {
		return
	}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	g(c.desired, float64(s.Desired))
	g(c.current, float64(s.Current))
	if s.Metric != "" {
		g(c.value, s.Value, s.Metric)
	}
	acting := 0.0
	if s.Acting {
		acting = 1
	}
	g(c.acting, acting)
	outcomes := []string{scale.OutcomeApplied, scale.OutcomeRefused, scale.OutcomeFailed, scale.OutcomeDryRun, scale.OutcomeObserved}
	for k := range s.Decisions {
		if !containsStr(outcomes, k) {
			outcomes = append(outcomes, k)
		}
	}
	sort.Strings(outcomes)
	for _, o := range outcomes {
		ch <- prometheus.MustNewConstMetric(c.decided, prometheus.CounterValue, float64(s.Decisions[o]), o)
	}
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
