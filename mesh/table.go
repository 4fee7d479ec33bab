package mesh

import (
	"slices"
	"time"
)

// Table holds the freshest known load state of every member, as the
// dissemination scheme (see the package doc) delivers it. It is pure: time
// comes in as arguments. It is not safe for concurrent use; Mesh guards it.
type Table struct {
	self    string
	entries map[string]*tableEntry
	// MaxEntries bounds the table; merges of unknown names past it are dropped.
	MaxEntries int
}

type tableEntry struct {
	state []byte
	// origin is the local-clock estimate of when the origin published it:
	// receive time minus the age the sender stated. No clocks are compared
	// across hosts, so skew does not matter; transit time is not counted.
	origin time.Time
}

// NewTable returns an empty table for the node called self.
func NewTable(self string) *Table {
	return &Table{self: self, entries: map[string]*tableEntry{}, MaxEntries: 100_000}
}

// SetSelf records this node's own current state, published at now.
func (t *Table) SetSelf(state []byte, now time.Time) {
	t.entries[t.self] = &tableEntry{state: state, origin: now}
}

// Merge takes one received entry and keeps it if it is fresher than what the
// table holds. Entries about this node itself are ignored. It reports whether
// the table changed.
func (t *Table) Merge(e Entry, now time.Time) bool {
	if e.Name == t.self {
		return false
	}
	origin := now.Add(-e.Age)
	cur, ok := t.entries[e.Name]
	if ok {
		// Ages are carried in 10 ms steps: only a strictly fresher copy wins.
		if !origin.After(cur.origin) {
			return false
		}
		cur.state, cur.origin = e.State, origin
		return true
	}
	if len(t.entries) >= t.MaxEntries {
		return false
	}
	t.entries[e.Name] = &tableEntry{state: e.State, origin: origin}
	return true
}

// Get returns a member's state and the time its origin published it.
func (t *Table) Get(name string) (state []byte, origin time.Time, ok bool) {
	e, ok := t.entries[name]
	if !ok {
		return nil, time.Time{}, false
	}
	return e.state, e.origin, true
}

// Remove forgets a member.
func (t *Table) Remove(name string) { delete(t.entries, name) }

// Len returns the number of entries, this node's own included.
func (t *Table) Len() int { return len(t.entries) }

// Select picks the entries for one outgoing packet: this node's own first,
// then the others freshest first, skipping those older than maxAge and those
// for which eligible returns false, until budget bytes of entries are used.
// Freshest-first is what makes the scheme an epidemic for new information
// while the bytes per packet stay fixed whatever the mesh size.
func (t *Table) Select(now time.Time, budget int, maxAge time.Duration, eligible func(string) bool) []Entry {
	type cand struct {
		name string
		e    *tableEntry
	}
	cands := make([]cand, 0, len(t.entries))
	for name, e := range t.entries {
		if name == t.self {
			continue
		}
		if maxAge > 0 && now.Sub(e.origin) > maxAge {
			continue
		}
		if eligible != nil && !eligible(name) {
			continue
		}
		cands = append(cands, cand{name, e})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := b.e.origin.Compare(a.e.origin); c != 0 {
			return c
		}
		if a.name < b.name {
			return -1
		}
		return 1
	})
	var out []Entry
	used := 0
	if s, ok := t.entries[t.self]; ok {
		e := Entry{Name: t.self, Age: clampAge(now.Sub(s.origin)), State: s.state}
		used += entrySize(e)
		out = append(out, e)
	}
	for _, c := range cands {
		e := Entry{Name: c.name, Age: clampAge(now.Sub(c.e.origin)), State: c.e.state}
		sz := entrySize(e)
		if used+sz > budget || len(out) >= MaxEntries {
			break
		}
		used += sz
		out = append(out, e)
	}
	return out
}

func clampAge(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d > MaxEntryAge {
		return MaxEntryAge
	}
	return d
}
