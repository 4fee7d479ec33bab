package agent

// The election adapter: the goroutine, ticker, persistence and mesh I/O
// around the pure election.Node (see election/doc.go). One goroutine (run)
// owns the Node; everything else talks to it through channels and reads a
// snapshot published after every step.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/election"
	"github.com/shoalmesh/shoal/internal/atomicfile"
	prometheus "github.com/shoalmesh/shoal/internal/prom"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// Files the election keeps in DataDir.
const (
	electionStateFile = "election.json" // the HardState, written before sending
	actionLogFile     = "actions.jsonl" // every action attempted as coordinator
)

// ErrNotCoordinator is returned by Act when this node does not act as
// coordinator (it is not the coordinator, or holds no lease).
var ErrNotCoordinator = errors.New("this node is not the acting coordinator")

// ErrElectionStopped is returned by calls on a stopped election.
var ErrElectionStopped = errors.New("the election is stopped")

// electionDeps is what the election runner needs from the agent, and all
// it reaches: the agent builds it in one place (agentElectionDeps).
type electionDeps struct {
	// node is this agent's name, priority its rank.
	node     string
	priority int
	// view returns the mesh's current View; its Changed channel wakes run.
	view func() *mesh.View
	// send sends an election message's body to the member named to.
	send func(to string, body []byte) error
}

// agentElectionDeps wires the runner to the agent's mesh.
func agentElectionDeps(a *Agent) electionDeps {
	m := a.mesh
	return electionDeps{node: a.cfg.NodeName, priority: a.cfg.Priority, view: m.View, send: m.SendElection}
}

// electionRunner drives the election state machine over the mesh.
type electionRunner struct {
	deps    electionDeps
	clock   metrics.Clock // every time the runner reads comes from it
	log     *slog.Logger
	node    *election.Node // owned by run
	tick    time.Duration
	lease   int  // the Node's LeaseTicks
	want    bool // something here needs a coordinator (Node.SetWant)
	dataDir string
	// The Node's tick k is due at base + k*tick by clock (the monotonic
	// clock in production: SystemClock's times carry its reading); run
	// ticks it when that time has come (several times after a stall), so
	// its tick count follows the clock and a lease counted in ticks ends
	// at a known time.
	base  time.Time
	ticks uint64
	// idle is set while run ticks only every idleTick: no coordinator is
	// known, none is wanted, and nothing in the Node is timed (see
	// canIdle). The ticks it skips are caught up, in order, before the
	// next event, as after any gap; only the stall rules do not apply.
	idle  bool
	leave chan chan struct{}

	inbox chan election.Message
	reqs  chan struct{}
	acts  chan chan actResult
	stop  chan struct{}
	done  chan struct{}

	// Written by run, read anywhere.
	mu     sync.Mutex
	snap   electionSnapshot
	waitCh chan struct{} // closed and replaced when the snapshot changes

	recvd, bad, sendErrs, inboxFull, persistErrs atomic.Uint64
	// stalls counts catch-ups that ran as a stall (Node.Stalled): the
	// loop came back more than a renewal interval late.
	stalls atomic.Uint64

	electSeconds prometheus.Histogram

	// Used by run only.
	members   []election.Member
	savedHS   election.HardState
	actionLog *os.File
	actSeq    uint64
	actLog    *actingLog // --acting-log, nil when unset
}

// electionSnapshot is what run publishes after every step.
type electionSnapshot struct {
	status       election.Status
	metrics      election.Metrics
	lease        election.Lease
	leaseOK      bool
	leaseUntil   time.Time // leaseOK holds until then (by r.clock)
	holding      bool      // won its term, waiting for a quorum of grants
	coordPrio    int
	since        time.Time // wall time at which status.Coordinator was first named
	electStart   time.Time // when this node started lacking a coordinator while electing
	electedAfter time.Duration
}

type actResult struct {
	action client.LeaderAction
	err    error
}

// actingBound is how long a coordinator cut off from its quorum may go on
// acting: until the lease its quorum last granted runs out (LeaseTicks from
// the renewal it granted), which the next tick notices. The partition tests
// hold the minority to it.
func (r *electionRunner) actingBound() time.Duration { return time.Duration(r.lease+1) * r.tick }

// runner returns this agent's election runner, nil before Start sets it.
// Agent.elect is atomic: the mesh's receive goroutine reads it while Start
// sets it.
func (a *Agent) runner() *electionRunner { return a.elect.Load() }

// electionSettings are the runner's settings, from the agent's Config.
type electionSettings struct {
	// node configures the election.Node; newElectionRunner sets its Name,
	// Priority (from electionDeps), Rand and Logger.
	node      election.Config
	tick      time.Duration // the Node's tick length
	dataDir   string        // the election's state and action log; "": none
	actingLog string        // --acting-log; "": none
	want      bool          // something here needs a coordinator (Node.SetWant)
}

// agentElectionSettings reads the runner's settings from the agent's Config.
func agentElectionSettings(a *Agent) electionSettings {
	cfg := election.DefaultConfig()
	cfg.Quorum = a.cfg.Quorum
	cfg.Preempt = a.cfg.Preempt
	return electionSettings{node: cfg, tick: a.cfg.preset().ElectionTick, dataDir: a.cfg.DataDir, actingLog: a.cfg.ActingLog,
		// Something here needs a coordinator: elect one when none is
		// known, without waiting for the scaler's first decision.
		want: a.cfg.Scale.Provider != ""}
}

// newElectionRunner builds the runner and its Node, restoring the Node's
// HardState from the data directory, and publishes its first snapshot. The
// Node's clock starts at clock.Now(). It does not start it (go r.run(ctx)).
func newElectionRunner(set electionSettings, deps electionDeps, clock metrics.Clock, log *slog.Logger) (*electionRunner, error) {
	r := &electionRunner{
		deps: deps, clock: clock, log: log.With("component", "election-adapter"),
		tick: set.tick, dataDir: set.dataDir,
		leave:  make(chan chan struct{}),
		inbox:  make(chan election.Message, 1024),
		reqs:   make(chan struct{}, 1),
		acts:   make(chan chan actResult),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		waitCh: make(chan struct{}),
		electSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_election_time_to_elect_seconds",
			Help:    "Time from this node's losing or lacking a coordinator to naming one.",
			Buckets: []float64{0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 8, 13, 21, 34},
		}),
	}
	cfg := set.node
	cfg.Name = deps.node
	cfg.Priority = deps.priority
	h := fnv.New64a()
	h.Write([]byte(deps.node))
	// Only a seed for the jitter: from the clock, so that a runner on a
	// FakeClock draws the same jitter every run.
	cfg.Rand = rand.New(rand.NewPCG(h.Sum64(), uint64(clock.Now().UnixNano())))
	cfg.Logger = log
	if set.dataDir != "" {
		if err := os.MkdirAll(set.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory %s: %w", set.dataDir, err)
		}
		hs, err := loadHardState(filepath.Join(set.dataDir, electionStateFile))
		if err != nil {
			return nil, err
		}
		cfg.Restore = hs
		r.savedHS = hs
		f, err := os.OpenFile(filepath.Join(set.dataDir, actionLogFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("election action log: %w", err)
		}
		r.actionLog = f
	}
	if set.actingLog != "" {
		l, err := openActingLog(set.actingLog, deps.node)
		if err != nil {
			if r.actionLog != nil {
				r.actionLog.Close()
			}
			return nil, err
		}
		r.actLog = l
	}
	n, err := election.New(cfg)
	if err != nil {
		if r.actionLog != nil {
			r.actionLog.Close()
		}
		r.actLog.close()
		return nil, err
	}
	r.want = set.want
	n.SetWant(r.want)
	r.node = n
	r.lease = cfg.LeaseTicks
	r.base = clock.Now()
	r.publish()
	return r, nil
}

func (a *Agent) startElection(ctx context.Context) error {
	r, err := newElectionRunner(agentElectionSettings(a), agentElectionDeps(a), metrics.SystemClock{}, a.log)
	if err != nil {
		return err
	}
	a.elect.Store(r)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r.run(ctx)
	}()
	return nil
}

// leaveElection stops this node from acting for good, before it leaves the
// mesh or shuts down: it gives up its lease and claims nothing more. It
// returns when the snapshot the scaler reads says so.
func (a *Agent) leaveElection() {
	r := a.runner()
	if r == nil {
		return
	}
	done := make(chan struct{})
	select {
	case r.leave <- done:
		<-done
	case <-r.done:
	}
}

func (a *Agent) stopElection() {
	r := a.runner()
	if r == nil {
		return
	}
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// onElectionMessage receives election message bodies from the mesh (on its
// receive goroutine: it must not block). Whatever is wrong with a message,
// it is dropped and counted.
func (a *Agent) onElectionMessage(from string, body []byte) {
	r := a.runner()
	if r == nil {
		return
	}
	r.recvd.Add(1)
	m, err := election.Unmarshal(body)
	if err != nil || m.From != from {
		r.bad.Add(1)
		r.log.Debug("dropped election message", "from", from, "err", err)
		return
	}
	select {
	case r.inbox <- m:
	default:
		r.inboxFull.Add(1)
	}
}

// maxHardStateFile bounds the election state file read into memory: its
// JSON holds two terms and two names of at most election.MaxNameLen bytes.
const maxHardStateFile = 4096

func loadHardState(path string) (election.HardState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return election.HardState{}, nil
	}
	if err != nil {
		return election.HardState{}, fmt.Errorf("election state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHardStateFile+1))
	if err != nil {
		return election.HardState{}, fmt.Errorf("election state: %w", err)
	}
	hs, err := parseHardState(b)
	if err != nil {
		return hs, fmt.Errorf("election state %s is corrupt (%v): move it aside only if this node never promised a term to anyone, or restore it from a backup", path, err)
	}
	return hs, nil
}

// parseHardState decodes the election state file: the JSON of an
// election.HardState, at most maxHardStateFile bytes, that election.New
// takes as Config.Restore.
func parseHardState(b []byte) (election.HardState, error) {
	var hs election.HardState
	if len(b) > maxHardStateFile {
		return hs, fmt.Errorf("over %d bytes", maxHardStateFile)
	}
	if err := json.Unmarshal(b, &hs); err != nil {
		return election.HardState{}, err
	}
	if err := hs.Check(); err != nil {
		return election.HardState{}, err
	}
	return hs, nil
}

func saveHardState(path string, hs election.HardState) error {
	b, err := json.Marshal(hs)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}

// run is the one goroutine that owns the Node. It ends when stopElection
// closes stop, or at the latest when ctx (the agent's Start context) ends.
func (r *electionRunner) run(ctx context.Context) {
	defer close(r.done)
	defer func() {
		if r.actionLog != nil {
			r.actionLog.Close()
		}
		r.actLog.close()
	}()
	t := r.clock.NewTicker(r.tick)
	defer t.Stop()
	view := r.deps.view()
	r.syncMembers(view)
	for {
		// An idle mesh (no scaler, nobody asked for a coordinator) needs
		// no election clock: tick seldom rather than ten times a second,
		// one of an idle agent's largest sources of wakeups.
		if idle := r.canIdle(); idle != r.idle {
			if !idle {
				r.catchUp() // the clock of the idle spell, without stall rules
			}
			r.idle = idle
			if idle {
				t.Reset(idleTick)
			} else {
				t.Reset(r.tick)
			}
		}
		// Every event first brings the Node's clock up to r.clock: after
		// a pause (SIGSTOP, a long GC, a starved VM) the Node ticks for
		// the time it missed, so its lease runs out and it stops acting
		// before it handles anything that waited meanwhile (a rival's
		// claim must not find it still leading).
		select {
		case <-r.stop:
			r.catchUp()
			r.stopActing()
			return
		case <-ctx.Done():
			r.catchUp()
			r.stopActing()
			return
		case <-view.Changed():
			// Membership (or load) changed: the Node gets the new list
			// when the members or their status changed.
			view = r.deps.view()
			r.catchUp()
			r.syncMembers(view)
		case <-t.C():
			r.catchUp()
		case m := <-r.inbox:
			r.catchUp()
			if err := r.node.Step(m); err != nil {
				r.bad.Add(1)
				r.log.Debug("election message refused", "msg", m.String(), "err", err)
			}
		case <-r.reqs:
			r.catchUp()
			r.node.Request()
		case reply := <-r.acts:
			r.catchUp()
			reply <- r.act()
		case done := <-r.leave:
			r.catchUp()
			r.node.Leave()
			r.flush()
			r.publish()
			close(done)
			continue
		}
		r.flush()
		r.publish()
	}
}

// idleTick is how often run ticks while idle.
const idleTick = 2 * time.Second

// canIdle reports whether the Node has nothing timed to do: no coordinator
// known (so no lease to renew or to watch), none wanted by this node, no
// election, claim, retransmission or preemption pending (Node.Busy). A
// message, a membership change or a request wakes run at once and catches
// the clock up first; the first such event that makes the Node busy brings
// the full tick rate back.
func (r *electionRunner) canIdle() bool {
	if r.want || r.node.Busy() {
		return false
	}
	if _, ok := r.node.Lease(); ok {
		return false
	}
	st := r.node.Status()
	return st.Coordinator == "" && !st.Electing && !st.Acting && !st.IsSelf
}

// catchUp ticks the Node once for every tick length that passed since its
// last tick. After a long stall it ticks at most 4 leases' worth and moves
// the base on: every timer has run out by then.
func (r *electionRunner) catchUp() {
	due := uint64(r.clock.Now().Sub(r.base) / r.tick)
	if due <= r.ticks {
		return
	}
	if r.idle {
		// Ticks skipped on purpose (canIdle): nothing in the Node was
		// timed, no coordinator was known, so there is nothing a stall
		// could have made stale; just bring the clock up.
		for r.ticks < due {
			r.ticks++
			r.node.Tick()
		}
		return
	}
	if gap := due - r.ticks; gap > uint64(r.lease) {
		r.log.Warn("stalled: the election clock jumps", "gap", (time.Duration(gap) * r.tick).Round(time.Millisecond))
		if gap > uint64(4*r.lease) {
			skip := gap - uint64(4*r.lease)
			r.base = r.base.Add(time.Duration(skip) * r.tick)
			due -= skip
		}
	}
	missed := due - r.ticks
	r.ticks = due
	if missed > uint64(r.lease/3) {
		// Stopped for longer than a renewal interval: the ticks it
		// missed stand for time in which it read nothing. Its lease runs
		// out in them, but it neither loses its coordinator for renewals
		// that may be waiting in the inbox nor elects for want, and then
		// it listens (it may have been replaced meanwhile): see
		// Node.Stalled.
		r.stalls.Add(1)
		r.log.Info("election loop late: the missed ticks run as a stall, listening for a lease",
			"late", (time.Duration(missed) * r.tick).Round(time.Millisecond))
		r.node.Stalled(missed)
		return
	}
	for range missed {
		r.node.Tick()
	}
}

// tickTime is the time, by r.clock, at which the Node's tick k was due.
func (r *electionRunner) tickTime(k uint64) time.Time {
	return r.base.Add(time.Duration(k) * r.tick)
}

// syncMembers feeds the mesh's View to the Node when it changed.
func (r *electionRunner) syncMembers(v *mesh.View) {
	ms := v.Members()
	list := make([]election.Member, 0, len(ms))
	for _, m := range ms {
		if m.Self {
			continue
		}
		if !m.Shoal.Agent {
			continue // a stock serf agent in the pool: not a candidate
		}
		prio := m.Shoal.Priority
		// Alive is the failure detector's verdict only: a member cut off
		// by a partition stops granting renewals, and that is what ends
		// the lease of a coordinator without a quorum.
		list = append(list, election.Member{Name: m.Name, Priority: prio,
			Alive: m.Status == mesh.StatusAlive, Left: m.Status == mesh.StatusLeft})
	}
	if slices.Equal(list, r.members) {
		return
	}
	r.members = list
	r.node.SetMembers(list)
}

// flush persists the HardState if it changed, then sends the outbox. If the
// state cannot be written, nothing is sent: a promise not on disk must not
// leave the node.
func (r *electionRunner) flush() {
	msgs := r.node.Messages()
	if hs := r.node.HardState(); hs != r.savedHS && r.dataDir != "" {
		if err := saveHardState(filepath.Join(r.dataDir, electionStateFile), hs); err != nil {
			r.persistErrs.Add(1)
			r.log.Error("cannot persist election state; not sending", "err", err)
			return
		}
		r.savedHS = hs
	}
	for _, m := range msgs {
		b, err := m.Marshal()
		if err != nil {
			r.log.Error("encode election message", "msg", m.String(), "err", err)
			continue
		}
		if err := r.deps.send(m.To, b); err != nil {
			r.sendErrs.Add(1)
			r.log.Debug("send election message", "to", m.To, "err", err)
		}
	}
}

// publish copies the Node's view into the snapshot that other goroutines read.
func (r *electionRunner) publish() {
	now := r.clock.Now()
	st := r.node.Status()
	lease, ok := r.node.Lease()
	// The lease counts from the tick at which the renewal a quorum
	// granted was sent: it ends LeaseTicks later by this node's clock.
	var until time.Time
	if from, ok2 := r.node.LeaseFrom(); ok && ok2 {
		until = r.tickTime(from + uint64(r.lease))
	}
	acting := ok && now.Before(until)
	holding := st.IsSelf && !acting
	if !acting {
		until = time.Time{}
	}
	// The acting log's line goes out before the state in which this node
	// may act becomes visible (the scaler reads the snapshot), and the end
	// line after it is withdrawn.
	if acting {
		if err := r.actLog.note(now, true, lease.Term, until); err != nil {
			r.log.Warn("acting log", "err", err)
		}
	} else {
		defer func() {
			if err := r.actLog.note(r.clock.Now(), false, 0, time.Time{}); err != nil {
				r.log.Warn("acting log", "err", err)
			}
		}()
	}
	prio := 0
	if st.Coordinator == r.deps.node {
		prio = r.deps.priority
	} else {
		for _, m := range r.members {
			if m.Name == st.Coordinator {
				prio = m.Priority
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap
	s := electionSnapshot{status: st, metrics: r.node.Metrics(), lease: lease, leaseOK: acting, leaseUntil: until,
		holding: holding, coordPrio: prio, since: old.since}
	if st.Coordinator != old.status.Coordinator || st.Term != old.status.Term || old.since.IsZero() {
		s.since = now
	}
	s.electStart, s.electedAfter = old.electStart, old.electedAfter
	switch {
	case st.Coordinator == "" && st.Electing && s.electStart.IsZero():
		s.electStart = now
	case st.Coordinator != "" && !s.electStart.IsZero():
		s.electedAfter = now.Sub(s.electStart)
		s.electStart = time.Time{}
		r.electSeconds.Observe(s.electedAfter.Seconds())
	}
	changed := s.status.Coordinator != old.status.Coordinator || s.status.Term != old.status.Term ||
		s.status.Acting != old.status.Acting || s.leaseOK != old.leaseOK || s.status.Electing != old.status.Electing
	r.snap = s
	if changed {
		close(r.waitCh)
		r.waitCh = make(chan struct{})
	}
}

func (r *electionRunner) snapshot() (electionSnapshot, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap, r.waitCh
}

// act records one (no-op) action if this node may act now. Called by run.
func (r *electionRunner) act() actResult {
	lease, ok := r.Lease()
	if !ok {
		return actResult{err: ErrNotCoordinator}
	}
	r.actSeq++
	a := client.LeaderAction{Node: r.deps.node, Holder: lease.Holder, Priority: lease.Priority, Term: lease.Term,
		Time: r.clock.Now().UTC().Format(time.RFC3339Nano), Seq: r.actSeq}
	if r.actionLog != nil {
		b, _ := json.Marshal(a)
		if _, err := r.actionLog.Write(append(b, '\n')); err != nil {
			return actResult{err: fmt.Errorf("action log: %w", err)}
		}
	}
	return actResult{action: a}
}

// Request asks for a coordinator: an election starts if none is known.
func (r *electionRunner) Request() {
	select {
	case r.reqs <- struct{}{}:
	default:
	}
}

// Coordinate asks for a coordinator and waits until this node names one,
// returning its lease view: the coordinator's name and term, and whether
// this node is it and may act. It returns ctx's error if none is named in
// time.
func (r *electionRunner) Coordinate(ctx context.Context) (election.Status, error) {
	r.Request()
	// Asked again after every tick in which the snapshot did not change
	// (a parked election waits for Request).
	t := r.clock.NewTicker(r.tick)
	defer t.Stop()
	for {
		s, ch := r.snapshot()
		if s.status.Coordinator != "" {
			return s.status, nil
		}
		select {
		case <-ctx.Done():
			return s.status, ctx.Err()
		case <-r.done:
			return s.status, ErrElectionStopped
		case <-ch:
			t.Reset(r.tick)
		case <-t.C():
			r.Request()
		}
	}
}

// Lease returns the lease to act under and true while this node acts.
// Check it right before every action and attach it to the action.
func (r *electionRunner) Lease() (election.Lease, bool) {
	s, _ := r.snapshot()
	if !s.leaseOK || !r.clock.Now().Before(s.leaseUntil) {
		return election.Lease{}, false
	}
	return s.lease, true
}

// stopActing withdraws the snapshot's lease and writes the acting log's end
// line, when the runner stops. Called by run.
func (r *electionRunner) stopActing() {
	r.mu.Lock()
	r.snap.leaseOK, r.snap.leaseUntil = false, time.Time{}
	r.mu.Unlock()
	if err := r.actLog.note(r.clock.Now(), false, 0, time.Time{}); err != nil {
		r.log.Warn("acting log", "err", err)
	}
}

// Act attempts one action as coordinator: if this node acts (checked by the
// goroutine that owns the Node, in order with the messages it received), the
// action is appended to DataDir/actions.jsonl with its lease and time.
func (r *electionRunner) Act(ctx context.Context) (client.LeaderAction, error) {
	reply := make(chan actResult, 1)
	select {
	case r.acts <- reply:
	case <-r.done:
		return client.LeaderAction{}, ErrElectionStopped
	case <-ctx.Done():
		return client.LeaderAction{}, ctx.Err()
	}
	res := <-reply
	return res.action, res.err
}

func (r *electionRunner) leaderView() client.Leader {
	s, _ := r.snapshot()
	st := s.status
	l := client.Leader{
		Node: r.deps.node, Coordinator: st.Coordinator, Term: st.Term, Priority: s.coordPrio,
		Acting: s.leaseOK && r.clock.Now().Before(s.leaseUntil), IsSelf: st.IsSelf, Since: s.since.UTC().Format(time.RFC3339),
		QuorumSeen: st.QuorumSeen, QuorumNeeded: st.Quorum, Electing: st.Electing, Holding: s.holding,
	}
	if l.Acting {
		l.LeaseUntil = s.leaseUntil.UTC().Format(time.RFC3339Nano)
	}
	return l
}

// readActions reads the action log from the data directory.
func (r *electionRunner) readActions() ([]client.LeaderAction, error) {
	out := []client.LeaderAction{}
	if r.dataDir == "" {
		return out, nil
	}
	return ReadActionLog(filepath.Join(r.dataDir, actionLogFile))
}

// ReadActionLog reads an action log (DataDir/actions.jsonl). A torn last
// line (the process was killed while writing it) is skipped.
func ReadActionLog(path string) ([]client.LeaderAction, error) {
	out := []client.LeaderAction{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a client.LeaderAction
		if json.Unmarshal(sc.Bytes(), &a) == nil {
			out = append(out, a)
		}
	}
	return out, sc.Err()
}

// markCoordinator sets Coordinator on the member this node names.
func (a *Agent) markCoordinator(ms []client.Member) {
	r := a.runner()
	if r == nil {
		return
	}
	s, _ := r.snapshot()
	for i := range ms {
		ms[i].Coordinator = s.status.Coordinator != "" && ms[i].Name == s.status.Coordinator
	}
}

func (a *Agent) registerElectionRoutes(mux *http.ServeMux, reg *prometheus.Registry) {
	r := a.runner()
	if r == nil {
		return
	}
	reg.MustRegister(r.electSeconds, &electionCollector{r: r})
	mux.HandleFunc("GET /v1/leader", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusOK, r.leaderView())
	})
	mux.HandleFunc("POST /v1/leader/elect", func(w http.ResponseWriter, req *http.Request) {
		r.Request()
		writeJSON(w, http.StatusOK, r.leaderView())
	})
	// The action log is a test hook (each call appends to actions.jsonl):
	// served only with --enable-debug or on the local profile.
	if !a.cfg.preset().DebugHooks {
		return
	}
	mux.HandleFunc("POST /v1/leader/act", func(w http.ResponseWriter, req *http.Request) {
		act, err := r.Act(req.Context())
		switch {
		case errors.Is(err, ErrNotCoordinator):
			writeJSON(w, http.StatusOK, client.ActResponse{Reason: err.Error()})
		case err != nil:
			writeErr(w, http.StatusInternalServerError, err)
		default:
			writeJSON(w, http.StatusOK, client.ActResponse{Acted: true, Action: &act})
		}
	})
	mux.HandleFunc("GET /v1/leader/actions", func(w http.ResponseWriter, req *http.Request) {
		acts, err := r.readActions()
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, acts)
	})
}

// electionCollector reads the snapshot at scrape time.
type electionCollector struct {
	r                                                   *electionRunner
	started, won, term, acting, lastElect, sent         *prometheus.Desc
	recvd, bad, sendErrs, quorumSeen, quorumNeed, lost  *prometheus.Desc
	stepDowns, claimsFailed, holding, persistErrs, full *prometheus.Desc
	stalls                                              *prometheus.Desc
}

func (c *electionCollector) descs() []*prometheus.Desc {
	if c.started == nil {
		d := descMaker("shoal_election_")
		c.started = d("started_total", "Elections this node started.")
		c.won = d("won_total", "Claims that made this node coordinator.")
		c.term = d("term", "Term of the coordinator this node names (0: none).")
		c.acting = d("acting", "1 while this node acts as coordinator.")
		c.lastElect = d("last_elect_seconds", "Time from losing or lacking a coordinator to naming one, last election.")
		c.sent = d("messages_sent_total", "Election messages sent, by type (lease: renewals and grants).", "type")
		c.recvd = d("messages_received_total", "Election messages received from the mesh.")
		c.bad = d("messages_dropped_total", "Election messages dropped: undecodable, mislabelled or refused.")
		c.full = d("inbox_overflow_total", "Election messages dropped because the inbox was full.")
		c.sendErrs = d("send_errors_total", "Election messages that could not be sent.")
		c.quorumSeen = d("quorum_seen", "Committed members seen alive, counting this node.")
		c.quorumNeed = d("quorum_needed", "Members needed to act.")
		c.lost = d("coordinator_lost_total", "Times the named coordinator left or failed.")
		c.stepDowns = d("step_downs_total", "Times this node stopped acting.")
		c.claimsFailed = d("claims_failed_total", "Claims that timed out without a quorum.")
		c.holding = d("holding", "1 while this node won its term but holds no lease.")
		c.persistErrs = d("persist_errors_total", "Failed writes of the election state.")
		c.stalls = d("stalls_total", "Times the election loop came back more than a renewal interval late (a stopped process, a long GC, a starved core) and ran the ticks it missed as a stall: for a lease after one it claims nothing and takes over no election from a lower rank.")
	}
	return []*prometheus.Desc{c.started, c.won, c.term, c.acting, c.lastElect, c.sent, c.recvd, c.bad, c.full,
		c.sendErrs, c.quorumSeen, c.quorumNeed, c.lost, c.stepDowns, c.claimsFailed, c.holding, c.persistErrs, c.stalls}
}

func (c *electionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

func (c *electionCollector) Collect(ch chan<- prometheus.Metric) {
	c.descs()
	s, _ := c.r.snapshot()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	ctr := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m := s.metrics
	ctr(c.started, m.ElectionsStarted)
	ctr(c.won, m.ElectionsWon)
	g(c.term, float64(s.status.Term))
	g(c.acting, b2f(s.leaseOK))
	g(c.lastElect, s.electedAfter.Seconds())
	ctr(c.sent, m.Sent.Challenge, "challenge")
	ctr(c.sent, m.Sent.Answer, "answer")
	ctr(c.sent, m.Sent.Coordinator, "coordinator")
	ctr(c.sent, m.Sent.Ack, "ack")
	ctr(c.sent, m.Sent.Nack, "nack")
	ctr(c.sent, m.Sent.Lease, "lease")
	ctr(c.recvd, c.r.recvd.Load())
	ctr(c.bad, c.r.bad.Load())
	ctr(c.full, c.r.inboxFull.Load())
	ctr(c.sendErrs, c.r.sendErrs.Load())
	g(c.quorumSeen, float64(s.status.QuorumSeen))
	g(c.quorumNeed, float64(s.status.Quorum))
	ctr(c.lost, m.CoordinatorLost)
	ctr(c.stepDowns, m.StepDowns)
	ctr(c.claimsFailed, m.ClaimsFailed)
	g(c.holding, b2f(s.holding))
	ctr(c.persistErrs, c.r.persistErrs.Load())
	ctr(c.stalls, c.r.stalls.Load())
}
