package mesh

import (
	"bytes"
	"time"
)

// Table holds the freshest known load state of every member, as the
// dissemination scheme (see the package doc) delivers it. It is pure: time
// comes in as arguments. It is not safe for concurrent use; Mesh guards it.
type Table struct {
	self    string
	entries map[string]*tableEntry
	// elections holds the anti-replay window of each election sender.
	elections map[string]*replayWindow
	// MaxEntries bounds the table; merges of unknown names past it are
	// dropped, and so are the relay's records and wants about them.
	MaxEntries int

	// The relay (relay.go): broadcasts this node still has steps of,
	// the newest version queued per origin, members whose state it must
	// ask for in full, when it last asked for each, and the base of the
	// last wants it answered per requester.
	pending   []*relayRec
	fwd       map[string]uint64
	needFull  map[string]bool
	asked     map[string]asked
	wantFloor map[string]uint64
}

type tableEntry struct {
	state []byte
	tag   uint16
	// version is the origin's version of the newest confirmation held:
	// entries at or below it are refused (replays and late copies).
	version uint64
	// origin is the local-clock estimate of when the origin last published
	// this state: receive time minus the age the sender stated, from the
	// first copy of this version (later copies of the same version can only
	// move it earlier). No clocks are compared across hosts, so skew does
	// not matter.
	origin time.Time
}

// NewTable returns an empty table for the node called self.
func NewTable(self string) *Table {
	return &Table{self: self, entries: map[string]*tableEntry{}, elections: map[string]*replayWindow{}, MaxEntries: 100_000,
		fwd: map[string]uint64{}, needFull: map[string]bool{}, asked: map[string]asked{}, wantFloor: map[string]uint64{}}
}

// MergeResult says what Merge did with an entry.
type MergeResult int

const (
	// Taken: the entry was newer than what the table held, or new.
	Taken MergeResult = iota
	// Older: the table holds a newer version of the origin's load. A late
	// copy, or a replay.
	Older
	// Same: the table holds this very version already. Another copy of
	// it (or a replay of the newest packet): it refreshes nothing.
	Same
	// Ignored: about this node itself, a refresh of a state the table does
	// not hold (the table then asks for the full state: see Wants), or the
	// table is full.
	Ignored
)

// StateTag is the 16-bit tag that stands for a state in refresh entries.
func StateTag(state []byte) uint16 {
	h := NameID(string(state))
	return uint16(h>>16) ^ uint16(h)
}

// SetSelf records this node's own current state, published or confirmed
// at now under version (the next value of its VersionClock, above every
// earlier one).
func (t *Table) SetSelf(state []byte, version uint64, now time.Time) {
	cur, ok := t.entries[t.self]
	if ok && bytes.Equal(cur.state, state) {
		cur.origin, cur.version = now, version
		return
	}
	t.entries[t.self] = &tableEntry{state: state, tag: StateTag(state), version: version, origin: now}
}

// Merge takes one received entry and keeps it if its version is above the
// one the table holds for that member. A refresh counts only if the table
// holds the state it names. A copy of the version held refreshes nothing:
// it can only move the estimate of when the origin published it earlier
// (a replay arrives late and so would move it later). Entries about this
// node itself are ignored. A newer refresh of a state the table does not
// hold marks the member for a full-state want.
func (t *Table) Merge(e Entry, now time.Time) MergeResult {
	if e.Name == t.self {
		return Ignored
	}
	origin := now.Add(-e.Age)
	cur, ok := t.entries[e.Name]
	if ok {
		switch {
		case e.Version < cur.version:
			return Older
		case e.Version == cur.version:
			if origin.Before(cur.origin) && (!e.Full || bytes.Equal(cur.state, e.State)) {
				cur.origin = origin
			}
			return Same
		}
	}
	if !e.Full {
		if !ok || cur.tag != e.Tag {
			if ok || len(t.needFull) < t.MaxEntries {
				t.needFull[e.Name] = true
			}
			return Ignored
		}
		cur.version, cur.origin = e.Version, origin
		delete(t.asked, e.Name)
		return Taken
	}
	delete(t.needFull, e.Name)
	delete(t.asked, e.Name)
	if ok {
		if !bytes.Equal(cur.state, e.State) {
			cur.state, cur.tag = e.State, StateTag(e.State)
		}
		cur.version, cur.origin = e.Version, origin
		return Taken
	}
	if len(t.entries) >= t.MaxEntries {
		return Ignored
	}
	t.entries[e.Name] = &tableEntry{state: e.State, tag: StateTag(e.State), version: e.Version, origin: origin}
	return Taken
}

// ElectionWindow is how far (in VersionUnits of the sender's clock) an
// election message may lag the newest load confirmation held from its
// sender: 10 s. Older ones are refused as stale.
const ElectionWindow = uint64(10 * time.Second / VersionUnit)

// replayWindow is an anti-replay window over one sender's versions, as
// IPsec's: the highest version seen and a bitmap of the 64 below it.
type replayWindow struct {
	high uint64
	seen uint64 // bit i: high-i was seen
}

// ElectionResult says whether an election message envelope is fresh.
type ElectionResult int

const (
	// ElectionFresh: not seen before, and recent enough.
	ElectionFresh ElectionResult = iota
	// ElectionReplayed: this version was seen already.
	ElectionReplayed
	// ElectionStale: more than 64 versions below the newest election
	// message from the sender, or more than ElectionWindow below its
	// newest load confirmation held here.
	ElectionStale
)

// AcceptElection checks the envelope version of an election message from
// a member and records it. Only messages it calls ElectionFresh may be
// handed on. The state is forgotten with Remove.
func (t *Table) AcceptElection(from string, version uint64) ElectionResult {
	if e, ok := t.entries[from]; ok && version+ElectionWindow < e.version {
		return ElectionStale
	}
	w, ok := t.elections[from]
	if !ok {
		if len(t.elections) >= t.MaxEntries {
			return ElectionStale
		}
		t.elections[from] = &replayWindow{high: version, seen: 1}
		return ElectionFresh
	}
	if version > w.high {
		shift := version - w.high
		if shift >= 64 {
			w.seen = 0
		} else {
			w.seen <<= shift
		}
		w.high, w.seen = version, w.seen|1
		return ElectionFresh
	}
	d := w.high - version
	if d >= 64 {
		return ElectionStale
	}
	if w.seen&(1<<d) != 0 {
		return ElectionReplayed
	}
	w.seen |= 1 << d
	return ElectionFresh
}

// Get returns a member's state and the time its origin published it.
func (t *Table) Get(name string) (state []byte, origin time.Time, ok bool) {
	e, ok := t.entries[name]
	if !ok {
		return nil, time.Time{}, false
	}
	return e.state, e.origin, true
}

// VersionOf returns the version held for a member (0 if none).
func (t *Table) VersionOf(name string) uint64 {
	if e, ok := t.entries[name]; ok {
		return e.version
	}
	return 0
}

// Remove forgets a member: its load, its election window and what the
// relay keeps about it.
func (t *Table) Remove(name string) {
	delete(t.entries, name)
	delete(t.elections, name)
	delete(t.fwd, name)
	delete(t.needFull, name)
	delete(t.asked, name)
	delete(t.wantFloor, name)
	keep := t.pending[:0]
	for _, r := range t.pending {
		if r.name != name {
			keep = append(keep, r)
		}
	}
	clear(t.pending[len(keep):])
	t.pending = keep
}

// Len returns the number of entries, this node's own included.
func (t *Table) Len() int { return len(t.entries) }

func clampAge(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d > MaxEntryAge {
		return MaxEntryAge
	}
	return d
}
