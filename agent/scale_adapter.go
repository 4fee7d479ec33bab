package agent

// The scale adapter: the goroutine, ticker, history and provider calls
// around the pure scale.Policy (see scale/doc.go).
//
// Every node evaluates the policy on every tick (it is cheap: the View is in
// memory), so that it knows the last action and can tell when a coordinator
// is needed. Only the node that holds an acting lease calls the provider,
// with that lease; a node whose policy wants a change while no coordinator
// is known asks for an election. After every action the coordinator puts the
// action in its mesh.TagScale tag, so every node records it.
//
// State on takeover: a node that starts acting (or acts under a new lease)
// starts from the newest record anywhere: the provider's count where it is
// authoritative (scale.Provider.Authoritative), else the newest action by
// term among those announced in the mesh, kept in the history and in the
// provider's record (scale.Ledger), never a record of an older term because
// it is local. It also restarts the policy's windows: recommendations made
// while it did not act were computed against another count. Cooldowns keep
// counting from the newest action.
//
// No action while leaving: the agent stops the runner before it leaves the
// mesh, and the runner checks the leaving flag before every evaluation and
// again right before a provider call. No action on no load figures either:
// see scale.HoldWithoutFigures.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/election"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
	"github.com/shoalmesh/shoal/scale"
	_ "github.com/shoalmesh/shoal/scale/providers" // dry-run, webhook, exec; aws, kubernetes through the helper
)

// scaleDeps is what the scale runner needs from the agent, and all it
// reaches: the unit tests hand it fakes.
type scaleDeps struct {
	// node is this agent's name.
	node string
	// members returns the mesh's members, this node included (Self).
	members func() []mesh.Member
	// announce puts an action in this node's mesh.TagScale.
	announce func(st mesh.ScaleTag) error
	// lease returns the lease to act under, and true while this node acts.
	lease func() (election.Lease, bool)
	// coordinator names the coordinator this node knows ("" for none) and
	// its term.
	coordinator func() (string, uint64)
	// requestElection asks for an election.
	requestElection func()
	// leaving reports that the agent leaves the mesh or shuts down.
	leaving func() bool
	// halfLife and sampleEvery are the members' load smoothing (the
	// monitor's EWMA, assumed the same on every member), which the runner
	// undoes for cpu, mem and net (scale.Unsmoother); 0: none.
	halfLife, sampleEvery time.Duration
}

// agentScaleDeps wires the runner to the agent's mesh and election.
func agentScaleDeps(a *Agent) scaleDeps {
	return scaleDeps{
		node:     a.cfg.NodeName,
		members:  func() []mesh.Member { return a.mesh.View().Members() },
		announce: func(st mesh.ScaleTag) error { return a.mesh.AnnounceScale(st) },
		lease: func() (election.Lease, bool) {
			if e := a.runner(); e != nil {
				return e.Lease()
			}
			return election.Lease{}, false
		},
		coordinator: func() (string, uint64) {
			if e := a.runner(); e != nil {
				s, _ := e.snapshot()
				return s.status.Coordinator, s.status.Term
			}
			return "", 0
		},
		requestElection: func() {
			if e := a.runner(); e != nil {
				e.Request()
			}
		},
		leaving:     a.leaving.Load,
		halfLife:    time.Duration(a.cfg.HalfLife),
		sampleEvery: time.Duration(a.cfg.SampleInterval),
	}
}

// scaleRunner evaluates the policy on a ticker and, as coordinator, calls
// the provider.
type scaleRunner struct {
	deps     scaleDeps
	log      *slog.Logger
	cfg      ScaleConfig
	clock    metrics.Clock
	provider scale.Provider // nil when scaling is off
	auth     bool           // provider.Authoritative()
	history  *scale.History
	stop     chan struct{}
	done     chan struct{}

	hookMu  sync.Mutex
	leaseFn func() (election.Lease, bool) // test hook: overrides the election's lease

	// Owned by run.
	policy      *scale.Policy
	unsmooth    *scale.Unsmoother // nil: the metric is not smoothed by the monitors
	provReady   int               // the provider's ready count, when provReadyOK
	provReadyOK bool
	ledger      scale.Ledger // the newest action known anywhere
	wasActing   bool
	actingLease election.Lease // the lease of the last step, while acting
	provCount   int
	provAt      time.Time
	provKnown   bool
	retryAt     time.Time // after a failed or refused call, wait until then
	backoff     time.Duration
	lastElectAt time.Time
	heldNoted   bool // an OutcomeHeld record was written for this episode

	mu        sync.Mutex
	status    client.ScaleStatus
	decisions map[string]uint64
}

// newScaleRunner builds a runner over provider (nil: scaling off) and
// history, and reads the newest action back from the history so cooldowns
// survive a restart. It does not start it (go r.run(ctx)).
func newScaleRunner(cfg ScaleConfig, deps scaleDeps, provider scale.Provider, h *scale.History, clock metrics.Clock, log *slog.Logger) (*scaleRunner, error) {
	r := &scaleRunner{deps: deps, log: log.With("component", "scale"), cfg: cfg, clock: clock, history: h,
		stop: make(chan struct{}), done: make(chan struct{}), decisions: map[string]uint64{}}
	r.status = client.ScaleStatus{Node: deps.node, Enabled: cfg.Provider != "" && provider != nil}
	if !r.status.Enabled {
		close(r.done)
		return r, nil
	}
	pc, err := cfg.PolicyConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if m, _ := scale.ParseMetric(pc.Metric); !m.Named && deps.halfLife > 0 {
		// The monitors smooth cpu, mem and net before gossip; the policy's
		// own robust windows want the raw figures, about UnsmoothLag late.
		r.unsmooth = &scale.Unsmoother{HalfLife: deps.halfLife, Interval: deps.sampleEvery}
		pc.MetricLag = max(pc.MetricLag, scale.UnsmoothLag)
	}
	if r.policy, err = scale.New(pc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	r.provider, r.auth = provider, provider.Authoritative()
	if rec, ok := h.NewestAction(); ok {
		k, _ := rec.Known("history")
		r.ledger.Learn(k)
		r.policy.Record(k.Action)
		r.log.Info("last scale action from the history", "time", rec.Decision.Time, "from", k.Action.From, "to", k.Action.To,
			"term", k.Lease.Term, "holder", k.Lease.Holder, "outcome", rec.Outcome)
	}
	r.status.Provider, r.status.Resource = cfg.Provider, cfg.Resource
	return r, nil
}

func (a *Agent) startScale(ctx context.Context) error {
	cfg := a.cfg.Scale
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
	var p scale.Provider
	if cfg.Provider != "" {
		if _, err := cfg.PolicyConfig(); err != nil {
			_ = h.Close()
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		p, err = scale.NewProvider(scale.ProviderConfig{Name: cfg.Provider, Resource: cfg.Resource, Options: cfg.Options,
			StateDir: a.cfg.DataDir, Node: a.cfg.NodeName, Logger: a.log, Helper: cfg.ProviderHelper})
		if err != nil {
			_ = h.Close()
			return fmt.Errorf("scale provider %s: %w", cfg.Provider, err)
		}
	}
	r, err := newScaleRunner(cfg, agentScaleDeps(a), p, h, metrics.SystemClock{}, a.log)
	if err != nil {
		_ = h.Close()
		return err
	}
	a.scale = r
	if r.status.Enabled {
		r.log.Info("scaler started", "provider", cfg.Provider, "authoritative_count", r.auth)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			r.run(ctx)
		}()
	}
	return nil
}

// stopScale stops the runner and waits for it (a provider call in flight
// is cancelled). Safe to call more than once.
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
	if c, ok := r.provider.(io.Closer); ok {
		_ = c.Close() // a provider in the helper process: stop the helper
	}
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
	return r.deps.lease()
}

// run evaluates on the ticker until stopScale closes stop, or at the latest
// until parent (the agent's Start context) ends. A provider call in flight
// is cancelled when it stops.
func (r *scaleRunner) run(parent context.Context) {
	defer close(r.done)
	t := r.clock.NewTicker(time.Duration(r.cfg.Interval))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait() // the stop watcher, after cancel
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
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
		case <-ctx.Done():
			return
		case <-t.C():
			r.step(ctx)
		}
	}
}

// step is one evaluation.
func (r *scaleRunner) step(ctx context.Context) {
	now := r.clock.Now()
	if r.deps.leaving() {
		r.publish(func(s *client.ScaleStatus) {
			s.Acting, s.Action, s.Reasons = false, scale.ActionNone, []string{"leaving the mesh: no evaluation, no action"}
			s.UpdatedAt = now.UTC().Format(time.RFC3339Nano)
		})
		return
	}
	ms := r.deps.members()
	loads, alive := memberLoads(ms)
	value, valid, _ := scale.Aggregate(r.cfg.Metric, loads)
	raw := value
	if r.unsmooth != nil {
		if valid {
			value = r.unsmooth.Update(now, value)
			if m, _ := scale.ParseMetric(r.cfg.Metric); m.Source != "net" {
				value = min(value, 100) // percentages
			}
			value = max(value, 0)
		} else {
			r.unsmooth.Reset()
		}
	}
	r.observe(ms)
	lease, acting := r.lease()
	if acting && (!r.wasActing || lease != r.actingLease) {
		r.takeover(ctx, lease)
	}
	r.wasActing, r.actingLease = acting, lease

	bi := scale.BasisInput{Alive: alive, Authoritative: r.auth}
	bi.Last, bi.LastKnown = r.ledger.Last()
	var provErr error
	if acting {
		n, err := r.providerCount(ctx, now)
		switch {
		case err == nil:
			bi.Provider, bi.ProviderKnown = n, true
		case !errors.Is(err, scale.ErrCountUnknown):
			provErr = err
		}
	}
	if provErr != nil && r.auth {
		// The authoritative count is unreadable: no basis to act on.
		bi.ProviderKnown = false
	}
	current, source := scale.Basis(bi)
	in := scale.Input{Current: current, Value: value, Valid: valid}
	if acting && source == scale.SourceProvider && r.provReadyOK {
		in.Ready, in.ReadyKnown = r.provReady, true
	}
	d := r.policy.Evaluate(now, in)
	held := false
	if !valid {
		d, held = scale.HoldWithoutFigures(d, source == scale.SourceProvider)
	}
	coord, term := r.deps.coordinator()
	r.publish(func(s *client.ScaleStatus) {
		s.Mode, s.Metric, s.Target, s.Min, s.Max, s.DryRun = r.policy.Config().Mode, d.Metric, d.Target, r.cfg.Min, r.cfg.Max, d.DryRun
		s.Value, s.ValueValid, s.Members = raw, valid, len(loads)
		s.Current, s.CurrentSource, s.Desired, s.Recommendation, s.Action, s.Reasons = current, source, d.Desired, d.Recommendation, d.Action, d.Reasons
		s.Acting, s.Coordinator, s.Term = acting, coord, term
		s.UpdatedAt = now.UTC().Format(time.RFC3339Nano)
		s.Error = ""
		if provErr != nil {
			s.Error = provErr.Error()
		}
	})
	if held {
		if !r.heldNoted {
			r.heldNoted = true
			r.record(scale.Record{Time: now.UTC(), Node: r.deps.node, Provider: r.provider.Name(), Outcome: scale.OutcomeHeld, Lease: lease, Decision: d})
			r.log.Info("no load figures: no scale decision", "count", current, "source", source, "reason", d.Reason())
		}
		return
	}
	if valid || d.Action != scale.ActionNone {
		r.heldNoted = false
	}
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
			r.deps.requestElection()
		}
		return
	}
	if now.Before(r.retryAt) {
		return
	}
	rec := scale.Record{Time: now.UTC(), Node: r.deps.node, Provider: r.provider.Name(), Lease: lease, Decision: d}
	switch {
	case d.DryRun:
		rec.Outcome = scale.OutcomeDryRun
	default:
		// Check the lease and the leaving flag again right before the call.
		if l2, ok := r.lease(); !ok || l2 != lease {
			rec.Outcome, rec.Error = scale.OutcomeRefused, "lost the coordinator lease before the call"
			break
		}
		if r.deps.leaving() {
			rec.Outcome, rec.Error = scale.OutcomeRefused, "leaving the mesh: no action"
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
		r.ledger.Learn(scale.Known{Lease: lease, Action: act, Source: "self"})
		r.provCount, r.provAt, r.provKnown = d.Desired, now, true
		r.provReadyOK = false // until the provider is read again
		r.backoff = 0
		r.announce(lease, act)
		r.log.Info("scaled", "outcome", rec.Outcome, "from", d.Current, "to", d.Desired, "term", lease.Term, "basis", source, "reason", d.Reason())
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

// providerCount asks the provider at most every 5 s (and after actions),
// with the ready count when the provider reports one (scale.ReadyReader).
func (r *scaleRunner) providerCount(ctx context.Context, now time.Time) (int, error) {
	if r.provKnown && now.Sub(r.provAt) < 5*time.Second {
		return r.provCount, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var c scale.Counts
	var err error
	if rr, ok := r.provider.(scale.ReadyReader); ok {
		c, err = rr.Counts(cctx)
	} else {
		c.Current, err = r.provider.Current(cctx)
	}
	if err != nil {
		r.provKnown, r.provReadyOK = false, false
		return 0, err
	}
	r.provCount, r.provAt, r.provKnown = c.Current, now, true
	r.provReady, r.provReadyOK = c.Ready, c.ReadyKnown
	return c.Current, nil
}

// takeover runs when this node starts acting, or acts under a new lease: it
// forgets the cached provider count, restarts the policy's windows, and
// learns the provider's record of the last action (a shared fence, tags on
// an Auto Scaling group, annotations on a Deployment), which the ledger
// keeps only if its term is the newest known.
func (r *scaleRunner) takeover(ctx context.Context, lease election.Lease) {
	r.provKnown = false
	r.policy.ResetWindows()
	found := false
	if lr, ok := r.provider.(scale.LastActionReader); ok {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last, ok, err := lr.LastAction(cctx)
		cancel()
		switch {
		case err != nil:
			r.log.Warn("reading the provider's last action on takeover", "err", err)
		case ok:
			found = true
			r.learn(scale.Known{Lease: last.Lease, Action: scale.Action{Time: last.Time, From: last.From, To: last.To}, Source: "provider"})
		}
	}
	basis := "none known"
	if k, ok := r.ledger.Last(); ok {
		basis = k.String()
	}
	r.log.Info("acting as scale coordinator", "term", lease.Term, "authoritative_count", r.auth,
		"provider_record", found, "newest_action", basis)
}

// observe learns the actions announced in the members' tags.
func (r *scaleRunner) observe(ms []mesh.Member) {
	for _, m := range ms {
		st := m.Shoal.Scale
		if m.Self || !m.Shoal.ScaleOK || st.From < 0 || st.To < 0 {
			continue
		}
		r.learn(scale.Known{Lease: election.Lease{Holder: m.Name, Term: st.Term, Priority: st.Priority},
			Action: scale.Action{Time: st.Time, From: st.From, To: st.To}, Source: "mesh"})
	}
}

// learn keeps another coordinator's action if it is the newest known (by
// term), tells the policy and records it.
func (r *scaleRunner) learn(k scale.Known) {
	if !r.ledger.Learn(k) {
		return
	}
	r.policy.Record(k.Action)
	act, lease := k.Action, k.Lease
	d := scale.Decision{Time: act.Time, Current: act.From, Desired: act.To, Action: scale.ActionUp,
		Reasons: []string{fmt.Sprintf("action by %s under term %d, learnt from the %s", lease.Holder, lease.Term, k.Source)}}
	if act.To < act.From {
		d.Action = scale.ActionDown
	}
	r.record(scale.Record{Time: r.clock.Now().UTC(), Node: r.deps.node, Provider: r.cfg.Provider, Outcome: scale.OutcomeObserved, Lease: lease, Decision: d})
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
	if err := r.deps.announce(st); err != nil {
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
