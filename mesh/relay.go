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
// passes on, the bit its origin started on, and the steps made.
type relayRec struct {
	name    string
	version uint64
	origin  time.Time
	tag     uint16
	state   []byte // non-nil: passed on in full
	j0, h   uint8
}

// Inject starts a broadcast of this node's own entry (set by SetSelf) on
// bit j0: in full when full is set (its state changed since the last
// one), else as a refresh.
func (t *Table) Inject(j0 int, full bool) {
	s, ok := t.entries[t.self]
	if !ok {
		return
	}
	r := &relayRec{name: t.self, version: s.version, origin: s.origin, tag: s.tag, j0: uint8(j0)}
	if full {
		r.state = s.state
	}
	t.pending = append(t.pending, r)
}

// Pending is the number of broadcasts this node still has steps of.
func (t *Table) Pending() int { return len(t.pending) }

// MergeRelay takes an entry that arrived on the relay at step h of a
// broadcast begun on bit j0 (Merge decides what the table keeps), and, if
// its version is newer than any this node has queued for that member and
// steps remain (h < d), queues it to be passed on. A replayed or late copy
// is refused by Merge and is not passed on either.
func (t *Table) MergeRelay(e Entry, j0, h uint8, d int, now time.Time) MergeResult {
	res := t.Merge(e, now)
	if e.Name == t.self || int(h) >= d || e.Version <= t.fwd[e.Name] {
		return res
	}
	if _, known := t.fwd[e.Name]; !known && len(t.fwd) >= t.MaxEntries {
		return res
	}
	t.fwd[e.Name] = e.Version
	r := &relayRec{name: e.Name, version: e.Version, origin: now.Add(-e.Age), tag: e.Tag, j0: j0, h: h}
	if e.Full {
		r.state = e.State
	}
	t.pending = append(t.pending, r)
	return res
}

// RelayOut is what one round sends on one bit: to the member at this
// node's position plus 2^Bit.
type RelayOut struct {
	Bit    int
	Groups []RelayGroup
}

// Relay makes one step of every pending broadcast. n is the number of
// members in the order, d = RelayBits(n), and dist gives a member's
// distance behind this node in the order ((own position − its position)
// mod n; false when it is not in the order). A broadcast begun on bit j0
// takes bit (j0+h) mod d at step h: each holder at distance δ passes it to
// distance δ + 2^bit when that is below n, so after d steps every member
// holds it exactly once. The entry passed on is the one received (its
// version names the broadcast: a node that has passed on a newer one of
// that member does not pass on an older, whose members the newer reaches
// anyway).
func (t *Table) Relay(now time.Time, n, d int, dist func(name string) (int, bool)) []RelayOut {
	if d == 0 {
		clear(t.pending)
		t.pending = t.pending[:0]
		return nil
	}
	type key struct{ bit, j0, h uint8 }
	groups := map[key][]Entry{}
	keep := t.pending[:0]
	for _, r := range t.pending {
		delta, ok := dist(r.name)
		if !ok || int(r.h) >= d || int(r.j0) >= d {
			continue
		}
		bit := (int(r.j0) + int(r.h)) % d
		r.h++
		if delta+1<<bit < n {
			k := key{uint8(bit), r.j0, r.h}
			groups[k] = append(groups[k], t.relayEntry(r, now))
		}
		if int(r.h) < d {
			keep = append(keep, r)
		}
	}
	clear(t.pending[len(keep):])
	t.pending = keep
	if len(groups) == 0 {
		return nil
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.bit != b.bit {
			return int(a.bit) - int(b.bit)
		}
		if a.j0 != b.j0 {
			return int(a.j0) - int(b.j0)
		}
		return int(a.h) - int(b.h)
	})
	var out []RelayOut
	for _, k := range keys {
		if len(out) == 0 || out[len(out)-1].Bit != int(k.bit) {
			out = append(out, RelayOut{Bit: int(k.bit)})
		}
		o := &out[len(out)-1]
		o.Groups = append(o.Groups, RelayGroup{J0: k.j0, H: k.h, Entries: groups[k]})
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
