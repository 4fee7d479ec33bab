// Package mesh is Shoal's membership and load dissemination: serf on
// memberlist for who is in the mesh and alive, and a bounded epidemic of
// compact load states for how busy each member is.
//
// # Usage
//
//	m, err := mesh.New(mesh.Config{NodeName: "web-1", Profile: mesh.ProfileLAN,
//		DataDir: "/var/lib/shoal", Keys: keys, Load: monitor.Latest})
//	...
//	m.JoinRetry(ctx, []string{"10.0.0.2", "10.0.0.3"}, mesh.RetryOptions{Attempts: 5})
//	v := m.View()
//	for _, mem := range v.Members() { fmt.Println(mem.Name, mem.Status, mem.Load, mem.LoadAge(time.Now())) }
//	<-v.Changed() // or m.Wait(ctx, v.Version()): a newer View is out
//	m.Leave(); m.Shutdown()
//
// # The View
//
// Everything that reads the mesh reads one View: an immutable snapshot of
// the members sorted by name, their status, Shoal's tags parsed once
// (Member.Shoal; names and reserved keys in tags.go) and their load decoded
// once. The mesh publishes a new View, with the next version, when something
// changes: a batch of membership events, a change of this node's tags, a
// change of its own load, or new load states of others accepted into the
// table (those once a gossip round, all the round's at once, so that a
// node builds at most ten Views a second for them whatever the mesh size);
// every 3 s (1 s on the local profile) it also reconciles with serf,
// which reports a leave intent
// without an event. Publishing closes the older View's Changed channel.
// A copy of a state already held (forwarded, or resent in full) is not
// decoded again: it confirms it. A confirmation moves the time the load was
// last confirmed (Member.LoadAt) inside the View already held rather than
// publishing a new one, so an idle mesh builds and decodes nothing while
// ages, computed at read time as LoadAge(now), stay honest. Stats counts
// ViewBuilds, LoadDecodes and ViewReads.
//
// The node's own tags have one owner, the mesh: user tags with a reserved
// key (shoal, priority, scale) are refused, and a coordinator's scale
// announcement goes through AnnounceScale.
//
// # Transports
//
// Config.Transport says what carries the mesh: NetTransport (UDP and TCP on
// one port, the default; a stock serf agent can share the pool),
// P2PTransport (memberlist over libp2p, with the p2p profile), or
// MemoryTransport, an in-memory network (package memnet) with per-link
// latency, jitter, loss, reordering and partitions, one-way ones included,
// on which tests run the real serf, memberlist and Shoal stack in one
// process:
//
//	nw := memnet.New(seed)
//	m, err := mesh.New(mesh.Config{NodeName: "n1", BindAddr: "10.0.0.1",
//		Profile: mesh.ProfileLocal, Transport: mesh.MemoryTransport(nw)})
//	nw.Partition([]string{"10.0.0.1"}, []string{"10.0.0.2", "10.0.0.3"})
//
// Shoal's packets share the transport's address with memberlist's: each
// transport hands those that start with PacketMagic to the mesh and the
// rest to memberlist.
//
// # Healing
//
// After a partition heals, memberlist alone is slow to merge: it no longer
// probes a member it holds dead, its gossip about the death was spent during
// the cut, and serf's reconnect tries a failed member every 30 s on lan,
// with the odds failed/alive. A side that held the other failed kept doing so
// for 24-34 s after a one-way cut healed, and an election counted fewer
// members than there were. So a sealed Shoal packet (a relay packet, or an
// election message that is fresh) from a member serf holds failed sets off a
// rejoin: a push-pull with that member, as serf's reconnect does, which
// learns that it is held dead and refutes it. One at a time and at most one a
// second per node (Stats.Rejoins, RejoinsFailed; shoal_gossip_rejoins_total):
// the mesh is whole again 0.5-2.4 s after a heal (TestHealedCutRejoinsPromptly).
//
// # Why load does not ride in serf tags
//
// A tag change is a memberlist alive broadcast, retransmitted about
// RetransmitMult × log10(N+1) times by every node: some 16 sends per node per
// change at 1,000 members. Gossiping load that way once a second from each of
// 1,000 nodes would be ~40 times memberlist's LAN gossip budget. Instead the
// mesh runs its own dissemination on the same port. Tags carry static facts.
//
// # Dissemination
//
// Every member must hear, from every other, a recent confirmation of its
// load: N × N confirmations a period, N per node. Random push gossip pays
// for that several times over (a node hears most confirmations from several
// peers, and the last few members only after many rounds); the relay
// delivers each confirmation to each member once.
//
// The relay. Each node sorts the alive Shoal members by NameID; a member's
// position is its rank, n the count, d = RelayBits(n) = ⌈log2 n⌉. Rounds
// (GossipInterval, 100 ms on lan) are cut on the wall clock, and round r
// has bit r mod d. A node starts a broadcast of its own entry (Table.Inject),
// with all d bits left, in waves: on the rounds that are a multiple of
// ConfirmInterval, every member in the same round (confirmDue), in full
// when its state changed since its last broadcast, else as a refresh (ID,
// age, version and a 16-bit tag of the state); and at once, off the wave,
// when its load moved far (Urgent, see Buckets). A node whose timer runs
// late takes the steps of the rounds it missed, at most d (firstRound).
// A node with nothing to pass on sleeps through rounds until its next
// wave, want or reconciliation, when Config.LoadChanged tells it of new
// load; a signalled load that moved past a bucket (Moved) or a received
// entry wakes it for the next round, a load that did not waits for the
// wave to confirm it (the agent's case; an idle agent of 30 runs about
// half its rounds). A holder at
// distance δ behind the origin in the order, with
// the set R of bits left, is to reach δ plus every sum of a subset of R
// below n; in a round whose bit b is in R it passes the entry to distance
// δ + 2^b (if below n) with R \ {b}, and keeps R \ {b} itself. The two
// halves cover the sums with and without 2^b, so every member receives
// the broadcast exactly once, whatever order the bits are taken in
// (recursive doubling). A broadcast that arrives in time takes one step a
// round and is done in d rounds; one that arrives late (its sender's or
// its receiver's round ran late, or their clocks disagree by most of a
// round) waits for its bits to come round, at most d rounds more, instead
// of going out on a packet of its own. So a node sends one relay packet a
// round at most, to the member 2^b ahead of it, holding every broadcast it
// passes on (more only when the entries exceed PacketBudget). Packets
// group entries by the bits they have left (a uvarint mask, one byte up to
// 128 members), so receivers know each broadcast's steps without
// per-entry cost. A node passes on an entry only if its version
// is above any it has passed on for that member (Table.MergeRelay): a
// replayed relay packet costs its receiver no sends.
//
// Wants. A lost packet, a member that is slow, dead but not yet declared
// so, or an order that differs between nodes (a join or failure on its way)
// leaves some members without a broadcast. Every third round a node lists,
// in a relay packet of its own to a random member, up to 64 members whose
// load it holds older than ConfirmInterval + (d+1) rounds (when a
// confirmation sent in time is due to have arrived; a late one may take up
// to 2d rounds, and is then asked for while on its way), holds none of, or must have in full
// because it saw a confirmation of a state it does not hold (Table.Wants): 5
// bytes each (NameID, its age in 100 ms units or "full"). The receiver
// answers, in a load packet (kind 1) to the member's address (not to where
// the packet came from), with what it holds at least a round fresher
// (Table.Answer). A member asked for is not asked for again within 5
// rounds, doubling to 40 while nothing newer arrives, so members with no
// load to give cost little.
//
// ConfirmInterval defaults by n to max(2 rounds, 1 s, 0.6 s × (n/100)^0.37):
// 1 s up to 400 members, 1.4 s at 1,000, 3.3 s at 10,000. The age a member
// shows is then between the depth of the relay (d rounds; up to 2d when
// packets arrive after their round) and that plus the interval; bytes per node are about n/interval confirmations (8
// bytes each) plus every state change of every member once (23 bytes),
// plus one packet a round. Measured and simulated figures are in
// docs/benchmarks.md; SimulateDissemination models the scheme up to
// 10,000 members.
//
// Buckets: a node publishes a new state only when its load moved past a
// bucket (Moved: a CPU or memory point, 10% of a rate); otherwise it
// re-confirms the last one. A new state goes out at once, on a broadcast
// of its own, only when it moved far from the last one sent (Urgent: 5
// points of CPU or memory, a quarter of the load average, half a rate);
// else it rides the next wave of confirmations in full, within a confirm
// interval and a round.
//
// Age: an entry's age is the time since its origin last published or
// confirmed that state. The sample behind it is at most one sampling
// interval older still. Ages travel as ages, not timestamps, so clocks
// never need to agree; rounds cut on clocks that disagree cost packets, not
// correctness.
//
// # Replay protection
//
// Encryption stops forgery, not replay: a packet captured on the wire can
// be sent again, by anyone, from anywhere that reaches the port. So every
// load confirmation and every election message carries a version from its
// origin's VersionClock, and receivers order what an origin says by it:
//
//   - Versions are a hybrid logical clock: max(previous + 1, wall clock in
//     10 ms units since 2025-01-01 UTC). They rise strictly while a node
//     runs. Across restarts a floor above every version handed out is kept
//     in the data directory (VersionFile, written and synced before a
//     version past it is used, once per half hour), so a restarted node
//     starts above its old versions even if its clock went back. Without a
//     data directory the wall clock is the floor: safe unless the clock is
//     set back across a restart (its loads are then refused until the
//     clock passes its old versions, or the member is reaped and rejoins).
//     Versions are only ever compared with the same origin's, so clocks
//     need not agree between hosts; ages still travel as ages.
//   - A node confirms its load under a new version each time it starts a
//     broadcast; relays pass on the version they received. A receiver takes an entry only if its
//     version is above the one it holds for that member (Table.Merge): an
//     older state never comes back. A copy of the version it holds
//     refreshes nothing: it may only move the estimate of when the origin
//     published it earlier, and a replay arrives later than the original,
//     so replaying the newest packet does not make a stale load look
//     fresh. A member whose packets stop ages out, replays or not.
//   - Election messages pass, in mesh's envelope, an anti-replay window
//     over the sender's versions (the highest seen and a 64-bit map below
//     it, as IPsec's), and must be no more than ElectionWindow (10 s) below
//     the newest load version held from the sender: a freshness window on
//     the sender's own clock. Messages from names that are not members are
//     dropped. Terms are the election's business: it refuses a term below
//     the one it knows (docs/threat-model.md, election/testdata/replay.txt).
//   - Refusals are counted (Stats.StaleEntries, SameEntries, StaleElections;
//     shoal_gossip_stale_total in /metrics). Late copies count too, so a
//     replay shows as a rise, not as a non-zero value.
//
// What remains: a receiver that holds nothing about an origin (it just
// started, or the origin just joined) takes the first authenticated entry
// it sees, so an attacker who both holds back the origin's packets and
// replays old ones can show an old load until one genuine packet gets
// through; from then on those replays are refused.
//
// Cost: a load packet carries a base (the sender's version clock reading,
// 5 bytes this decade, 6 from 2035) and each entry its version as the
// signed difference from base − age, which is about the clock skew between
// its origin and the sender: 1 byte within ±630 ms, more for larger skew,
// exact whatever the skew. Full entries are 23 bytes instead of 22,
// refreshes 8 instead of 7; election messages carry 5 bytes more.
// Per-node figures before and after are in docs/benchmarks.md. Version 1 packets
// (without versions) are refused, so agents before and after this change
// do not exchange load: upgrade a mesh all at once. The same holds for the
// relay (kind 3): agents before it count its packets as dropped.
//
// # Packet layout
//
// Shoal packets share memberlist's UDP port. memberlist's own start with a
// message type below 32, an encryption version (0/1) or its label marker
// (244); Shoal's start with 0xC5:
//
//	off  len  field
//	0    1    0xC5 magic
//	1    1    high nibble: framing version (2); low nibble: flags (bit 0: encrypted)
//	plaintext:  2  1  label length L;  3  L  label (must equal ours);  3+L  body
//	encrypted:  2 12  nonce;  14  ...  AES-GCM(body) with its 16-byte tag;
//	            additional data = bytes 0–1 and our label
//
// The key is memberlist's primary gossip key; every installed key is tried
// when opening, so rotation (install, use, remove) needs no downtime. Body:
//
//	0   1  kind: 1 load entries, 2 election message, 3 relay
//	kind 1: uvarint base (the sender's VersionAt(now), ≤ 2^62),
//	        uvarint count (≤ 1024), then per entry:
//	        4 bytes NameID (FNV-1a of the member name, big-endian),
//	        uvarint (age a in 50 ms units (≤ 1 h) << 1 | full),
//	        zigzag varint d: the origin's version is base − 5a + d (0–2^62),
//	        full:    1 byte state length (≤ 64), state
//	        refresh: 2 bytes StateTag of the state it confirms
//	kind 2: 1 byte sender name length (1–128), sender name,
//	        uvarint version (the sender's VersionClock),
//	        election message (≤ 4,096 bytes)
//	kind 3: uvarint base (the sender's VersionClock), 4 bytes sender NameID,
//	        uvarint group count (≤ 64), per group: uvarint mask of the
//	        steps left (< 2^31), uvarint entry count, entries as in kind 1
//	        (≤ 1024 in all); uvarint want count (≤ 256), per want: 4 bytes
//	        NameID, 1 byte (bit 7: full state; bits 0–6: age in 100 ms;
//	        255: holds none)
//
// # Node state layout (version 1.0, 16 bytes, big-endian)
//
//	off len field
//	0   1   version: high nibble major (1), low nibble minor (0)
//	1   1   flags (0)
//	2   2   CPU busy, hundredths of a percent (0–10000)
//	4   2   memory used, hundredths of a percent (0–10000)
//	6   2   cores available, hundredths (cgroup quota or logical CPUs)
//	8   2   1-minute load average, hundredths (saturates at 655.35)
//	10  2   network receive, bytes/s, mini-float
//	12  2   network transmit, bytes/s, mini-float
//	14  2   memory available, bytes, mini-float
//
// A mini-float is 5 bits of exponent e over 11 bits of mantissa m, value
// m << e: under 0.1% error from 1 KiB up, saturating at about 4.4e12. A
// reader accepts any minor version of its major version and ignores bytes
// past those it knows, so fields are added by appending. Every decoder
// bounds its input and returns an error instead of panicking; garbage is
// dropped and counted in Stats.Dropped, by reason in Stats.DroppedBy
// (DropReason; shoal_gossip_dropped_total{reason} in /metrics), memberlist's
// drops included: it counts none itself, so they are read from its log
// lines, each logged at most once per reason per 10 s.
package mesh
