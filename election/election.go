package election

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
)

// Errors returned by Step, wrapped with the message's details.
var (
	// ErrWrongRecipient: the message is addressed to another node.
	ErrWrongRecipient = errors.New("election: message for another node")
	// ErrUnknownMember: the sender is not a member this node knows; the
	// message is ignored (it may be early, ahead of the membership view).
	ErrUnknownMember = errors.New("election: message from unknown member")
)

// Member is one entry of the mesh's membership view, as the adapter passes it
// to SetMembers.
type Member struct {
	Name     string
	Priority int
	// Alive is the mesh's failure detector's verdict. Keep failed members
	// in the list with Alive false.
	Alive bool
	// Left marks a member that left gracefully (serf's StatusLeft): it
	// stops counting at once. A member that is merely missing from the
	// list (reaped after a failure) keeps counting until this node sees a
	// quorum of its committed set; see the package doc.
	Left bool
}

// Rank orders nodes: higher Priority wins; between equal priorities the
// lexicographically greater Name (byte-wise, as Go compares strings) wins.
type Rank struct {
	Priority int
	Name     string
}

// Compare returns -1, 0 or +1 as r ranks below, equal to or above o.
func (r Rank) Compare(o Rank) int {
	if c := cmp.Compare(r.Priority, o.Priority); c != 0 {
		return c
	}
	return cmp.Compare(r.Name, o.Name)
}

// HardState is what a node must keep across restarts: the highest term it
// promised and to whom, and the highest term it has seen. Save it (Node.HardState)
// before sending the messages returned by Messages, and pass it back in
// Config.Restore.
type HardState struct {
	Term      uint64 // the promised term
	Holder    string // to whom it was promised
	MaxTerm   uint64 // the highest term seen
	MaxHolder string // who claimed MaxTerm, "" when unknown
}

// Check reports whether hs can be restored: terms up to TermLimit, names
// up to MaxNameLen bytes. Config.Restore must pass it; an adapter checks
// a state it reads from a file with it.
func (hs HardState) Check() error {
	switch {
	case hs.Term > TermLimit || hs.MaxTerm > TermLimit:
		return fmt.Errorf("%w: term %d or highest term %d above the limit %d", ErrInvalidConfig, hs.Term, hs.MaxTerm, uint64(TermLimit))
	case len(hs.Holder) > MaxNameLen || len(hs.MaxHolder) > MaxNameLen:
		return fmt.Errorf("%w: a holder's name of %d or %d bytes, at most %d", ErrInvalidConfig, len(hs.Holder), len(hs.MaxHolder), MaxNameLen)
	}
	return nil
}

// Status is a snapshot of a node's view of the election.
type Status struct {
	Name        string
	Coordinator string // the coordinator this node names; "" when none is known
	Term        uint64 // the Coordinator's term
	Acting      bool   // this node is the coordinator and may act now
	IsSelf      bool   // Coordinator is this node (claimed, maybe not yet acting)
	Since       uint64 // tick at which this node started naming Coordinator
	QuorumSeen  int    // committed members seen alive, counting this node
	Quorum      int    // members needed to act
	Electing    bool   // an election is running or waiting for a quorum here
	Tick        uint64 // ticks since New
}

func (s Status) String() string {
	c := s.Coordinator
	if c == "" {
		c = "-"
	}
	return fmt.Sprintf("%s: coordinator=%s term=%d acting=%t self=%t since=%d quorum=%d/%d electing=%t",
		s.Name, c, s.Term, s.Acting, s.IsSelf, s.Since, s.QuorumSeen, s.Quorum, s.Electing)
}

// MsgCounts counts messages by type. Lease counts renewals and grants (an
// acting coordinator's heartbeat), which the other counts leave out.
type MsgCounts struct {
	Challenge, Answer, Coordinator, Ack, Nack, Lease uint64
}

// Total is the sum over all types.
func (c MsgCounts) Total() uint64 {
	return c.Challenge + c.Answer + c.Coordinator + c.Ack + c.Nack + c.Lease
}

func (c *MsgCounts) add(m Message) {
	if m.Lease && m.Type != MsgNack {
		c.Lease++
		return
	}
	switch m.Type {
	case MsgChallenge:
		c.Challenge++
	case MsgAnswer:
		c.Answer++
	case MsgCoordinator:
		c.Coordinator++
	case MsgAck:
		c.Ack++
	case MsgNack:
		c.Nack++
	}
}

// Metrics are a node's counters, for people (the adapter exports them; it
// turns ticks into seconds).
type Metrics struct {
	ElectionsStarted uint64 // elections this node started
	ElectionsWon     uint64 // claims that made this node coordinator
	ElectionsSettled uint64 // elections that ended with a known coordinator
	ClaimsStarted    uint64 // terms this node claimed
	ClaimsFailed     uint64 // claims that timed out without a quorum
	StepDowns        uint64 // times this node stopped acting
	Preemptions      uint64 // takeovers from a lower coordinator started here
	CoordinatorLost  uint64 // times the named coordinator left or failed
	ElectTicksLast   uint64 // ticks from start to settle of the last election
	ElectTicksTotal  uint64 // sum over settled elections (mean = /ElectionsSettled)
	Sent             MsgCounts
}

type state uint8

const (
	stateIdle  state = iota // no election here (perhaps one pending a quorum)
	stateWait               // waiting for a claim from a higher rank
	stateProbe              // challenged a higher rank, waiting for an Answer
	stateClaim              // claimed a term, collecting acknowledgements
	stateLead               // won: acting while the quorum is seen
)

var stateNames = [...]string{"idle", "wait", "probe", "claim", "lead"}

type startMode uint8

const (
	modeNow  startMode = iota // probe the highest rank, or claim if none
	modeLost                  // the coordinator is lost: the highest claims, others wait for it
	modeWait                  // everyone waits for a claim or announcement first
)

type member struct {
	prio      int
	alive     bool
	listed    bool // in the last SetMembers
	committed bool // counts towards the quorum
}

// Node is one member's election state machine. It does no I/O and keeps no
// clock: the adapter calls SetMembers, Request, Tick and Step, then drains
// Messages and sends them. A Node is not safe for concurrent use: call it from
// one goroutine (or under one lock).
type Node struct {
	cfg  Config
	log  *slog.Logger
	self Rank

	members map[string]*member
	order   []string // listed members and self, by rank, highest first

	now      uint64
	st       state
	timer    int
	pending  bool // an election is wanted but no quorum is seen
	electing bool
	elStart  uint64

	target    string // stateProbe: whom we challenged
	attempts  int    // stateProbe: challenges sent to target
	waitFor   string // stateWait: the higher rank expected to claim ("" any)
	thenClaim bool   // stateWait: claim when the wait runs out (the coordinator was lost)

	promTerm    uint64 // the highest term promised
	promHolder  string // to whom
	prevTerm    uint64 // the promise held before promTerm (repeated in re-acks)
	prevHolder  string
	maxTerm     uint64
	maxHolder   string // who claimed maxTerm, "" when unknown
	coord       string
	coordTerm   uint64
	coordSince  uint64
	claimTerm   uint64
	claimFails  int  // claims made in this election without winning
	claimOpen   bool // the last claim neither won nor was redirected
	acks        map[string]bool
	hoTerm      uint64 // highest earlier holder reported by acks...
	hoHolder    string // ...who must hand over if alive
	lastCoord   string // a coordinator we are taking over from: must hand over
	retrans     int
	crossing    bool   // stateClaim: a lower rank refused this claim's number, promised to itself or another lower rank
	crossedAt   uint64 // the tick of that refusal
	preemptWait int    // -1 none; ticks until preemption

	// Leases (see the package doc).
	leaseFrom   uint64            // stateLead: the tick the lease counts from
	leased      bool              // stateLead: a quorum granted a renewal of this term
	wonAt       uint64            // stateLead: the tick it won its term
	grants      map[string]uint64 // stateLead: the latest stamp each member granted
	nacked      map[string]bool   // stateLead: members that refused it, promised to a later term
	renewIn     int               // stateLead: ticks to the next renewal
	guardHolder string            // whom this node last granted a lease...
	guardUntil  uint64            // ...so it grants no other holder before this tick
	grantTerm   uint64            // the term of guardHolder's renewals granted...
	grantStamp  uint64            // ...and the newest stamp granted under it
	heard       uint64            // the tick of the last renewal from coord
	deferred    *Message          // a claim held until the guard runs out
	suspect     map[string]bool   // coordinators lost by missing renewals
	quietUntil  uint64            // no election for want before this tick
	meekUntil   uint64            // after losing its lease: no bully takeover before this tick
	listenUntil uint64            // after a stall: Request starts no election before this tick
	want        bool              // something here needs a coordinator
	stalled     bool              // ticking for time it was stopped (Stalled)
	leaving     bool              // leaving or shutting down: never act again

	outbox  []Message
	metrics Metrics
}

// New returns a Node for cfg, or an error wrapping ErrInvalidConfig. The node
// knows only itself until SetMembers is called.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n := &Node{
		cfg:         cfg,
		log:         lg.With("component", "election", "node", cfg.Name),
		self:        Rank{cfg.Priority, cfg.Name},
		members:     map[string]*member{cfg.Name: {prio: cfg.Priority, alive: true, listed: true, committed: true}},
		order:       []string{cfg.Name},
		promTerm:    cfg.Restore.Term,
		promHolder:  cfg.Restore.Holder,
		maxTerm:     max(cfg.Restore.MaxTerm, cfg.Restore.Term),
		maxHolder:   cfg.Restore.MaxHolder,
		preemptWait: -1,
		suspect:     map[string]bool{},
		// Listen first: a restarted node hears the acting coordinator's
		// renewal before it runs an election of its own for want.
		quietUntil: uint64(cfg.LeaseTicks),
	}
	return n, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// HardState returns what must be persisted before the pending messages are sent.
func (n *Node) HardState() HardState {
	return HardState{Term: n.promTerm, Holder: n.promHolder, MaxTerm: n.maxTerm, MaxHolder: n.maxHolder}
}

// Metrics returns a copy of the node's counters.
func (n *Node) Metrics() Metrics { return n.metrics }

// Messages returns the messages waiting to be sent and empties the outbox.
// The caller sends each to m.To; losing, delaying, duplicating or reordering
// them is safe.
func (n *Node) Messages() []Message {
	out := n.outbox
	n.outbox = nil
	return out
}

// Acting reports whether this node is the coordinator and may act now: it
// won its term and holds a lease a quorum granted within LeaseTicks.
func (n *Node) Acting() bool {
	return n.st == stateLead && n.leased && n.now < n.leaseFrom+uint64(n.cfg.LeaseTicks)
}

// Lease returns the lease to act under and true while this node acts. Check
// it before every action and attach Lease.Term to the action.
func (n *Node) Lease() (Lease, bool) {
	if !n.Acting() {
		return Lease{}, false
	}
	return Lease{Holder: n.cfg.Name, Priority: n.cfg.Priority, Term: n.claimTerm}, true
}

// LeaseFrom returns the tick from which this node's lease counts, and true
// while it acts: the lease runs out at tick LeaseFrom+LeaseTicks. The adapter
// turns that into a time by the clock that drives its ticks (the lease
// counts from when the renewal was sent, so the time of tick LeaseFrom is
// early enough).
func (n *Node) LeaseFrom() (uint64, bool) {
	if !n.Acting() {
		return 0, false
	}
	return n.leaseFrom, true
}

// SetWant tells the node whether something on it needs a coordinator (a
// scaler is configured): while it does and none is known, the node runs an
// election on its own, at most once per LeaseTicks. A mesh where no node
// wants one stays lazy.
func (n *Node) SetWant(want bool) { n.want = want }

// Listen tells the node that it was stopped and its clock has just caught
// up (the adapter ticked it for the time it missed): it may have been
// replaced meanwhile, so for LeaseTicks it claims nothing, on its own or on
// Request (which waits for the end of it), and takes over no election from
// a lower rank; it listens for a coordinator that acts, and accepts it.
func (n *Node) Listen() {
	n.quietUntil = max(n.quietUntil, n.now+uint64(n.cfg.LeaseTicks))
	n.meekUntil = max(n.meekUntil, n.now+uint64(n.cfg.LeaseTicks))
	n.listenUntil = max(n.listenUntil, n.now+uint64(n.cfg.LeaseTicks))
}

// Stalled ticks the node k times at once, for time in which it was stopped
// (SIGSTOP, a long GC, a starved core) and read nothing, then calls Listen.
// Its own lease runs out in those ticks as it must. But it does not lose
// the coordinator it names for renewals it could not read (they may be
// waiting: it gives them RenewTicks from now), and it runs no election for
// want (SetWant) in them: a member stopped for a second must not elect on
// resuming before it reads the renewals that came meanwhile.
func (n *Node) Stalled(k uint64) {
	n.stalled = true
	for range k {
		n.Tick()
	}
	n.stalled = false
	if L := uint64(n.cfg.LeaseTicks); n.coord != "" && n.coord != n.cfg.Name && n.now > L {
		n.heard = max(n.heard, n.now-L)
	}
	n.Listen()
}

// Leave tells the node that it is leaving the mesh or shutting down: it stops
// acting at once and never claims, acts or takes over an election again.
func (n *Node) Leave() {
	if n.leaving {
		return
	}
	n.leaving = true
	n.deferred = nil
	switch n.st {
	case stateLead:
		n.stepDown("leaving")
	case stateWait, stateProbe, stateClaim:
		n.st = stateIdle
	}
	n.pending = false
	n.preemptWait = -1
}

// Busy reports whether the node has timers running (an election, a
// retransmission, a pending preemption). A simulation is settled when no
// node is busy and no message is in flight.
func (n *Node) Busy() bool {
	switch n.st {
	case stateWait, stateProbe, stateClaim:
		return true
	case stateLead:
		return !n.Acting() // waiting for a quorum of grants
	}
	return n.preemptWait >= 0 || n.deferred != nil || n.pending && n.hasQuorum() && !n.leaving
}

// Status returns a snapshot of the node's view.
func (n *Node) Status() Status {
	seen, need := n.quorum()
	return Status{
		Name:        n.cfg.Name,
		Coordinator: n.coord,
		Term:        n.coordTerm,
		Acting:      n.Acting(),
		IsSelf:      n.coord == n.cfg.Name,
		Since:       n.coordSince,
		QuorumSeen:  seen,
		Quorum:      need,
		Electing:    n.electing || n.pending,
		Tick:        n.now,
	}
}

// quorum returns how many committed members are seen alive (self included)
// and how many are needed.
func (n *Node) quorum() (seen, need int) {
	total := 0
	for _, m := range n.members {
		if m.committed {
			total++
			if m.alive {
				seen++
			}
		}
	}
	need = n.cfg.Quorum
	if need == 0 {
		need = total/2 + 1
	}
	return seen, need
}

// committedAmong returns how many committed members set holds, and how
// many are needed for a quorum.
func (n *Node) committedAmong(set map[string]bool) (k, need int) {
	for name, in := range set {
		if m, ok := n.members[name]; ok && m.committed && in {
			k++
		}
	}
	_, need = n.quorum()
	return k, need
}

func (n *Node) hasQuorum() bool {
	seen, need := n.quorum()
	return seen >= need
}

func (n *Node) rankOf(name string) Rank {
	if m, ok := n.members[name]; ok {
		return Rank{m.prio, name}
	}
	return Rank{Name: name}
}

func (n *Node) outranks(name string) bool { return n.self.Compare(n.rankOf(name)) > 0 }

// isAlive reports whether name is alive in the mesh's view and not a
// coordinator this node lost by missing its renewals.
func (n *Node) isAlive(name string) bool {
	m, ok := n.members[name]
	return ok && m.alive && !n.suspect[name]
}

// coordKnown reports whether this node names a coordinator it believes in.
func (n *Node) coordKnown() bool {
	if n.coord == "" {
		return false
	}
	if n.coord == n.cfg.Name {
		return n.Acting()
	}
	return n.isAlive(n.coord)
}

func (n *Node) jitter() int {
	if n.cfg.Jitter == 0 {
		return 0
	}
	return n.cfg.Rand.IntN(n.cfg.Jitter + 1)
}

func (n *Node) send(m Message) {
	m.From = n.cfg.Name
	n.metrics.Sent.add(m)
	n.outbox = append(n.outbox, m)
}

// seeTerm records a term number seen in a message, with its holder when the
// message names one.
func (n *Node) seeTerm(t uint64, holder string) {
	switch {
	case t > n.maxTerm:
		n.maxTerm, n.maxHolder = t, holder
	case t == n.maxTerm && n.maxHolder == "":
		n.maxHolder = holder
	}
}

// SetMembers replaces the membership view. Call it whenever the mesh's view
// changes (joins, leaves, failures, recoveries). Entries with an empty or
// over-long name are ignored; this node's own entry is taken from Config.
func (n *Node) SetMembers(list []Member) {
	wasAlive := make(map[string]bool, len(n.members))
	for name, m := range n.members {
		wasAlive[name] = m.alive
		if name != n.cfg.Name {
			m.listed, m.alive = false, false
		}
	}
	for _, e := range list {
		if e.Name == "" || len(e.Name) > MaxNameLen || e.Name == n.cfg.Name {
			continue
		}
		if e.Left {
			delete(n.members, e.Name)
			continue
		}
		m := n.members[e.Name]
		if m == nil {
			m = &member{}
			n.members[e.Name] = m
		}
		if !e.Alive || !wasAlive[e.Name] || m.prio != e.Priority {
			// Failed, or back, or restarted with another priority (the
			// failure detector may not have seen it go): the mesh's view
			// rules again.
			delete(n.suspect, e.Name)
		}
		m.prio, m.alive, m.listed = e.Priority, e.Alive, true
	}
	for name := range n.suspect {
		if m := n.members[name]; m == nil || !m.listed {
			delete(n.suspect, name)
		}
	}
	// The committed set changes only while a quorum of it is seen.
	if n.hasQuorum() {
		for name, m := range n.members {
			if !m.listed {
				delete(n.members, name)
				continue
			}
			m.committed = true
		}
	}
	n.order = n.order[:0]
	for name, m := range n.members {
		if m.listed {
			n.order = append(n.order, name)
		}
	}
	slices.SortFunc(n.order, func(a, b string) int { return n.rankOf(b).Compare(n.rankOf(a)) })

	quorate := n.hasQuorum()
	if !quorate {
		n.preemptWait = -1
		if n.coord != "" && n.coord != n.cfg.Name {
			// Whoever it was, it cannot act for this node's side.
			n.coord, n.coordTerm, n.coordSince = "", 0, n.now
			n.pending = true
		}
		switch n.st {
		case stateLead:
			n.stepDown("quorum lost")
			n.pending = true
		case stateWait, stateProbe, stateClaim:
			n.log.Debug("election suspended: quorum lost")
			n.st = stateIdle
			n.pending = true
		}
	}
	if n.st == stateLead {
		for _, name := range n.order {
			if name != n.cfg.Name && n.isAlive(name) && !wasAlive[name] {
				n.announce(name)
			}
		}
	}
	if n.coord != "" && n.coord != n.cfg.Name && !n.isAlive(n.coord) {
		n.log.Debug("coordinator lost", "coordinator", n.coord, "term", n.coordTerm)
		n.metrics.CoordinatorLost++
		n.coord, n.coordTerm, n.coordSince = "", 0, n.now
		n.preemptWait = -1
		if n.st == stateIdle && !n.leaving {
			n.startElection(modeLost)
		}
	}
	if n.lastCoord != "" && !n.isAlive(n.lastCoord) {
		n.lastCoord = ""
	}
	switch n.st {
	case stateProbe:
		if !n.isAlive(n.target) {
			n.probeBelow(n.target)
		}
	case stateWait:
		if n.waitFor != "" && !n.isAlive(n.waitFor) {
			n.startElection(modeNow)
		}
	case stateClaim:
		n.checkWin()
	case stateIdle:
		if n.pending && quorate && !n.leaving {
			n.claimFails = 0
			n.startElection(modeWait)
		}
	}
	n.maybePreempt()
}

// Request asks for a coordinator: if none is known, an election starts (or
// waits for a quorum). It is how a component that needs something done once
// for the mesh wakes the election; it is cheap when a coordinator is known.
func (n *Node) Request() {
	if n.coordKnown() || n.st != stateIdle || n.leaving {
		return
	}
	n.claimFails = 0
	if n.now < n.listenUntil {
		// Listening after a stall: it may have been replaced meanwhile,
		// and the coordinator that acts instead is about to announce
		// itself. The election runs when the listening ends, unless one
		// has by then (tickLease). A scaler resumed from SIGSTOP asks at
		// once, and its claim, of the very term number that replaced it,
		// made that coordinator step down (nemesis Defect 3).
		n.pending = true
		return
	}
	n.startElection(modeNow)
}

// Tick advances the node's clock by one tick.
func (n *Node) Tick() {
	n.now++
	n.tickLease()
	switch n.st {
	case stateProbe:
		if n.timer--; n.timer > 0 {
			return
		}
		if n.isAlive(n.target) && n.attempts < n.cfg.ProbeAttempts {
			n.challenge(n.target)
			return
		}
		n.probeBelow(n.target)
	case stateWait:
		if n.timer--; n.timer <= 0 {
			if n.thenClaim {
				n.log.Debug("no claim from a higher rank: claiming", "waited_for", n.waitFor)
				n.thenClaim = false
				n.claim()
				return
			}
			n.startElection(modeNow)
		}
	case stateClaim:
		n.checkWin() // this node's own grant to an earlier holder may have run out
		if n.st != stateClaim {
			return
		}
		if n.crossing && n.now >= n.crossedAt+crossedWait && !n.leaving {
			// A lower rank's claim of this number crossed this one, and
			// crossedWait ticks later this claim has not won without
			// the members that promised it: claim above it rather than
			// wait out the ClaimTimeout (in a majority of three every
			// Ack counts). At once would cost a large mesh a round each
			// time a second claimant appears, where the quorum comes
			// without those members.
			n.log.Debug("claiming above a crossed claim", "term", n.claimTerm)
			n.claimFails--
			n.claim()
			return
		}
		if n.timer--; n.timer <= 0 {
			n.log.Debug("claim failed", "term", n.claimTerm)
			n.metrics.ClaimsFailed++
			n.st = stateIdle
			n.startElection(modeNow)
			return
		}
		if n.retrans--; n.retrans <= 0 && !n.guarded(n.cfg.Name) {
			// (While this node's own grant to the lost coordinator runs,
			// so do most members': they hold the claim until then, and
			// resending it would only add traffic.)
			n.retrans = n.cfg.RetransmitTicks
			for _, name := range n.order {
				if name != n.cfg.Name && n.isAlive(name) && !n.acks[name] {
					n.send(Message{Type: MsgCoordinator, To: name, Term: n.claimTerm})
				}
			}
		}
	case stateLead:
		if n.renewIn--; n.renewIn <= 0 {
			n.renew()
		}
	case stateIdle:
		if n.preemptWait > 0 {
			n.preemptWait--
		}
		if n.preemptWait == 0 {
			n.preemptWait = -1
			n.preempt()
		}
	}
}

// tickLease runs the lease timers: a coordinator whose lease ran out stops
// acting, and steps down if a quorum grants none of its renewals for one
// more lease (a winner whose first renewal no quorum granted steps down at
// once); a member that heard no renewal from the coordinator it names for
// RenewTicks+LeaseTicks has lost it; a claim held back by a grant is
// looked at again when the grant runs out; and a node that wants a
// coordinator and knows none runs an election.
func (n *Node) tickLease() {
	L := uint64(n.cfg.LeaseTicks)
	switch {
	case n.st != stateLead:
	case !n.leased && n.now >= n.wonAt+L:
		n.stepDown("no quorum granted its first renewal")
		n.pending = false
	case n.leased && n.now >= n.leaseFrom+2*L:
		// Not acting since leaseFrom+L; it renewed for one more lease in
		// case the grants were only late (a stall, a starved core), and no
		// quorum granted any. (Why one lease and no more: see the package
		// doc, Leases.)
		n.stepDown("lease ran out")
		n.pending = false
	}
	if !n.stalled && n.coord != "" && n.coord != n.cfg.Name && n.now >= n.heard+uint64(n.cfg.RenewTicks)+L {
		n.log.Debug("coordinator lost: no renewal", "coordinator", n.coord, "term", n.coordTerm)
		n.metrics.CoordinatorLost++
		n.suspect[n.coord] = true
		n.coord, n.coordTerm, n.coordSince = "", 0, n.now
		n.preemptWait = -1
		if n.st == stateIdle && !n.leaving {
			n.claimFails = 0
			n.startElection(modeLost)
		}
	}
	if n.deferred != nil && n.now >= n.guardUntil {
		m := *n.deferred
		n.deferred = nil
		if _, ok := n.members[m.From]; ok {
			n.onCoordinator(m)
		}
	}
	if (n.want && !n.stalled || n.pending) && !n.leaving && n.st == stateIdle && !n.coordKnown() && n.now >= n.quietUntil && n.hasQuorum() {
		// Something needs a coordinator, or an election parked after its
		// claims failed: try again, at most once per LeaseTicks (plus
		// jitter, so that parked nodes do not all claim at once).
		n.quietUntil = n.now + L + uint64(n.jitter())
		n.claimFails = 0
		n.startElection(modeNow)
	}
}

// guarded reports whether a lease this node granted to a holder other than
// w (and itself) still runs: it must not promise w anything yet.
func (n *Node) guarded(w string) bool {
	return n.guardHolder != "" && n.guardHolder != w && n.guardHolder != n.cfg.Name && n.now < n.guardUntil
}

// renew sends a renewal, stamped with this tick, to every alive member.
// Renewals still in the outbox (ticks caught up after a stall) go unsent:
// this one supersedes them.
func (n *Node) renew() {
	n.renewIn = n.cfg.RenewTicks
	n.outbox = slices.DeleteFunc(n.outbox, func(m Message) bool {
		stale := m.Type == MsgCoordinator && m.Acting && m.Lease
		if stale {
			n.metrics.Sent.Lease--
		}
		return stale
	})
	for _, name := range n.order {
		if name != n.cfg.Name && n.members[name].alive {
			n.announce(name)
		}
	}
	n.updateLease()
}

// announce sends one renewal to name: it tells a member that this node acts,
// and asks it for a grant.
func (n *Node) announce(name string) {
	n.send(Message{Type: MsgCoordinator, To: name, Term: n.claimTerm, Acting: true, Lease: true, RefTerm: n.now})
}

// updateLease moves the lease's start to the latest stamp a quorum of the
// committed set has granted (this node grants its own at every tick).
func (n *Node) updateLease() {
	_, need := n.quorum()
	stamps := []uint64{n.now}
	for name, st := range n.grants {
		if m := n.members[name]; m != nil && m.committed {
			stamps = append(stamps, st)
		}
	}
	if len(stamps) < need || need < 1 {
		return
	}
	slices.SortFunc(stamps, func(a, b uint64) int { return cmp.Compare(b, a) })
	from := stamps[need-1]
	if from < n.wonAt {
		return // grants of messages sent before it won (stamp 0: no renewal)
	}
	if !n.leased || from > n.leaseFrom {
		n.leased, n.leaseFrom = true, from
	}
}

// grant records a lease granted to w, the coordinator this node names, on
// an Acting message, and answers it with an Ack that carries its stamp. A
// claim held back for another holder is refused now: w acts.
func (n *Node) grant(m Message) {
	w := m.From
	if m.Lease && w == n.guardHolder && m.Term == n.grantTerm && m.RefTerm <= n.grantStamp {
		// A renewal no newer than one already granted (a duplicate, a
		// late copy, a replay): it says nothing about the holder now, so
		// it neither extends the grant nor counts as hearing from it.
		// The Ack goes again; the holder ignores a stamp it has.
		n.send(Message{Type: MsgAck, To: w, Term: m.Term, Lease: true, RefTerm: m.RefTerm})
		return
	}
	n.guardHolder, n.guardUntil = w, n.now+uint64(n.cfg.LeaseTicks+n.cfg.DriftTicks)
	if m.Lease {
		if m.Term != n.grantTerm {
			n.grantTerm, n.grantStamp = m.Term, 0
		}
		n.grantStamp = max(n.grantStamp, m.RefTerm)
	}
	n.heard = n.now
	delete(n.suspect, w)
	switch d := n.deferred; {
	case d == nil:
	case d.From != w:
		n.deferred = nil
		n.log.Debug("refusing a held claim: the holder renewed", "claimant", d.From, "term", d.Term, "holder", w, "holder_term", m.Term)
		n.send(Message{Type: MsgNack, To: d.From, Term: d.Term, Lease: true, RefTerm: m.Term, RefHolder: w})
	case d.Term <= m.Term:
		// W's own claim, held while the grant to another holder ran: W
		// won it (or a later term) without this node, and acts.
		n.deferred = nil
	}
	stamp := uint64(0)
	if m.Lease {
		stamp = m.RefTerm
	}
	n.send(Message{Type: MsgAck, To: w, Term: m.Term, Lease: true, RefTerm: stamp})
}

// Step processes one received message. It returns an error (and ignores the
// message) when the message is not for this node or comes from an unknown
// member; the caller may count or log these. Decode with Unmarshal first.
func (n *Node) Step(m Message) error {
	if m.To != n.cfg.Name {
		return fmt.Errorf("%w: %s addressed to %q, this is %q", ErrWrongRecipient, m.Type, m.To, n.cfg.Name)
	}
	if _, ok := n.members[m.From]; !ok || m.From == n.cfg.Name {
		return fmt.Errorf("%w: %s from %q", ErrUnknownMember, m.Type, m.From)
	}
	if m.Term > TermLimit || m.RefTerm > TermLimit {
		return fmt.Errorf("%w: %s from %q: term %d or reference %d above the limit %d", ErrBadMessage, m.Type, m.From, m.Term, m.RefTerm, uint64(TermLimit))
	}
	// A coordinator lost by its missing renewals counts as alive again
	// once it is heard from: it runs (a former coordinator stays
	// suspected otherwise, and the others wait for claims it never makes).
	delete(n.suspect, m.From)
	switch m.Type {
	case MsgChallenge:
		n.onChallenge(m)
	case MsgAnswer:
		n.onAnswer(m)
	case MsgCoordinator:
		n.onCoordinator(m)
	case MsgAck:
		n.onAck(m)
	case MsgNack:
		n.onNack(m)
	default:
		return fmt.Errorf("%w: unknown type %d from %q", ErrBadMessage, uint8(m.Type), m.From)
	}
	return nil
}

func (n *Node) startElection(mode startMode) {
	if !n.hasQuorum() {
		if !n.pending {
			n.log.Debug("election pending a quorum")
		}
		n.pending = true
		n.st = stateIdle
		return
	}
	if n.leaving {
		n.st = stateIdle
		return
	}
	n.pending = false
	if !n.electing {
		n.electing = true
		n.elStart = n.now
		n.metrics.ElectionsStarted++
		n.log.Debug("election started")
	}
	top := n.highestAbove("")
	switch {
	case mode == modeWait:
		n.wait("")
	case top == "":
		n.claim()
	case mode == modeLost:
		n.waitLost(top)
	default:
		n.attempts = 0
		n.challenge(top)
	}
}

// highestAbove returns the highest alive member that outranks this node and
// ranks below `below` ("" for no bound), or "".
func (n *Node) highestAbove(below string) string {
	passed := below == ""
	for _, name := range n.order {
		if name == n.cfg.Name {
			return ""
		}
		if !passed {
			passed = name == below
			continue
		}
		if n.isAlive(name) {
			return name
		}
	}
	return ""
}

func (n *Node) wait(who string) {
	n.st = stateWait
	n.waitFor = who
	n.thenClaim = false
	n.timer = n.cfg.ClaimTimeout + n.jitter()
}

// waitLost is the wait after the coordinator was lost: the highest alive
// rank claims at once; every other node waits AnswerTimeout ticks for each
// alive rank above it, then claims, unless a claim from above came
// meanwhile. A higher rank cut off from this side (alive in the failure
// detector's view, deaf to it) costs one AnswerTimeout, not a ClaimTimeout
// and a round of challenges; the claim is held by the members until their
// grants to the lost coordinator run out anyway. No jitter: the ranks
// already order the timers AnswerTimeout apart, and jitter (0-2 ticks on
// lan) let the next rank claim one tick after the one above, so that
// their claims of one number crossed and the higher one's waited out its
// ClaimTimeout (TestCutFailoverTicks).
func (n *Node) waitLost(top string) {
	above := 0
	for _, name := range n.order {
		if name == n.cfg.Name {
			break
		}
		if n.isAlive(name) {
			above++
		}
	}
	n.wait(top)
	n.thenClaim = true
	n.timer = above * n.cfg.AnswerTimeout
	n.log.Debug("waiting for a higher rank's claim", "ranks_above", above, "ticks", n.timer)
}

func (n *Node) challenge(to string) {
	if n.st != stateProbe || n.target != to {
		n.attempts = 0
	}
	n.st = stateProbe
	n.target = to
	n.attempts++
	n.timer = n.cfg.AnswerTimeout + n.jitter()
	n.send(Message{Type: MsgChallenge, To: to, Term: n.maxTerm})
}

func (n *Node) probeBelow(after string) {
	if next := n.highestAbove(after); next != "" {
		n.challenge(next)
		return
	}
	n.claim()
}

func (n *Node) claim() {
	if n.leaving {
		n.st = stateIdle
		return
	}
	if n.claimFails >= n.cfg.ClaimAttempts {
		// Claims keep failing: the members cannot acknowledge. Park until
		// the view changes or Request is called, rather than retry on a
		// timer.
		n.log.Debug("election parked", "claims", n.claimFails)
		n.st = stateIdle
		n.pending = true
		return
	}
	n.claimFails++
	term := max(n.maxTerm, n.promTerm) + 1
	n.maxTerm, n.maxHolder = term, n.cfg.Name
	n.prevTerm, n.prevHolder = n.promTerm, n.promHolder
	n.promTerm, n.promHolder = term, n.cfg.Name
	n.claimTerm = term
	n.claimOpen = true
	n.acks = map[string]bool{n.cfg.Name: true}
	n.hoTerm, n.hoHolder = 0, ""
	if n.prevHolder != n.cfg.Name {
		n.hoTerm, n.hoHolder = n.prevTerm, n.prevHolder
	}
	n.st = stateClaim
	n.timer = n.cfg.ClaimTimeout + n.jitter()
	n.retrans = n.cfg.RetransmitTicks
	n.crossing = false
	n.metrics.ClaimsStarted++
	n.log.Debug("claiming", "term", term)
	for _, name := range n.order {
		if name != n.cfg.Name {
			n.send(Message{Type: MsgCoordinator, To: name, Term: term})
		}
	}
	n.checkWin()
}

// crossedWait is how many ticks a claim whose number a lower rank refused
// as promised (claims that crossed) waits to win without that member before
// it claims above (TestCrossedClaimsAfterAMissedRenewal).
const crossedWait = 2

func (n *Node) checkWin() {
	if n.st != stateClaim || n.leaving || n.guarded(n.cfg.Name) {
		return // this node's own grant to another holder still runs
	}
	seen, need := n.quorum()
	if seen < need {
		return
	}
	if got, _ := n.committedAmong(n.acks); got < need {
		return
	}
	for _, h := range [...]string{n.hoHolder, n.lastCoord} {
		if h != "" && h != n.cfg.Name && n.isAlive(h) && !n.acks[h] {
			return // the earlier holder has not handed over yet
		}
	}
	n.st = stateLead
	n.claimOpen = false
	n.lastCoord = ""
	n.metrics.ElectionsWon++
	n.log.Debug("acting", "term", n.claimTerm, "acks", len(n.acks), "quorum", need)
	n.setCoord(n.cfg.Name, n.claimTerm)
	// Won, but not acting yet: an Ack of a claim is no lease (a claim
	// that loses must not hold anyone back). The first renewal goes out
	// now; a quorum of grants of it makes this node act.
	n.grants = map[string]uint64{}
	n.nacked = map[string]bool{}
	n.leaseFrom, n.wonAt, n.leased = 0, n.now, false
	n.guardHolder, n.guardUntil = n.cfg.Name, 0
	n.deferred = nil
	n.renew()
}

func (n *Node) stepDown(reason string) {
	n.log.Info("stepping down", "term", n.claimTerm, "reason", reason)
	n.metrics.StepDowns++
	n.st = stateIdle
	n.grants, n.nacked = nil, nil
	// Listen for the coordinator that acts instead before claiming again.
	n.quietUntil = n.now + uint64(n.cfg.LeaseTicks)
	n.meekUntil = n.quietUntil
	if n.coord == n.cfg.Name {
		n.coord, n.coordTerm, n.coordSince = "", 0, n.now
	}
}

// setCoord records the coordinator this node names and ends an election.
func (n *Node) setCoord(name string, term uint64) {
	if n.claimOpen && name != n.cfg.Name {
		// Members that promised our abandoned claim name us: point them
		// to the coordinator we now name (an unsolicited Answer).
		n.claimOpen = false
		for _, a := range n.order {
			if a != n.cfg.Name && n.acks[a] {
				n.send(Message{Type: MsgAnswer, To: a, Term: n.maxTerm, RefTerm: term, RefHolder: name})
			}
		}
	}
	if n.coord != name || n.coordTerm != term {
		n.coord, n.coordTerm, n.coordSince = name, term, n.now
		n.heard = n.now // it has RenewTicks+LeaseTicks to renew
		// A new coordinator: a pending preemption was of another one. The
		// same one again (each renewal names it) keeps the countdown, or a
		// PreemptDelay longer than RenewTicks would never run out.
		n.preemptWait = -1
	}
	n.pending = false
	n.claimFails = 0
	if n.electing {
		n.electing = false
		d := n.now - n.elStart
		n.metrics.ElectionsSettled++
		n.metrics.ElectTicksLast = d
		n.metrics.ElectTicksTotal += d
	}
}

func (n *Node) onChallenge(m Message) {
	n.seeTerm(m.Term, "")
	if !n.outranks(m.From) {
		return // a challenge goes only to higher ranks; the views disagree
	}
	if n.coord == m.From && n.st != stateLead {
		// The node named as coordinator is running an election: it does
		// not act (its claim was cut short). Stop naming it.
		n.coord, n.coordTerm, n.coordSince = "", 0, n.now
	}
	switch {
	case n.st == stateLead:
		n.send(Message{Type: MsgCoordinator, To: m.From, Term: n.claimTerm, Acting: true})
	case n.coordKnown():
		n.send(Message{Type: MsgAnswer, To: m.From, Term: n.maxTerm, RefTerm: n.coordTerm, RefHolder: n.coord})
	case !n.hasQuorum() || n.leaving:
		// We could not win (or are leaving): stay silent so that the
		// candidate moves on.
	default:
		n.send(Message{Type: MsgAnswer, To: m.From, Term: n.maxTerm})
		if n.st == stateIdle {
			n.startElection(modeNow)
		}
	}
}

func (n *Node) onAnswer(m Message) {
	n.seeTerm(m.Term, "")
	n.seeTerm(m.RefTerm, m.RefHolder)
	if n.st != stateProbe || m.From != n.target {
		if h := m.RefHolder; m.From == n.coord && m.RefTerm >= n.coordTerm && n.st == stateIdle && h != "" && h != n.cfg.Name && n.isAlive(h) {
			n.setCoord(h, m.RefTerm) // redirected by the node we named
			n.maybePreempt()
		}
		return
	}
	if h := m.RefHolder; h != "" && h != n.cfg.Name && n.isAlive(h) {
		n.st = stateIdle
		n.setCoord(h, m.RefTerm)
		n.maybePreempt()
		return
	}
	n.wait(m.From)
}

func (n *Node) onCoordinator(m Message) {
	w := m.From
	if !m.Acting && n.guarded(w) {
		// A lease this node granted to another holder still runs: that
		// holder may act until then. Hold the claim (the highest one)
		// until the grant runs out; a renewal refuses it instead.
		if n.deferred == nil || m.Term >= n.deferred.Term {
			d := m
			n.deferred = &d
		}
		n.log.Debug("holding a claim while a granted lease runs", "claimant", w, "term", m.Term, "holder", n.guardHolder, "ticks_left", n.guardUntil-n.now)
		if n.st == stateWait && n.thenClaim && !n.outranks(w) {
			n.wait(w) // a higher rank claims: no claim of its own
		}
		return
	}
	if n.st == stateLead && !m.Acting && n.Acting() && (!n.cfg.Preempt || n.outranks(w)) {
		// This node acts under a lease a quorum granted: the claimant lost
		// its renewals. Refuse, and renew with it.
		n.seeTerm(m.Term, w)
		n.send(Message{Type: MsgNack, To: w, Term: m.Term, Lease: true, RefTerm: n.claimTerm, RefHolder: n.cfg.Name})
		n.announce(w)
		return
	}
	if m.Acting && n.st != stateLead && (m.Term < n.promTerm || m.Term == n.promTerm && !n.cfg.Preempt) &&
		m.Term >= n.grantTerm && n.promHolder == n.cfg.Name && n.hasQuorum() &&
		n.members[w] != nil && n.members[w].alive && (!n.cfg.Preempt || !n.outranks(w)) {
		// W acts, under a term up to the one this node claimed for itself
		// (a claim that failed, or a term it led before a stall): accept
		// W rather than claim again. The same number too: a node resumed
		// from a pause the others saw as a failure never heard W's term
		// and claims that very number; its claim did not win (W's lease
		// holders refused it), and refusing W's renewal with it would
		// make W, which it outranks, step down. (With Preempt the full
		// term (number, rank) decides, below.) Never a term below one
		// whose lease this node has granted: that is an old message
		// (a replay, a late copy), not a coordinator acting now.
		n.seeTerm(m.Term, w)
		n.st = stateIdle
		n.setCoord(w, m.Term)
		n.grant(m)
		n.maybePreempt()
		return
	}
	// A claim for a term number this node has already seen (in a promise,
	// a claim, a refusal or an answer) is refused unless it is the very
	// claim it promised: the claimant learns the number and moves past it.
	seen := m.Term < n.maxTerm || m.Term == n.maxTerm && n.maxHolder != w
	n.seeTerm(m.Term, w)
	quorate := n.hasQuorum()
	if n.st == stateLead && m.Acting && m.Term == n.claimTerm {
		// Two holders act under one term number: possible only outside
		// the membership assumption in the package doc. The full term
		// (number, rank) orders them; the lower-ranked one stops acting.
		if !n.outranks(w) {
			n.stepDown(fmt.Sprintf("%s acts under term %d too and outranks this node", w, m.Term))
			n.setCoord(w, m.Term)
			n.grant(m)
			return
		}
		n.send(Message{Type: MsgNack, To: w, Term: m.Term, Outranked: true, RefTerm: n.promTerm, RefHolder: n.promHolder})
		n.send(Message{Type: MsgCoordinator, To: w, Term: n.claimTerm, Acting: true})
		return
	}
	if n.outranks(w) && !m.Acting && quorate && !n.leaving && n.now >= n.meekUntil &&
		(n.st == stateLead || !n.coordKnown() || n.coord == w) {
		// Bully: a lower rank claims while this node is alive and knows no
		// other coordinator. Refuse, and run (or keep running, or keep
		// acting) here.
		n.send(Message{Type: MsgNack, To: w, Term: m.Term, Outranked: true, RefTerm: n.promTerm, RefHolder: n.promHolder})
		switch n.st {
		case stateLead:
			if m.Term > n.claimTerm {
				// Members may have promised W's higher term and now name
				// W: claim above it, so that they come back.
				n.stepDown(fmt.Sprintf("re-claiming above %s's term %d", w, m.Term))
				n.meekUntil = n.now
				n.claimFails = 0
				n.claim()
			} else {
				n.announce(w)
			}
		case stateIdle:
			n.lastCoord = w
			n.startElection(modeNow)
		case stateWait:
			if n.thenClaim {
				n.thenClaim = false
				n.claim() // its turn came early: a lower rank claims already
			}
		}
		return
	}
	if !n.isAlive(w) && w == n.guardHolder && m.Term == n.grantTerm && m.Term == n.promTerm && w == n.promHolder &&
		(!m.Acting || m.Lease && m.RefTerm <= n.grantStamp) {
		// From a holder this node granted an acting lease under this
		// term, then lost (failed, or no renewal for LeaseTicks): its
		// claim, which a claimant resends only until it wins, or a
		// renewal no newer than one already granted. A late copy or a
		// replay: acknowledge it again, as before, but do not name the
		// lost holder anew; only a newer renewal can do that.
		if m.Acting {
			n.send(Message{Type: MsgAck, To: w, Term: m.Term, Lease: true, RefTerm: m.RefTerm})
		} else {
			n.send(Message{Type: MsgAck, To: w, Term: m.Term, RefTerm: n.prevTerm, RefHolder: n.prevHolder})
		}
		return
	}
	if quorate && (m.Term > n.promTerm && (!seen || m.Acting) || (m.Term == n.promTerm && w == n.promHolder)) {
		if m.Term > n.promTerm {
			n.prevTerm, n.prevHolder = n.promTerm, n.promHolder
			n.promTerm, n.promHolder = m.Term, w
		}
		if n.st == stateLead {
			n.stepDown(fmt.Sprintf("%s claims term %d", w, m.Term))
		}
		n.st = stateIdle
		if n.lastCoord == w {
			n.lastCoord = ""
		}
		n.setCoord(w, m.Term)
		if m.Acting {
			n.grant(m)
		} else {
			if n.deferred != nil && n.deferred.From == w {
				n.deferred = nil
			}
			n.send(Message{Type: MsgAck, To: w, Term: m.Term, RefTerm: n.prevTerm, RefHolder: n.prevHolder})
		}
		n.maybePreempt()
		return
	}
	if m.Acting && quorate && m.Term == n.promTerm && n.members[w] != nil && n.members[w].alive && n.st != stateClaim && n.st != stateLead &&
		n.rankOf(w).Compare(n.rankOf(n.promHolder)) > 0 {
		// W already acts under the term number this node promised to a
		// lower-ranked holder (its own claim that failed, say): the full
		// term (number, rank) of W is the later one. Name W without
		// promising; the Ack is only a receipt, which an acting
		// coordinator does not count. (Otherwise the Nack below makes W
		// step down.)
		n.st = stateIdle
		n.setCoord(w, m.Term)
		n.grant(m)
		n.maybePreempt()
		return
	}
	// A lower term, this term promised to another holder, or no quorum
	// seen here: a node that cannot see a quorum promises nothing.
	ref, refHolder := n.promTerm, n.promHolder
	if seen && n.maxTerm > ref {
		ref, refHolder = n.maxTerm, n.maxHolder // teach the claimant the number
	}
	n.send(Message{Type: MsgNack, To: w, Term: m.Term, NoQuorum: !quorate, RefTerm: ref, RefHolder: refHolder})
	if quorate && !n.outranks(w) && n.isAlive(w) && (n.st == stateClaim && m.Term >= n.claimTerm || n.st == stateProbe) {
		n.wait(w) // a higher rank is claiming: let it
		return
	}
	if m.Acting && quorate && m.Term < n.promTerm && n.promHolder != n.cfg.Name && !n.leaving &&
		(n.st == stateIdle || n.st == stateWait || n.st == stateProbe) && n.now >= n.quietUntil &&
		n.members[w] != nil && n.members[w].alive && !n.guarded(w) && !n.coordKnown() && (!n.cfg.Preempt || !n.outranks(w)) {
		// W acts, but this node promised a later term to a claimant that
		// it no longer names (no renewal from it for LeaseTicks) and
		// grants nothing: a stale claim that failed. The promise stands, so it cannot grant W; it claims
		// a term of its own above it instead. W's lease holders refuse
		// that claim while W acts, naming W, and this node then accepts W
		// under its own failed claim (above). Without this it would refuse
		// W's renewals, and elect, for as long as W acts.
		n.log.Debug("claiming above a stale promise", "promised", n.promTerm, "to", n.promHolder, "acting", w, "term", m.Term)
		n.claimFails = 0
		if !n.electing {
			n.electing, n.elStart = true, n.now
			n.metrics.ElectionsStarted++
		}
		n.claim()
	}
}

func (n *Node) onAck(m Message) {
	if n.st == stateLead && m.Term == n.claimTerm {
		// A grant of a renewal, with its stamp (which cannot be ahead of
		// this node's clock). A late Ack of the claim grants nothing.
		if m.Lease {
			delete(n.nacked, m.From)
		}
		if prev, ok := n.grants[m.From]; m.Lease && m.RefTerm <= n.now && (!ok || m.RefTerm > prev) {
			n.grants[m.From] = m.RefTerm
			n.updateLease()
		}
		return
	}
	if m.Lease {
		return // a grant of a lease this node no longer holds
	}
	if n.st == stateIdle && n.pending && m.Term == n.claimTerm && n.promTerm == n.claimTerm &&
		n.promHolder == n.cfg.Name && n.hasQuorum() {
		// A late acknowledgement of a parked claim: the members can
		// answer after all. Resume the claim (same term, same acks).
		n.log.Debug("claim resumed", "term", n.claimTerm)
		n.pending = false
		n.st = stateClaim
		n.timer = n.cfg.ClaimTimeout + n.jitter()
		n.retrans = n.cfg.RetransmitTicks
	}
	if (n.st != stateClaim && n.st != stateLead) || m.Term != n.claimTerm {
		return
	}
	if !n.acks[m.From] {
		n.log.Debug("claim acknowledged", "by", m.From, "term", m.Term, "their_last", m.RefTerm, "their_last_holder", m.RefHolder)
	}
	n.acks[m.From] = true
	if h := m.RefHolder; h != "" && h != n.cfg.Name && m.RefTerm < n.claimTerm && m.RefTerm >= n.hoTerm {
		n.hoTerm, n.hoHolder = m.RefTerm, h
	}
	n.checkWin()
}

func (n *Node) onNack(m Message) {
	n.log.Debug("refused", "by", m.From, "term", m.Term, "their_term", m.RefTerm, "their_holder", m.RefHolder,
		"lease", m.Lease, "outranked", m.Outranked, "no_quorum", m.NoQuorum, "state", stateNames[n.st])
	n.seeTerm(m.RefTerm, m.RefHolder)
	if m.Lease {
		// The sender granted a lease to RefHolder, who acts: without
		// preemption (or when it outranks this node), wait for its renewal.
		h := m.RefHolder
		if (n.st == stateClaim && m.Term == n.claimTerm || n.st == stateProbe) && h != "" && h != n.cfg.Name &&
			n.members[h] != nil && n.members[h].alive && (!n.cfg.Preempt || !n.outranks(h)) {
			delete(n.suspect, h)
			n.wait(h)
		}
		return
	}
	switch n.st {
	case stateClaim:
		if m.Term != n.claimTerm {
			return
		}
		if m.Outranked {
			n.wait(m.From)
			return
		}
		h := m.RefHolder
		if m.RefTerm == n.claimTerm && h != "" && h != n.cfg.Name && n.outranks(h) && !n.crossing {
			n.crossing, n.crossedAt = true, n.now
		}
		switch {
		case m.NoQuorum || h == n.cfg.Name:
		case h != "" && !n.outranks(h) && n.isAlive(h):
			n.wait(h)
		case !n.leaving && (m.RefTerm > n.claimTerm ||
			m.RefTerm == n.claimTerm && m.From != "" && (m.From == n.lastCoord || m.From == n.hoHolder)):
			// The sender promised a later term to a lower rank (or this
			// very number to another, and its Ack is the handover this
			// claim needs): this claim cannot win with it. Claim above
			// that term now (the bully rule) rather than resend a dead
			// number until the claim times out; learning a number is no
			// failed claim.
			n.log.Debug("claiming above a later promise", "term", n.claimTerm, "promised", m.RefTerm, "to", h)
			n.claimFails--
			n.claim()
		}
	case stateLead:
		switch {
		case m.RefTerm > n.claimTerm && !n.Acting():
			// It holds no lease (not yet, or no longer): a later term may
			// have won; give way.
			n.stepDown(fmt.Sprintf("%s promised term %d to %q", m.From, m.RefTerm, m.RefHolder))
			n.startElection(modeWait)
		case m.RefTerm == n.claimTerm && m.RefHolder != "" && m.RefHolder != n.cfg.Name && !n.outranks(m.RefHolder):
			// A higher rank holds this very number (outside the membership
			// assumption): the full term orders them, this node yields.
			n.stepDown(fmt.Sprintf("%s promised term %d to %q", m.From, m.RefTerm, m.RefHolder))
			n.startElection(modeWait)
		case m.RefTerm > n.claimTerm && m.RefHolder == m.From && !m.NoQuorum && !n.outranks(m.From):
			// A higher rank that sees a quorum runs for the role itself:
			// the bully rule. (Without Preempt a higher rank that sees
			// this node alive accepts it instead of refusing; with it,
			// this is a preemption.)
			n.stepDown(fmt.Sprintf("%s outranks this node and claims term %d", m.From, m.RefTerm))
			n.startElection(modeWait)
		case m.RefTerm > n.claimTerm:
			// One member promised a later term to another: a stale
			// candidate's claim, or a promise kept across a restart. That
			// is no quorum's: the lease says whether this node may act
			// (the member grants nothing while it refuses, and a term that
			// wins a quorum has waited out this node's lease and
			// announces itself). Step down only when a quorum of the
			// committed set refuses with a later promise: then no lease
			// can be renewed any more.
			n.nacked[m.From] = true
			if k, need := n.committedAmong(n.nacked); k >= need {
				n.stepDown(fmt.Sprintf("%d members promised a term above %d (%s: %d to %q)", k, n.claimTerm, m.From, m.RefTerm, m.RefHolder))
				n.startElection(modeWait)
			}
		}
	}
}

// maybePreempt schedules a takeover from a lower coordinator when Preempt is
// set, this node sees a quorum, and no alive member outranks it (the highest
// preempts; the others would only hand over twice).
func (n *Node) maybePreempt() {
	if !n.cfg.Preempt || n.st != stateIdle || n.preemptWait >= 0 || !n.coordKnown() ||
		n.coord == n.cfg.Name || !n.outranks(n.coord) || !n.hasQuorum() || n.highestAbove("") != "" {
		return
	}
	n.preemptWait = n.cfg.PreemptDelay
	if n.preemptWait == 0 {
		n.preemptWait = -1
		n.preempt()
	}
}

func (n *Node) preempt() {
	if !n.cfg.Preempt || n.st != stateIdle || !n.coordKnown() || !n.outranks(n.coord) ||
		!n.hasQuorum() || n.highestAbove("") != "" {
		return
	}
	n.log.Debug("preempting", "coordinator", n.coord, "term", n.coordTerm)
	n.metrics.Preemptions++
	n.lastCoord = n.coord
	n.startElection(modeNow)
}

// String describes the node's internal state, for debugging.
func (n *Node) String() string {
	return fmt.Sprintf("%s[%s promised=%d/%s max=%d pw=%d def=%v pend=%t prio=%d]", n.cfg.Name, stateNames[n.st], n.promTerm, n.promHolder, n.maxTerm, n.preemptWait, n.deferred, n.pending, n.cfg.Priority)
}
