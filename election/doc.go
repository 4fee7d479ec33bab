// Package election is Shoal's bully-style coordinator election, written as a
// pure state machine in the manner of etcd raft's core: no goroutines, no
// sockets, no wall clock. Time comes in as Tick, messages as Step, membership
// as SetMembers; what the node wants sent waits in an outbox that the caller
// drains with Messages. Jitter comes from a seeded *rand.Rand in Config. The
// same code runs in the agent, in the golden scenario tests and in a
// 1,000-node simulation (Sim).
//
// # Usage: how an adapter drives a Node
//
// One goroutine owns the Node (it is not safe for concurrent use):
//
//	cfg := election.DefaultConfig()
//	cfg.Name, cfg.Priority = self, prioFromTag
//	cfg.Rand = rand.New(rand.NewPCG(seed1, seed2))
//	cfg.Restore = loadHardState()            // what HardState returned last run
//	n, err := election.New(cfg)
//
//	for {
//		select {
//		case view := <-meshChanges:          // serf member events
//			n.SetMembers(view)               // []Member{Name, Priority, Alive, Left}
//		case <-needCoordinator:              // e.g. the scale policy wants to act
//			n.Request()
//		case <-ticker.C:                     // the tick length is the adapter's choice
//			n.Tick()
//		case b := <-inbound:                 // gossip user message or a stream
//			if m, err := election.Unmarshal(b); err == nil {
//				_ = n.Step(m)                // errors: count and log them
//			}
//		}
//		saveHardState(n.HardState())         // before sending, as with raft
//		for _, m := range n.Messages() {
//			b, _ := m.Marshal()
//			send(m.To, b)                    // loss, delay and reordering are fine
//		}
//	}
//
// Before every action outside the mesh:
//
//	lease, ok := n.Lease()                   // ok only while this node acts
//	if !ok { return }                        // not (or no longer) the coordinator
//	provider.Scale(ctx, desired, lease)      // the action carries the lease
//
// and on the provider's side, one Fence per resource (Lease, Fence and the
// fencing errors live in package fence, which imports only the standard
// library, so that a provider need not import the election; the names here
// are aliases):
//
//	if err := fence.AdmitLease(lease); err != nil { // errors.Is(err, ErrStaleTerm)
//		return err                                  // a deposed coordinator
//	}
//	persist(fence.Last())
//
// Status reports the coordinator this node names, its term, whether this node
// acts, since which tick, and the quorum seen and needed; Metrics counts
// elections started and won, messages sent by type, and ticks to elect (the
// adapter turns ticks into seconds).
//
// # Rank
//
// Rank is (Priority, Name): a higher priority wins; between equal priorities
// the lexicographically greater name (Go's byte-wise string order) wins. The
// highest alive rank is the reference answer the tests check against.
//
// # The protocol
//
// Messages: Challenge (a candidate asks a higher rank whether it is alive),
// Answer (a higher rank takes over, or names the coordinator it knows),
// Coordinator (a claim of a term; with Acting set, the announcement of a
// coordinator that already acts), Ack (a promise of that term) and Nack (a
// refusal, carrying what the sender promised or saw, flagged Outranked when
// the sender will run itself and NoQuorum when it sees no quorum).
//
// An election runs only when it is needed (it is lazy, never on a timer):
//
//   - Request is called and no coordinator is known: the node challenges the
//     highest alive rank it knows (modified bully); if no Answer comes within
//     AnswerTimeout it asks again (ProbeAttempts in all), then falls back down
//     the list; if no higher rank answers, it claims. A node that answers runs
//     the election itself in the same way (it challenges only higher ranks).
//   - The named coordinator leaves or fails (SetMembers shows it gone or not
//     alive), or its renewals stop (see Leases, Loss): the highest alive rank
//     claims at once; every other node waits AnswerTimeout for each alive
//     rank above it, and claims itself unless a claim from above came
//     meanwhile (so a higher rank cut off unseen delays the election by one
//     AnswerTimeout). A re-election after a loss therefore costs about 2N
//     messages, N-1 claims and N-1 Acks, plus one renewal round (2(N-1))
//     before the winner acts.
//   - Something on the node needs a coordinator (SetWant) and none is known.
//
// A claim picks a term above every term the node has seen and goes to every
// member (N-1 messages); members that have not acknowledged are sent it again
// every RetransmitTicks; one whose number a member refuses as promised to a
// lower rank (two claims of one number crossed) is made again above it if it
// has not won two ticks later (crossedWait). A claim from a lower rank is
// refused (Nack, Outranked) by a higher rank that sees a quorum and knows no
// acting coordinator: it runs itself (the bully rule). Claims that keep timing out
// (ClaimAttempts) park the election until the view changes or Request is
// called again; a parked election is retried once per LeaseTicks while a
// quorum is seen. A coordinator renews its lease with every alive member
// every RenewTicks (see Leases), which also announces it to members that
// come alive (joins, recovers, heals).
//
// Preemption. With Config.Preempt false, a higher rank that meets an
// established coordinator (an Acting announcement) accepts it; it takes over
// only when that coordinator is lost. With Preempt true, the highest alive
// rank waits PreemptDelay ticks, seeing a quorum throughout (losing it
// restarts the wait, which damps flapping), then claims the next term. Two
// coordinators never act at once through a takeover: every claimant needs,
// besides its quorum, the Ack of the coordinator it takes over from and of
// the latest earlier holder its Acks report, whenever that one is alive in
// its view; and a coordinator stops acting before it acknowledges a later
// term. A coordinator that is not alive in the claimant's view (failed,
// partitioned, stopped) cannot hand over: the claimant acts without it, and
// the old one stops when its own view loses the quorum or it hears a later
// term. That window is what fencing is for.
//
// # Leases
//
// A coordinator acts only inside a lease. Counted in ticks: the node keeps
// no clock, and the adapter turns LeaseFrom+LeaseTicks into a time.
//
//   - Renewal: every RenewTicks the coordinator sends every alive member a
//     Coordinator (Acting, Lease) stamped with its current tick; a member
//     that names it grants with an Ack (Lease) echoing the stamp. The lease
//     counts from the latest stamp a quorum of the committed set granted
//     (the coordinator's own counts as now) and lasts LeaseTicks. A stamp
//     is the sender's own tick when it sent the renewal, so no member can
//     have granted it earlier. Without a quorum of fresh grants (a
//     partition, a minority, a stall) the coordinator stops acting when
//     the lease runs out.
//   - Lapse: a coordinator whose lease ran out keeps its term and renews
//     for one more lease: if a quorum grants a renewal (the grants were
//     late: a stalled process, a starved core, a pause shorter than a
//     lease) it acts again under the same term; if not, it steps down. It
//     steps down at once when a member refuses it with a later promise.
//     One lease and no more: another holder wins only after the grants of
//     the lapsed lease ran out (LeaseTicks+DriftTicks), and a member of its
//     quorum would grant the lapsed coordinator's lower term again only
//     after that holder is lost (RenewTicks+LeaseTicks without its
//     renewal) and the member's own claim failed: later than the lapsed
//     coordinator gives up. So no term acts after a later one acted.
//   - A winner acts only after a quorum granted its first renewal (sent
//     when it wins): an Ack of a claim is no lease, so a claim that loses
//     holds nobody back. A winner whose first renewal no quorum grants
//     within LeaseTicks steps down.
//   - Grant: a member that granted holder H a lease at its tick g grants
//     (promises) no other claimant before g+LeaseTicks+DriftTicks: it
//     holds the claim until then, and refuses it (Nack, Lease, naming H) if
//     H renews meanwhile. Quorums intersect, so a new holder wins only
//     after a member of H's last granting quorum waited out its grant,
//     which ends after H's lease by H's clock, give or take the drift of
//     the two clocks' rates, which DriftTicks covers. Acting intervals of
//     two holders never overlap, whether or not a provider fences.
//   - Loss: a member that hears no renewal from the coordinator it names
//     for RenewTicks+LeaseTicks (a lease after the renewal it missed)
//     suspects it (it no longer counts as alive for the election, until it
//     hears from it again) and elects another, without waiting for the
//     failure detector. A coordinator stopped for less than LeaseTicks is
//     back before that: its catch-up renewal finds every member still
//     naming it, and it keeps its term. (The election costs little more
//     for it: the claim could win no earlier than the grants run out,
//     LeaseTicks+DriftTicks after the last one.) Suspecting it as soon as
//     those grants run out would be sooner whenever DriftTicks <
//     RenewTicks (a tick on lan), but a stop that begins just before a
//     renewal leaves the members without one for up to
//     RenewTicks+LeaseTicks: such a coordinator would lose its role
//     (TestPauseBelowLeaseKeepsRole).
//   - Stalls: the adapter ticks the node for the time it missed before it
//     handles anything after a pause (Stalled), so a stalled coordinator's
//     lease has run out before it reads a message that waited (a member
//     does not count those ticks against its coordinator: the renewals may
//     be among the messages that waited), and calls Listen: for
//     LeaseTicks it claims nothing, of its own or on Request (a request
//     waits for the end of it: a scaler resumed from SIGSTOP asks at once),
//     and takes over no election, and it accepts an acting coordinator even under a term below the one
//     it last claimed (without Preempt). A coordinator that meets a claim
//     while it holds a lease refuses it and renews with the claimant.
//   - Refusals: a member that promised a later term refuses a renewal
//     (Nack, naming its promise). A coordinator that holds its lease does
//     not step down for one such refusal (a stale candidate's claim, a
//     promise kept across a restart): it steps down when a quorum of its
//     committed set refuses with later promises, when a later term
//     announces itself acting, when a higher rank that sees a quorum
//     refuses it with a claim of its own (the bully rule; with Preempt, a
//     preemption), or when its lease runs out. The refusing member, once
//     it no longer names the claimant it promised, claims a term above its
//     promise; the coordinator's lease holders refuse that claim naming the
//     coordinator, and the member accepts it under its own failed claim.
//   - Want and Leave: SetWant (something here needs a coordinator) makes a
//     node that knows none elect on its own, at most once per LeaseTicks;
//     without it the election stays lazy. Leave stops acting at once and
//     for good (the agent calls it before it leaves or shuts down).
//
// # Quorum guard: the committed member set
//
// A node acts only while it sees alive at least a quorum of its committed
// member set, counting itself: Config.Quorum, or a majority of that set. The
// committed set is "the members it last knew" and is defined so that a
// minority side of a partition can never shrink its way into a majority:
//
//   - Members that fail stay in the set (the adapter keeps them in the list
//     with Alive false). A member missing from the list (reaped after a
//     failure) leaves the set, and a new member enters it, only when SetMembers
//     is called while the node sees a quorum of the current set.
//   - A member marked Left (a graceful leave) leaves at once: on each side of
//     a partition only members of that side can leave, and a side of s alive
//     members out of N that loses k of them to leaves has s-k of N-k, which
//     is a majority only if s was one.
//   - A node that sees no quorum does not act (a coordinator steps down at
//     once and must win a new term to act again), names no coordinator, runs
//     no election, and promises nothing (its Nack says NoQuorum).
//
// So a partition side that does not hold a quorum of the committed set it had
// when it was whole never acts, however long the partition lasts; after a
// heal the acting coordinator announces itself to the returning members.
// The cost: a mesh that permanently loses a majority of its members waits for
// them, or for an operator to mark them as left (serf force-leave), rather
// than guess. A node that boots into a minority can count only what it sees:
// set Config.Quorum when the mesh size is known.
//
// # Terms and fencing
//
// Every coordinator action carries its term (Lease). The rules:
//
//  1. A term is claimed, and the claimant acts only after a quorum of its
//     committed set (counting itself) has promised the term (Ack).
//  2. A node promises at most one holder per term number, only upwards: it
//     refuses a claim for a number not above its last promise (unless it is
//     that very promise, resent), and for any number it has seen claimed by
//     someone else; the Nack teaches the claimant the number, and its next
//     claim goes above it.
//  3. Only a node that sees a quorum promises anything.
//
// Two quorums of the same member set intersect, and the node in both would
// have had to promise one number to two holders, which rule 2 forbids: so no
// two holders ever win — let alone act under — the same term number, and a
// minority side (rule 3 and the guard above) never wins any. This holds
// whenever the two claimants' quorums intersect, which is the case when
// their committed sets are equal or differ by one member (two majorities of
// sets that differ in one member always share a node). The adapter's part of
// the bargain, the membership assumption: the member set changes (joins,
// leaves, reaps) while the members that promised the current term are up and
// reachable; the acting coordinator announces its term to every newcomer, and
// the members that promised it refuse its number to anyone else.
//
// Outside that assumption — several members join or leave while those that
// promised the last term are all down or stopped, then a member that never
// heard of it claims — a term number can be won twice, at different times.
// Hence the full term: (number, holder rank). Lease carries Priority and
// Holder along with Term, Lease.Compare orders by the full term, and two
// holders never share a full term whatever happens to the membership.
// Fence.AdmitLease orders actions by it: it refuses anything below the last
// admitted full term (ErrStaleTerm) and a lower-ranked holder of the same
// number (ErrTermConflict, which wraps ErrStaleTerm). A coordinator that
// meets an acting holder of its own number who outranks it steps down, and so
// does one told by a Nack that such a holder exists. Fence.Admit, which sees
// only the number, admits an equal number and relies on the assumption; use
// AdmitLease where the holder can travel with the action. TestTermNumberReuse
// walks through the case; the property test checks that inside the
// assumption no number is ever acted under by two holders.
//
// A node must not forget its promises: persist HardState before sending what
// Messages returns, and pass it back in Config.Restore after a restart.
//
// # Wire format
//
// Messages travel over untrusted gossip. Marshal and Unmarshal use this
// layout (uvarint is encoding/binary's unsigned varint, minimal length):
//
//	offset  size      field
//	0       1         version, WireVersion (1)
//	1       1         type: 1 Challenge, 2 Answer, 3 Coordinator, 4 Ack, 5 Nack
//	2       1         flags: bit 0 Acting (Coordinator only),
//	                  bit 1 Outranked and bit 2 NoQuorum (Nack only),
//	                  bit 3 Lease (an Acting Coordinator, an Ack or a Nack);
//	                  others 0
//	3       1..10     Term, uvarint
//	        1..2 + n  From: uvarint length n (1..255), then n bytes of UTF-8
//	        1..2 + n  To: the same
//	        1..10     RefTerm, uvarint (0 on Challenge, and on Coordinator
//	                  without Lease; a renewal's stamp with it)
//	        1..2 + n  RefHolder: uvarint length n (0..255), then n bytes
//
// Term and RefTerm are at most TermLimit (2^62), as are the terms of a
// restored HardState (HardState.Check): a claim goes one above the highest
// term seen, and must not wrap. A message is at most MaxMessageSize (794)
// bytes. Unmarshal accepts only the
// canonical encoding of a valid message — anything else (unknown version,
// type or flag, non-minimal or overlong varint, over-long or non-UTF-8 name,
// a flag or reference on a type that has none, trailing bytes) is an error
// wrapping ErrBadMessage or ErrTooLarge, never a panic; FuzzUnmarshal checks
// that whatever it accepts re-encodes to the same bytes.
//
// # Testing
//
// testdata/*.txt are scenario scripts with golden output, run by
// TestInteraction (go test ./election -run TestInteraction -rewrite
// regenerates them). TestProperty runs seeded random meshes against the naive
// reference (the highest alive rank on the majority side); TestSimulation
// measures messages per election and ticks to settle for 10, 100 and 1,000
// nodes on Sim, the simulated network in sim.go that other tests can reuse.
package election
