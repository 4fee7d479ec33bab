package mesh

import (
	"math/bits"
	"slices"
	"time"
)

// The relay: how a load confirmation reaches every member once. See the
// package doc, "Dissemination", for the scheme and its figures.

// RelayBits is the number of steps of a broadcast among n members: the
// bits of the largest distance, n−1. 0 for n ≤ 1.
func RelayBits(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// relayRec is a broadcast this node still has steps of: the entry it
// passes on and the bits of the steps left.
type relayRec struct {
	name    string
	version uint64
	origin  time.Time
	tag     uint16
	state   []byte // non-nil: passed on in full
	mask    uint32
}

// fullMask is the mask of a broadcast's first holder: every bit of d (at
// most MaxRelayBits).
func fullMask(d int) uint32 { return uint32(1)<<min(d, MaxRelayBits) - 1 }

// Inject starts a broadcast of this node's own entry (set by SetSelf) over
// the d bits of the order: in full when full is set (its state changed
// since the last one), else as a refresh.
func (t *Table) Inject(d int, full bool) {
	s, ok := t.entries[t.self]
	if !ok || d <= 0 {
		return
	}
	r := &relayRec{name: t.self, version: s.version, origin: s.origin, tag: s.tag, mask: fullMask(d)}
	if full {
		r.state = s.state
	}
	t.pending = append(t.pending, r)
}

// DropPending forgets every broadcast this node has steps of (it left the
// order: its steps are no longer its to take).
func (t *Table) DropPending() {
	clear(t.pending)
	t.pending = t.pending[:0]
}

// Pending is the number of broadcasts this node still has steps of.
func (t *Table) Pending() int { return len(t.pending) }

// NeedFull is the number of members whose state this node must ask for in
// full (it saw a confirmation of a state it does not hold).
func (t *Table) NeedFull() int { return len(t.needFull) }

// MergeRelay takes an entry that arrived on the relay with the steps left
// to it in mask (Merge decides what the table keeps), and, if its version
// is newer than any this node has queued for that member and steps remain
// among the d bits of this node's order, queues it to be passed on. A
// replayed or late copy is refused by Merge and is not passed on either.
func (t *Table) MergeRelay(e Entry, mask uint32, d int, now time.Time) MergeResult {
	res := t.Merge(e, now)
	mask &= fullMask(d)
	if e.Name == t.self || mask == 0 || e.Version <= t.fwd[e.Name] {
		return res
	}
	if _, known := t.fwd[e.Name]; !known && len(t.fwd) >= t.MaxEntries {
		return res
	}
	t.fwd[e.Name] = e.Version
	r := &relayRec{name: e.Name, version: e.Version, origin: now.Add(-e.Age), tag: e.Tag, mask: mask}
	if e.Full {
		r.state = e.State
	}
	t.pending = append(t.pending, r)
	return res
}

// RelayOut is what one round sends: to the member at this node's position
// plus 2^Bit.
type RelayOut struct {
	Bit    int
	Groups []RelayGroup
}

// Relay makes the step of the round's bit of every pending broadcast that
// has it left. n is the number of members in the order, and dist gives a
// member's distance behind this node in the order ((own position − its
// position) mod n; false when it is not in the order).
//
// A holder at distance δ behind a broadcast's origin, with the set R of
// bits left, is to reach δ + every sum of a subset of R that is below n.
// Taking bit b ∈ R, it passes the entry to δ + 2^b (when below n) with
// R \ {b}, and keeps R \ {b} itself: the two halves cover the sums with
// and without 2^b, so every member receives the entry exactly once,
// whatever order the bits are taken in. The origin starts with all d bits
// of the order. Rounds take bits in turn (bit = round mod d), so a
// broadcast that arrives in time takes one step a round, and one that
// arrives late (its sender's round ran late, or the clocks disagree) waits
// for its bits to come round instead of costing a packet of its own: a
// node sends at most one relay packet a round (more only past the packet
// budget). The entry passed on is the one received (its version names the
// broadcast: a node that has passed on a newer one of that member does not
// pass on an older, whose members the newer reaches anyway).
func (t *Table) Relay(now time.Time, n, bit int, dist func(name string) (int, bool)) RelayOut {
	out := RelayOut{Bit: bit}
	d := min(RelayBits(n), MaxRelayBits)
	if n < 2 || bit < 0 || bit >= d {
		t.DropPending()
		return out
	}
	// Bits past the order's (it shrank since the entry came) are steps to
	// members that are no longer there.
	dm, b := fullMask(d), uint32(1)<<bit
	groups := map[uint32][]Entry{}
	keep := t.pending[:0]
	for _, r := range t.pending {
		delta, ok := dist(r.name)
		if !ok {
			continue
		}
		r.mask &= dm
		if r.mask&b != 0 {
			r.mask &^= b
			if delta+1<<bit < n {
				groups[r.mask] = append(groups[r.mask], t.relayEntry(r, now))
			}
		}
		if r.mask != 0 {
			keep = append(keep, r)
		}
	}
	clear(t.pending[len(keep):])
	t.pending = keep
	if len(groups) == 0 {
		return out
	}
	masks := make([]uint32, 0, len(groups))
	for m := range groups {
		masks = append(masks, m)
	}
	slices.Sort(masks)
	for _, m := range masks {
		out.Groups = append(out.Groups, RelayGroup{Mask: m, Entries: groups[m]})
	}
	return out
}

func (t *Table) relayEntry(r *relayRec, now time.Time) Entry {
	e := Entry{Name: r.name, Age: clampAge(now.Sub(r.origin)), Version: r.version, Tag: r.tag}
	if r.state != nil {
		e.Full, e.State = true, r.state
	}
	return e
}

// asked is when a member's load was last asked for, and how many times in
// a row without a newer version arriving: the next ask waits retry·2^n
// (at most 8·retry), so members with no load to give (not started, or
// gone) cost little.
const maxWantBackoff = 3

type asked struct {
	at time.Time
	n  int
}

// Wants lists what this node should ask a peer for: members (of those
// given, this node excepted) whose load it holds older than wantAge, holds
// none of, or must have in full (it saw a confirmation of a state it does
// not hold); not those asked for within their retry time (see asked).
// Full-state wants come first, then the oldest; at most max. It records
// them as asked at now.
func (t *Table) Wants(now time.Time, members []string, wantAge, retry time.Duration, max int) []Want {
	var ws []Want
	for _, name := range members {
		if name == t.self {
			continue
		}
		w := Want{Name: name, Full: t.needFull[name]}
		if e, ok := t.entries[name]; !ok {
			w.Full, w.None = true, true
		} else {
			w.Age = now.Sub(e.origin)
		}
		if !w.Full && w.Age <= wantAge {
			continue
		}
		if a, ok := t.asked[name]; ok && now.Sub(a.at) < retry<<min(a.n, maxWantBackoff) {
			continue
		}
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b Want) int {
		if a.Full != b.Full {
			if a.Full {
				return -1
			}
			return 1
		}
		if a.Age != b.Age {
			if a.Age > b.Age {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	if len(ws) > max {
		ws = ws[:max]
	}
	for _, w := range ws {
		a, ok := t.asked[w.Name]
		if ok || len(t.asked) < t.MaxEntries {
			if ok {
				a.n++
			}
			t.asked[w.Name] = asked{at: now, n: a.n}
		}
	}
	return ws
}

// NextWant is the earliest time at which Wants, given the same members,
// wantAge and retry, would list a member (now when one is due already),
// if nothing arrives meanwhile; ok is false when members names no one but
// this node. It records nothing.
func (t *Table) NextWant(now time.Time, members []string, wantAge, retry time.Duration) (due time.Time, ok bool) {
	for _, name := range members {
		if name == t.self {
			continue
		}
		at := now
		if e, held := t.entries[name]; held && !t.needFull[name] {
			at = e.origin.Add(wantAge + 1) // Wants takes ages above wantAge
		}
		if a, asked := t.asked[name]; asked {
			if r := a.at.Add(retry << min(a.n, maxWantBackoff)); r.After(at) {
				at = r
			}
		}
		if !ok || at.Before(due) {
			due, ok = at, true
		}
	}
	if ok && due.Before(now) {
		due = now
	}
	return due, ok
}

// Answer returns the entries that answer a member's wants: where this
// node's copy is at least margin fresher than the requester's (or the
// requester holds none), a refresh, or the full state if it asked for it;
// this node's own entry whenever it is asked for; at most budget bytes.
// base is the requester's packet base: wants under a base at or below the
// last one answered for that requester (a replay) get no answer, and
// fresh is false.
func (t *Table) Answer(from string, base uint64, wants []Want, now time.Time, margin time.Duration, budget int) (out []Entry, fresh bool) {
	if f, ok := t.wantFloor[from]; ok && base <= f {
		return nil, false
	}
	if _, ok := t.wantFloor[from]; ok || len(t.wantFloor) < t.MaxEntries {
		t.wantFloor[from] = base
	}
	used := 0
	vbase := VersionAt(now)
	for _, w := range wants {
		te, ok := t.entries[w.Name]
		if !ok || w.Name == from {
			continue
		}
		age := clampAge(now.Sub(te.origin))
		if !w.None && w.Name != t.self && age+margin > w.Age {
			continue
		}
		e := Entry{Name: w.Name, Age: age, Version: te.version, Tag: te.tag}
		if w.Full {
			e.Full, e.State = true, te.state
		}
		sz := entrySize(e, vbase)
		if used+sz > budget || len(out) >= MaxEntries {
			break
		}
		used += sz
		out = append(out, e)
	}
	return out, true
}
