package election

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// SimConfig configures a Sim.
type SimConfig struct {
	// Seed seeds the network's losses and delays and every node's jitter.
	Seed uint64
	// Loss is the probability that a message is lost in Step mode.
	Loss float64
	// MaxDelay is the largest extra delay, in ticks, of a message in Step
	// mode: each is delivered 1 to 1+MaxDelay ticks after it is sent.
	MaxDelay int
	// Node is the template of every node's Config. Name, Priority and
	// Rand are set per node.
	Node Config
}

// Sim is a simulated mesh of Nodes on a simulated network that loses,
// delays, partitions and heals, with a perfect failure detector: every node
// sees a member alive exactly when it is up and on its side of the
// partition. It runs in one goroutine, deterministically for a seed. Tests
// and benchmarks use it; it is exported so that other packages' tests can
// reuse it.
//
// While it runs it checks three invariants: no two holders ever act under
// one term; no two holders act at the same tick; and no node acts while its
// side of the partition holds fewer than a quorum of the members (after a
// Cut, which the failure detector does not see, from LeaseTicks after it).
// Violations lists what broke them.
type Sim struct {
	cfg        SimConfig
	rng        *rand.Rand
	nodes      []*simNode
	byName     map[string]*simNode
	queue      []simMsg
	now        uint64
	acted      map[uint64]string
	violations []string
	blind      bool   // the partition is unseen by the failure detector
	cutAt      uint64 // the tick of the last Cut, or of a failure during one

	// Sent counts the messages the nodes handed to the network; LeaseSent
	// those of them that were lease renewals and grants (the coordinator's
	// steady heartbeat, 2(N-1) per renewal).
	Sent      MsgCounts
	LeaseSent uint64
	// Trace, if set, receives a line for every delivered message.
	Trace func(string)
	// Delivered, when set, is called with every message a node stepped
	// without error (tests record them to replay later).
	Delivered func(Message)
	// Lost counts messages lost by the network or undeliverable (the
	// receiver is down, gone, or across a partition).
	Lost uint64
}

type simNode struct {
	node   *Node
	prio   int
	up     bool
	left   bool
	paused bool // stopped without the others' failure detector noticing
	group  int
	ticked uint64 // the Sim's tick at which it last ticked
}

type simMsg struct {
	m   Message
	due uint64
}

// Delivery is one message handled by Sim.Deliver.
type Delivery struct {
	Msg     Message
	Dropped bool   // not delivered
	Why     string // why it was dropped
	Err     error  // what Step returned
}

// NewSim returns an empty simulated mesh.
func NewSim(cfg SimConfig) *Sim {
	return &Sim{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5bd1e995)),
		byName: map[string]*simNode{},
		acted:  map[uint64]string{},
	}
}

// AddNode starts a node (up, on side 0 of any partition) and refreshes every
// node's view.
func (s *Sim) AddNode(name string, priority int) (*Node, error) {
	if err := s.AddNodes(Member{Name: name, Priority: priority}); err != nil {
		return nil, err
	}
	return s.byName[name].node, nil
}

// AddNodes starts several nodes at once (Alive is ignored) and refreshes
// every node's view once: the way to build a large mesh.
func (s *Sim) AddNodes(ms ...Member) error {
	for _, m := range ms {
		if _, ok := s.byName[m.Name]; ok {
			return fmt.Errorf("sim: node %q exists", m.Name)
		}
		c := s.cfg.Node
		c.Name, c.Priority = m.Name, m.Priority
		c.Rand = rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))
		n, err := New(c)
		if err != nil {
			return err
		}
		sn := &simNode{node: n, prio: m.Priority, up: true}
		s.nodes = append(s.nodes, sn)
		s.byName[m.Name] = sn
	}
	s.refresh()
	return nil
}

// Node returns the named node, or nil.
func (s *Sim) Node(name string) *Node {
	if sn := s.byName[name]; sn != nil {
		return sn.node
	}
	return nil
}

// Names returns the names of all nodes that have not left, in order of addition.
func (s *Sim) Names() []string {
	var out []string
	for _, sn := range s.nodes {
		if !sn.left {
			out = append(out, sn.node.Name())
		}
	}
	return out
}

// Up reports whether the named node is up (and has not left).
func (s *Sim) Up(name string) bool {
	sn := s.byName[name]
	return sn != nil && sn.up && !sn.left
}

func (s *Sim) get(name string) (*simNode, error) {
	sn := s.byName[name]
	if sn == nil || sn.left {
		return nil, fmt.Errorf("sim: no node %q", name)
	}
	return sn, nil
}

// Kill stops a node: it neither ticks nor receives, and every other node sees
// it failed. Its state is kept (as with SIGSTOP); Revive resumes it.
func (s *Sim) Kill(name string) error { return s.setUp(name, false) }

// Revive resumes a killed node.
func (s *Sim) Revive(name string) error { return s.setUp(name, true) }

// Pause stops a node the way SIGSTOP or a long GC pause does before the
// failure detector notices: it neither ticks nor handles messages (they wait
// for it), and every other node still sees it alive. Resume continues it.
func (s *Sim) Pause(name string) error {
	sn, err := s.get(name)
	if err != nil {
		return err
	}
	sn.paused = true
	return nil
}

// Resume continues a paused node. As the agent's adapter does with its
// monotonic clock, the node first ticks for the time it missed, then the
// messages that waited for it are delivered in order.
func (s *Sim) Resume(name string) error {
	sn, err := s.get(name)
	if err != nil {
		return err
	}
	if !sn.paused {
		return nil
	}
	sn.paused = false
	if sn.up {
		s.catchUp(sn)
	}
	s.refresh()
	var mine, rest []simMsg
	for _, sm := range s.queue {
		if sm.m.To == name && sm.due <= s.now {
			mine = append(mine, sm)
		} else {
			rest = append(rest, sm)
		}
	}
	s.queue = rest
	for _, sm := range mine {
		_, _, _ = s.deliver(sm.m)
	}
	s.checkOverlap()
	return nil
}

// catchUp ticks a node for the ticks it missed, all at once and before it
// sends anything, as the adapter does when its process resumes.
func (s *Sim) catchUp(sn *simNode) {
	switch missed := s.now - sn.ticked; {
	case missed > 1:
		sn.node.Stalled(missed)
	case missed == 1:
		sn.node.Tick()
	}
	sn.ticked = s.now
	// The caller refreshes the node's view next (what the failure
	// detector learnt meanwhile), and checks the invariants then: the
	// adapter too ticks, reads the view, and only then publishes.
	s.send(sn)
}

// checkOverlap checks that at most one holder acts at this tick among the
// nodes that run (a paused node does nothing until its adapter's clock has
// caught up, see Resume).
func (s *Sim) checkOverlap() {
	holder := ""
	var term uint64
	for _, sn := range s.nodes {
		if !sn.up || sn.left || sn.paused {
			continue
		}
		if l, ok := sn.node.Lease(); ok {
			if holder != "" {
				s.violate("tick %d: %s acts under term %d while %s acts under term %d", s.now, l.Holder, l.Term, holder, term)
			}
			holder, term = l.Holder, l.Term
		}
	}
}

func (s *Sim) setUp(name string, up bool) error {
	sn, err := s.get(name)
	if err != nil {
		return err
	}
	if up && !sn.up && !sn.paused {
		// The adapter's clock ran on while the process was stopped: the
		// node ticks for the time it missed before it does anything.
		sn.up = true
		s.catchUp(sn)
	}
	sn.up = up
	if s.blind {
		// A side can lose its quorum to a failure during a cut the nodes
		// cannot see: its coordinator has the lease's LeaseTicks from now.
		s.cutAt = s.now
	}
	s.refresh()
	return nil
}

// Leave removes a node from the mesh, as a graceful leave does.
func (s *Sim) Leave(name string) error {
	sn, err := s.get(name)
	if err != nil {
		return err
	}
	sn.left, sn.up = true, false
	s.refresh()
	return nil
}

// Partition splits the mesh: each group is one side; nodes not named stay on
// side 0 together.
func (s *Sim) Partition(groups ...[]string) error {
	s.blind = false
	return s.partition(groups...)
}

func (s *Sim) partition(groups ...[]string) error {
	for _, sn := range s.nodes {
		sn.group = 0
	}
	for i, g := range groups {
		for _, name := range g {
			sn, err := s.get(name)
			if err != nil {
				return err
			}
			sn.group = i + 1
		}
	}
	s.refresh()
	return nil
}

// Cut splits the network as Partition does, but unseen by the failure
// detector: every node still sees every up member alive, as in the first
// seconds of a real partition (serf takes far longer to notice than a
// lease). Heal ends it.
func (s *Sim) Cut(groups ...[]string) error {
	s.blind, s.cutAt = true, s.now
	return s.partition(groups...)
}

// Reveal lets the failure detector see a Cut: it becomes a Partition.
func (s *Sim) Reveal() {
	if s.blind {
		s.blind = false
		s.refresh()
	}
}

// Heal ends any partition or cut.
func (s *Sim) Heal() { _ = s.Partition() }

// Restart replaces a node with a fresh one of the same name that restores
// the old one's HardState (a process killed and started again with the same
// data directory), quickly enough that no other node saw it fail. Messages
// in flight to the old process are lost.
func (s *Sim) Restart(name string) error {
	sn, err := s.get(name)
	if err != nil {
		return err
	}
	return s.restart(sn, name)
}

// RestartAs restarts the named node as Restart does, with another
// priority (a process restarted with a new --priority).
func (s *Sim) RestartAs(name string, priority int) error {
	sn, err := s.get(name)
	if err != nil {
		return err
	}
	sn.prio = priority
	return s.restart(sn, name)
}

func (s *Sim) restart(sn *simNode, name string) error {
	c := s.cfg.Node
	c.Name, c.Priority = name, sn.prio
	c.Rand = rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))
	c.Restore = sn.node.HardState()
	n, err := New(c)
	if err != nil {
		return err
	}
	var rest []simMsg
	for _, sm := range s.queue {
		if sm.m.To != name {
			rest = append(rest, sm)
		}
	}
	s.queue = rest
	sn.node, sn.up, sn.paused, sn.ticked = n, true, false, s.now
	s.refresh()
	return nil
}

// SetLoss changes the loss probability.
func (s *Sim) SetLoss(p float64) { s.cfg.Loss = p }

// Request calls Request on the named node.
func (s *Sim) Request(name string) error {
	sn, err := s.get(name)
	if err != nil {
		return err
	}
	if !sn.up {
		return fmt.Errorf("sim: node %q is down", name)
	}
	if sn.paused {
		return fmt.Errorf("sim: node %q is paused", name)
	}
	sn.node.Request()
	s.after(sn)
	return nil
}

// refresh gives every up node its view of the mesh.
func (s *Sim) refresh() {
	views := map[int][]Member{}
	for _, sn := range s.nodes {
		if !sn.up || sn.left || sn.paused {
			continue
		}
		g := sn.group
		if s.blind {
			g = 0
		}
		v, ok := views[g]
		if !ok {
			for _, o := range s.nodes {
				v = append(v, Member{Name: o.node.Name(), Priority: o.prio, Alive: o.up && !o.left && (o.group == sn.group || s.blind), Left: o.left})
			}
			views[g] = v
		}
		sn.node.SetMembers(v)
		s.after(sn)
	}
}

// after drains a node's outbox into the network and checks the invariants.
func (s *Sim) after(sn *simNode) {
	if sn.paused {
		return
	}
	s.send(sn)
	s.check(sn)
}

// send drains a node's outbox into the network.
func (s *Sim) send(sn *simNode) {
	for _, m := range sn.node.Messages() {
		s.Sent.add(m)
		if m.Lease && m.Type != MsgNack {
			s.LeaseSent++
		}
		d := uint64(1)
		if s.cfg.MaxDelay > 0 {
			d += uint64(s.rng.IntN(s.cfg.MaxDelay + 1))
		}
		s.queue = append(s.queue, simMsg{m: m, due: s.now + d})
	}
}

// check checks the invariants after a node has done something.
func (s *Sim) check(sn *simNode) {
	l, ok := sn.node.Lease()
	if !ok {
		return
	}
	if h, seen := s.acted[l.Term]; seen && h != l.Holder {
		s.violate("tick %d: %s acts under term %d, which %s acted under", s.now, l.Holder, l.Term, h)
	}
	s.acted[l.Term] = l.Holder
	total, side := 0, 0
	for _, o := range s.nodes {
		if o.left {
			continue
		}
		total++
		if o.up && o.group == sn.group {
			side++
		}
	}
	need := s.cfg.Node.Quorum
	if need == 0 {
		need = total/2 + 1
	}
	// A cut the nodes cannot see leaves a coordinator on the minority
	// side its lease: it must stop within LeaseTicks.
	if side < need && (!s.blind || s.now > s.cutAt+uint64(s.cfg.Node.LeaseTicks)) {
		s.violate("tick %d: %s acts under term %d on a side of %d of %d members (its view: %v)", s.now, l.Holder, l.Term, side, total, sn.node.Status())
	}
}

func (s *Sim) violate(format string, args ...any) {
	if len(s.violations) < 20 {
		s.violations = append(s.violations, fmt.Sprintf(format, args...))
	}
}

// Violations returns the invariant violations seen so far.
func (s *Sim) Violations() []string { return s.violations }

// Acted returns, for every term that some node acted under, its holder.
func (s *Sim) Acted() map[uint64]string { return s.acted }

// TickAll ticks every up node once, without delivering anything.
func (s *Sim) TickAll() {
	s.now++
	for _, sn := range s.nodes {
		if sn.up && !sn.left && !sn.paused {
			sn.ticked = s.now
			sn.node.Tick()
			s.after(sn)
		}
	}
	s.checkOverlap()
}

// Deliver delivers every message now in flight (whatever its delay; not the
// ones sent in reply), in the order sent, except those for which drop returns
// true (drop may be nil) and those the partition or a dead receiver stops.
// It ignores Loss.
func (s *Sim) Deliver(drop func(Message) bool) []Delivery {
	q := s.queue
	s.queue = nil
	out := make([]Delivery, 0, len(q))
	for _, sm := range q {
		if s.held(sm.m) {
			s.queue = append(s.queue, sm)
			continue
		}
		d := Delivery{Msg: sm.m}
		if drop != nil && drop(sm.m) {
			d.Dropped, d.Why = true, "dropped"
			s.Lost++
		} else {
			d.Dropped, d.Why, d.Err = s.deliver(sm.m)
		}
		out = append(out, d)
	}
	return out
}

func (s *Sim) deliver(m Message) (bool, string, error) {
	to, from := s.byName[m.To], s.byName[m.From]
	switch {
	case to == nil || to.left:
		s.Lost++
		return true, "gone", nil
	case !to.up:
		s.Lost++
		return true, "down", nil
	case from != nil && from.group != to.group:
		s.Lost++
		return true, "partitioned", nil
	}
	err := to.node.Step(m)
	if err == nil && s.Delivered != nil {
		s.Delivered(m)
	}
	if s.Trace != nil {
		s.Trace(fmt.Sprintf("%d %v -> %v", s.now, m, to.node))
	}
	s.after(to)
	return false, "", err
}

// Step advances the simulation one tick: every up node ticks, then every
// message due is delivered (in random order, each lost with probability
// Loss).
func (s *Sim) Step() {
	s.TickAll()
	var due, later []simMsg
	for _, sm := range s.queue {
		if sm.due <= s.now {
			due = append(due, sm)
		} else {
			later = append(later, sm)
		}
	}
	s.queue = later
	s.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, sm := range due {
		if s.held(sm.m) {
			s.queue = append(s.queue, sm)
			continue
		}
		if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
			s.Lost++
			continue
		}
		_, _, _ = s.deliver(sm.m)
	}
	s.checkOverlap()
}

// held reports whether m waits for its paused receiver.
func (s *Sim) held(m Message) bool {
	to := s.byName[m.To]
	return to != nil && to.paused && to.up && !to.left
}

// InFlight returns the number of messages in flight, not counting those
// that wait for a paused receiver.
func (s *Sim) InFlight() int {
	k := 0
	for _, sm := range s.queue {
		if !s.held(sm.m) {
			k++
		}
	}
	return k
}

// Quiet reports whether no up node is busy and no message is in flight
// besides lease renewals and grants (the coordinator's steady heartbeat) and
// messages that wait for a paused receiver.
func (s *Sim) Quiet() bool {
	for _, sm := range s.queue {
		if s.held(sm.m) {
			continue
		}
		if !sm.m.Lease {
			return false
		}
		// A renewal to a node that names someone else (or no one) will
		// change its view.
		if to := s.byName[sm.m.To]; sm.m.Type == MsgCoordinator && to != nil && to.up && !to.left &&
			to.node.Status().Coordinator != sm.m.From {
			return false
		}
	}
	for _, sn := range s.nodes {
		if !sn.up || sn.left || sn.paused {
			continue
		}
		if sn.node.Busy() {
			return false
		}
		// A coordinator named but not acting: it is still winning its
		// lease, or the node will find out that it lost it.
		if c := s.byName[sn.node.Status().Coordinator]; c != nil && c.up && !c.left && !c.paused && !c.node.Acting() {
			return false
		}
	}
	return true
}

// Settle steps until the simulation is Quiet, at most maxTicks times, and
// returns the number of steps taken and whether it settled.
func (s *Sim) Settle(maxTicks int) (int, bool) {
	for i := 0; i < maxTicks; i++ {
		if s.Quiet() {
			return i, true
		}
		s.Step()
	}
	return maxTicks, s.Quiet()
}

// Majority returns the up nodes of the side of the partition that holds a
// quorum of the members (by the template Config's Quorum, or a majority),
// or nil if no side does.
func (s *Sim) Majority() []string {
	total := 0
	sides := map[int][]string{}
	for _, sn := range s.nodes {
		if sn.left {
			continue
		}
		total++
		if sn.up {
			sides[sn.group] = append(sides[sn.group], sn.node.Name())
		}
	}
	need := s.cfg.Node.Quorum
	if need == 0 {
		need = total/2 + 1
	}
	keys := make([]int, 0, len(sides))
	for k := range sides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(sides[k]) >= need {
			return sides[k]
		}
	}
	return nil
}

// Highest returns the highest-ranked of the named nodes: the naive reference
// for who should be coordinator.
func (s *Sim) Highest(names []string) string {
	best := ""
	var br Rank
	for _, name := range names {
		r := Rank{s.byName[name].prio, name}
		if best == "" || r.Compare(br) > 0 {
			best, br = name, r
		}
	}
	return best
}
