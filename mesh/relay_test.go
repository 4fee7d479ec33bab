package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// relayMesh is n tables in one order (name i at position i), exchanging
// relay packets through the real encoding, synchronously, round by round.
type relayMesh struct {
	n, d   int
	tables []*Table
	names  []string
	// took[i] counts the entries about origin 0 table i took.
	took []int
	// drop, when set, loses the packet from i to j in round r.
	drop func(r, from, to int) bool
	// bit, when set, is the bit table i takes in round r; else r mod d.
	bit func(r, i int) int
	// late, when set, delivers the packet from i to j in round r after
	// the next round instead of before it.
	late func(r, from, to int) bool
	held []relayPkt
	// sent counts the relay packets each table sent.
	sent []int
}

type relayPkt struct {
	to   int
	body []byte
}

func newRelayMesh(n int) *relayMesh {
	rm := &relayMesh{n: n, d: RelayBits(n), took: make([]int, n), sent: make([]int, n)}
	for i := 0; i < n; i++ {
		rm.names = append(rm.names, fmt.Sprintf("r%d", i))
		rm.tables = append(rm.tables, NewTable(rm.names[i]))
	}
	return rm
}

func (rm *relayMesh) pos(name string) (int, bool) {
	var i int
	if _, err := fmt.Sscanf(name, "r%d", &i); err != nil || i >= rm.n {
		return 0, false
	}
	return i, true
}

// round makes one relay step at every table and delivers the packets
// (those held back from the round before first).
func (rm *relayMesh) round(t *testing.T, r int, now time.Time) (packets, entries int) {
	t.Helper()
	out := rm.held
	rm.held = nil
	for i, tb := range rm.tables {
		bit := r % rm.d
		if rm.bit != nil {
			bit = rm.bit(r, i)
		}
		o := tb.Relay(now, rm.n, bit, func(name string) (int, bool) {
			p, ok := rm.pos(name)
			return (i - p + rm.n) % rm.n, ok
		})
		if len(o.Groups) == 0 {
			continue
		}
		rm.sent[i]++
		to := (i + 1<<o.Bit) % rm.n
		if rm.drop != nil && rm.drop(r, i, to) {
			continue
		}
		// Packed as sendRelay packs them: split by the budget and the
		// decoder's bounds.
		for groups := o.Groups; len(groups) > 0; {
			var p RelayPacket
			p, groups = packRelay(VersionAt(now), groups, nil, 1400)
			pk := relayPkt{to, AppendRelay(nil, rm.names[i], p)}
			if rm.late != nil && rm.late(r, i, to) {
				rm.held = append(rm.held, pk)
			} else {
				out = append(out, pk)
			}
		}
	}
	for _, p := range out {
		rp, err := DecodeRelay(p.body)
		if err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		packets++
		for _, g := range rp.Groups {
			for _, e := range g.Entries {
				e.Name = fmt.Sprintf("r%d", idOf(rm.names, e.ID))
				entries++
				if rm.tables[p.to].MergeRelay(e, g.Mask, rm.d, now) == Taken && e.Name == rm.names[0] {
					rm.took[p.to]++
				}
			}
		}
	}
	return packets, entries
}

func idOf(names []string, id uint32) int {
	for i, n := range names {
		if NameID(n) == id {
			return i
		}
	}
	return -1
}

// A broadcast reaches every member exactly once, in RelayBits(n) rounds,
// whatever n and whichever bit it starts on, with one packet per node and
// round at most.
func TestRelayReachesEveryMemberOnce(t *testing.T) {
	st := EncodeState(nil, metrics.Load{CPUPercent: 42})
	t0 := time.Unix(1_800_000_000, 0)
	for _, n := range []int{2, 3, 5, 8, 13, 100, 1000} {
		for _, j0 := range []int{0, RelayBits(n) - 1} {
			rm := newRelayMesh(n)
			rm.bit = func(r, _ int) int { return (r + j0) % rm.d }
			rm.tables[0].SetSelf(st, 1000, t0)
			rm.tables[0].Inject(rm.d, true)
			total := 0
			for r := 0; r < rm.d; r++ {
				p, e := rm.round(t, r, t0.Add(time.Duration(r)*100*time.Millisecond))
				if p > n {
					t.Fatalf("n=%d: %d packets in round %d", n, p, r)
				}
				total += e
			}
			for i := 1; i < n; i++ {
				if rm.took[i] != 1 {
					t.Fatalf("n=%d j0=%d: r%d took origin r0's entry %d times", n, j0, i, rm.took[i])
				}
				if got, _, ok := rm.tables[i].Get("r0"); !ok || !bytes.Equal(got, st) {
					t.Fatalf("n=%d: r%d holds %v", n, i, got)
				}
			}
			if total != n-1 {
				t.Fatalf("n=%d: %d entries sent for %d receivers", n, total, n-1)
			}
			for i, tb := range rm.tables {
				if tb.Pending() != 0 {
					t.Fatalf("n=%d: r%d still has %d broadcasts after %d rounds", n, i, tb.Pending(), rm.d)
				}
			}
		}
	}
}

// packRelay keeps every packet within DecodeRelay's bounds (groups,
// entries) and the budget, loses no entry and keeps their order; an entry
// larger than the budget still goes, alone.
func TestPackRelayBounds(t *testing.T) {
	st := EncodeState(nil, metrics.Load{CPUPercent: 3})
	base := VersionAt(time.Unix(1_800_000_000, 0))
	mk := func(groups, per int) []RelayGroup {
		var gs []RelayGroup
		for g := range groups {
			var es []Entry
			for e := range per {
				es = append(es, Entry{Name: fmt.Sprintf("m%d-%d", g, e), Version: base - 7, Age: time.Second, Tag: uint16(e)})
			}
			es[0].Full, es[0].State = true, st
			gs = append(gs, RelayGroup{Mask: uint32(g), Entries: es})
		}
		return gs
	}
	for _, c := range []struct {
		name            string
		groups, per     int
		budget, wantMin int
	}{
		{"200 small groups, budget 1400", 200, 2, 1400, 4},
		{"200 small groups, budget 64 KiB", 200, 2, 64 << 10, 4},
		{"one group of 3000, budget 64 KiB", 1, 3000, 64 << 10, 3},
		{"entries over the budget", 3, 2, 10, 6},
	} {
		in := mk(c.groups, c.per)
		var got []string
		packets := 0
		for rest := in; len(rest) > 0; {
			var p RelayPacket
			p, rest = packRelay(base, rest, []Want{{Name: "w"}}, c.budget)
			packets++
			body := AppendRelay(nil, "me", p)
			dp, err := DecodeRelay(body)
			if err != nil {
				t.Fatalf("%s: packet %d does not decode: %v", c.name, packets, err)
			}
			nent := 0
			for _, g := range p.Groups {
				nent += len(g.Entries)
				for _, e := range g.Entries {
					got = append(got, e.Name)
				}
			}
			if len(p.Groups) > MaxRelayGroups || nent > MaxEntries || len(dp.Groups) != len(p.Groups) {
				t.Fatalf("%s: packet %d holds %d groups, %d entries", c.name, packets, len(p.Groups), nent)
			}
			if len(body) > c.budget && nent > 1 {
				t.Fatalf("%s: packet %d is %d bytes with %d entries, budget %d", c.name, packets, len(body), nent, c.budget)
			}
		}
		var want []string
		for _, g := range in {
			for _, e := range g.Entries {
				want = append(want, e.Name)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %d entries out of %d in, or out of order", c.name, len(got), len(want))
		}
		if packets < c.wantMin {
			t.Fatalf("%s: %d packets, want at least %d", c.name, packets, c.wantMin)
		}
	}
}

// A node whose rounds run late takes the steps of the rounds it missed,
// at most d of them.
func TestFirstRound(t *testing.T) {
	for _, c := range []struct {
		last, ri int64
		d        int
		want     int64
	}{
		{0, 100, 7, 100},
		{99, 100, 7, 100},
		{98, 100, 8, 99},
		{90, 100, 7, 94},
		{100, 100, 7, 100},
	} {
		if got := firstRound(c.last, c.ri, c.d); got != c.want {
			t.Errorf("firstRound(%d, %d, %d) = %d, want %d", c.last, c.ri, c.d, got, c.want)
		}
	}
}

// Whatever bit each node takes in each round (here a random one, each
// node its own), a broadcast still reaches every member exactly once: a
// holder and the member it passes to split the sums of the bits left
// between them.
func TestRelayAnyBitOrderReachesEveryMemberOnce(t *testing.T) {
	st := EncodeState(nil, metrics.Load{CPUPercent: 42})
	t0 := time.Unix(1_800_000_000, 0)
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{2, 5, 13, 100, 300} {
		rm := newRelayMesh(n)
		rm.bit = func(int, int) int { return rng.IntN(rm.d) }
		rm.tables[0].SetSelf(st, 1000, t0)
		rm.tables[0].Inject(rm.d, true)
		total, rounds := 0, 0
		for busy := true; busy; rounds++ {
			if rounds > 50*rm.d {
				t.Fatalf("n=%d: broadcasts still pending after %d rounds", n, rounds)
			}
			_, e := rm.round(t, rounds, t0)
			total += e
			busy = false
			for _, tb := range rm.tables {
				busy = busy || tb.Pending() > 0
			}
		}
		for i := 1; i < n; i++ {
			if rm.took[i] != 1 {
				t.Fatalf("n=%d: r%d took r0's entry %d times", n, i, rm.took[i])
			}
		}
		if total != n-1 {
			t.Fatalf("n=%d: %d entries sent for %d receivers", n, total, n-1)
		}
	}
}

// A packet that arrives after its receiver's next round (its sender or
// receiver ran late) costs no packet of its own: the receiver passes the
// entries on when their bits come round, one packet a round at most, and
// every member still receives each broadcast once, within 2·d rounds.
func TestRelayLatePacketsWaitForTheirBits(t *testing.T) {
	for _, n := range []int{100, 300} {
		relayLateWave(t, n)
	}
}

func relayLateWave(t *testing.T, n int) {
	t0 := time.Unix(1_800_000_000, 0)
	rm := newRelayMesh(n)
	// Every member confirms in round 0 (an all-to-all wave), and a fifth
	// of the packets of the first three rounds arrive a round late.
	for i, tb := range rm.tables {
		tb.SetSelf(EncodeState(nil, metrics.Load{CPUPercent: float64(i)}), 1000, t0)
		tb.Inject(rm.d, true)
	}
	rm.late = func(r, from, to int) bool { return r < 3 && (from*7+r)%5 == 0 }
	rounds := 0
	for busy := true; busy; rounds++ {
		if rounds > 2*rm.d {
			t.Fatalf("broadcasts still pending after %d rounds", rounds)
		}
		before := slices.Clone(rm.sent)
		rm.round(t, rounds, t0)
		for i := range rm.sent {
			if rm.sent[i]-before[i] > 1 {
				t.Fatalf("r%d sent %d packets in round %d", i, rm.sent[i]-before[i], rounds)
			}
		}
		busy = len(rm.held) > 0
		for _, tb := range rm.tables {
			busy = busy || tb.Pending() > 0
		}
	}
	for i, tb := range rm.tables {
		for j := range n {
			if _, _, ok := tb.Get(rm.names[j]); !ok {
				t.Fatalf("r%d never received r%d's load (%d rounds)", i, j, rounds)
			}
		}
		if i > 0 && rm.took[i] != 1 {
			t.Fatalf("r%d took r0's entry %d times", i, rm.took[i])
		}
	}
	t.Logf("n=%d, d=%d: the wave took %d rounds with late packets", n, rm.d, rounds)
}

// A lost packet loses the broadcast for the members behind it; the next
// refresh reaches them, and they ask for the state they missed in full.
func TestRelayLossIsRepairedByWants(t *testing.T) {
	hot := EncodeState(nil, metrics.Load{CPUPercent: 90})
	t0 := time.Unix(1_800_000_000, 0)
	rm := newRelayMesh(16)
	rm.tables[0].SetSelf(hot, 1000, t0)
	rm.tables[0].Inject(rm.d, true)
	rm.drop = func(r, from, to int) bool { return r == 0 && from == 0 } // r0's first step
	for r := 0; r < rm.d; r++ {
		rm.round(t, r, t0)
	}
	missed := []int{}
	for i := 1; i < 16; i++ {
		if _, _, ok := rm.tables[i].Get("r0"); !ok {
			missed = append(missed, i)
		}
	}
	if len(missed) != 8 { // the odd distances: the first step was bit 0
		t.Fatalf("members without r0's state after losing its first step: %v", missed)
	}
	// The next broadcast is a refresh: those that missed the state cannot
	// take it, and want it in full.
	t1 := t0.Add(time.Second)
	rm.drop = nil
	rm.tables[0].SetSelf(hot, 1100, t1)
	rm.tables[0].Inject(rm.d, false)
	for r := 0; r < rm.d; r++ {
		rm.round(t, r, t1)
	}
	all := []string{"r0"} // the only member with a load
	i := missed[0]
	ws := rm.tables[i].Wants(t1, all, 3*time.Second, time.Second, 64)
	if len(ws) != 1 || ws[0].Name != "r0" || !ws[0].Full || !ws[0].None {
		t.Fatalf("r%d wants %+v", i, ws)
	}
	// Asked once: not again within the retry time.
	if ws := rm.tables[i].Wants(t1.Add(500*time.Millisecond), all, 3*time.Second, time.Second, 64); len(ws) != 0 {
		t.Fatalf("asked again at once: %+v", ws)
	}
	// A member that holds it answers in full; the requester takes it.
	ans, fresh := rm.tables[2].Answer(rm.names[i], 7, ws, t1, 100*time.Millisecond, 1400)
	if !fresh || len(ans) != 1 || !ans[0].Full || ans[0].Version != 1100 {
		t.Fatalf("answer: %+v fresh=%v", ans, fresh)
	}
	if r := rm.tables[i].Merge(ans[0], t1); r != Taken {
		t.Fatalf("requester merged the answer: %v", r)
	}
	// The same wants again under the same base (a replay): no answer.
	if ans, fresh := rm.tables[2].Answer(rm.names[i], 7, ws, t1, 100*time.Millisecond, 1400); fresh || len(ans) != 0 {
		t.Fatalf("replayed wants answered: %+v", ans)
	}
}

// A member whose refresh names a state this node does not hold is wanted
// in full first; members held too old are wanted oldest first; members
// held fresh are not wanted; answers go only where this node is fresher.
func TestWantsOrderAndAnswers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cool := EncodeState(nil, metrics.Load{CPUPercent: 10})
	hot := EncodeState(nil, metrics.Load{CPUPercent: 90})
	tb := NewTable("me")
	tb.Merge(Entry{Name: "old", Version: 10, Age: 9 * time.Second, Full: true, State: cool}, now)
	tb.Merge(Entry{Name: "older", Version: 10, Age: 12 * time.Second, Full: true, State: cool}, now)
	tb.Merge(Entry{Name: "fresh", Version: 10, Age: time.Second, Full: true, State: cool}, now)
	tb.Merge(Entry{Name: "changed", Version: 10, Age: time.Second, Full: true, State: cool}, now)
	if r := tb.Merge(Entry{Name: "changed", Version: 11, Tag: StateTag(hot)}, now); r != Ignored {
		t.Fatalf("refresh of a state not held: %v", r)
	}
	ws := tb.Wants(now, []string{"me", "fresh", "old", "older", "changed", "new"}, 3*time.Second, time.Second, 64)
	var got []string
	for _, w := range ws {
		got = append(got, fmt.Sprintf("%s full=%v", w.Name, w.Full))
	}
	want := []string{"changed full=true", "new full=true", "older full=false", "old full=false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("wants %v, want %v", got, want)
	}
	// On the wire the age is kept to 100 ms, at most 12.7 s.
	body := AppendRelay(nil, "me", RelayPacket{Base: 5, Wants: ws})
	p, err := DecodeRelay(body)
	if err != nil || len(p.Wants) != 4 || p.Wants[2].Age != 12*time.Second || !p.Wants[1].None || p.Wants[3].Age != 9*time.Second {
		t.Fatalf("wants on the wire: %+v %v", p.Wants, err)
	}
	// Another node holds "old" 2 s old and "older" 12.9 s old: it answers
	// for "old" only, and for itself always.
	other := NewTable("o")
	other.Merge(Entry{Name: "old", Version: 12, Age: 2 * time.Second, Full: true, State: cool}, now)
	other.Merge(Entry{Name: "older", Version: 12, Age: 12900 * time.Millisecond, Full: true, State: cool}, now)
	other.SetSelf(hot, 99, now)
	for i := range p.Wants {
		p.Wants[i].Name = ws[i].Name
	}
	ans, _ := other.Answer("me", p.Base, append(p.Wants, Want{Name: "o", Age: 0}), now, 100*time.Millisecond, 1400)
	if len(ans) != 2 || ans[0].Name != "old" || ans[0].Full || ans[1].Name != "o" {
		t.Fatalf("answers %+v", ans)
	}
}

// A relayed entry at or below the version already queued is not passed
// on again: a replayed relay packet costs its receiver no sends.
func TestRelayDoesNotPassOnReplays(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	st := EncodeState(nil, metrics.Load{CPUPercent: 5})
	tb := NewTable("me")
	e := Entry{Name: "a", Version: 100, Full: true, State: st}
	if r := tb.MergeRelay(e, 0b11110, 5, now); r != Taken || tb.Pending() != 1 {
		t.Fatalf("first copy: %v, %d pending", r, tb.Pending())
	}
	if r := tb.MergeRelay(e, 0b11110, 5, now); r != Same || tb.Pending() != 1 {
		t.Fatalf("replay: %v, %d pending", r, tb.Pending())
	}
	old := e
	old.Version = 90
	if r := tb.MergeRelay(old, 0b11000, 5, now); r != Older || tb.Pending() != 1 {
		t.Fatalf("older: %v, %d pending", r, tb.Pending())
	}
	// At the last step nothing is queued, nor for bits past the order's.
	last := e
	last.Version = 101
	if tb.MergeRelay(last, 0, 5, now); tb.Pending() != 1 {
		t.Fatalf("last step queued: %d pending", tb.Pending())
	}
	last.Version = 102
	if tb.MergeRelay(last, 0b1100000, 5, now); tb.Pending() != 1 {
		t.Fatalf("steps past the order's bits queued: %d pending", tb.Pending())
	}
}

func TestRelayWireBounds(t *testing.T) {
	st := EncodeState(nil, metrics.Load{CPUPercent: 5})
	p := RelayPacket{Base: VersionAt(time.Now()), Groups: []RelayGroup{{Mask: 0b1011, Entries: []Entry{{Name: "a", Version: 5, Full: true, State: st}, {Name: "b", Tag: 9, Version: VersionAt(time.Now())}}}},
		Wants: []Want{{Name: "c", Full: true}, {Name: "d", Age: 30 * time.Second}}}
	body := AppendRelay(nil, "me", p)
	got, err := DecodeRelay(body)
	if err != nil || got.From != NameID("me") || len(got.Groups) != 1 || got.Groups[0].Mask != 0b1011 ||
		len(got.Groups[0].Entries) != 2 || got.Wants[0].ID != NameID("c") || !got.Wants[0].Full || got.Wants[1].Age != 12700*time.Millisecond {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := range body {
		if _, err := DecodeRelay(body[:i]); !errors.Is(err, ErrBadPacket) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	for name, b := range map[string][]byte{
		"bit 31":         {KindRelay, 1, 0, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x08, 0, 0},
		"mask too long":  {KindRelay, 1, 0, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0},
		"65 groups":      {KindRelay, 1, 0, 0, 0, 0, 65},
		"257 wants":      {KindRelay, 1, 0, 0, 0, 0, 0, 0x81, 0x02},
		"trailing bytes": append(append([]byte(nil), body...), 1),
	} {
		if _, err := DecodeRelay(b); !errors.Is(err, ErrBadPacket) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeRelay(f *testing.F) {
	st := EncodeState(nil, metrics.Load{CPUPercent: 12})
	f.Add(AppendRelay(nil, "x", RelayPacket{Base: 77, Groups: []RelayGroup{{Mask: 0b110, Entries: []Entry{{Name: "a", Full: true, State: st}, {Name: "b", Age: time.Second, Tag: 7}}}}, Wants: []Want{{Name: "a", None: true}}}))
	f.Add([]byte{KindRelay, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeRelay(b)
		if err != nil {
			return
		}
		total := 0
		for _, g := range p.Groups {
			total += len(g.Entries)
			if g.Mask >= 1<<MaxRelayBits {
				t.Fatalf("group's mask out of bounds: %#x", g.Mask)
			}
			for _, e := range g.Entries {
				if len(e.State) > MaxStateLen || e.Age > MaxEntryAge || e.Version > MaxVersion {
					t.Fatalf("entry out of bounds: %+v", e)
				}
			}
		}
		if total > MaxEntries || len(p.Groups) > MaxRelayGroups || len(p.Wants) > MaxWants {
			t.Fatalf("%d entries, %d groups, %d wants", total, len(p.Groups), len(p.Wants))
		}
		// Whatever decodes merges without panicking, and never takes a
		// version at or below the one held.
		tb := NewTable("self")
		now := time.Unix(1_800_000_000, 0)
		for _, g := range p.Groups {
			for _, e := range g.Entries {
				e.Name = fmt.Sprint(e.ID % 4)
				before := tb.VersionOf(e.Name)
				_, _, had := tb.Get(e.Name)
				if tb.MergeRelay(e, g.Mask, 10, now) == Taken && had && e.Version <= before {
					t.Fatalf("took version %d over %d", e.Version, before)
				}
			}
		}
		tb.Relay(now, 7, 2, func(string) (int, bool) { return 1, true })
		for i := range p.Wants {
			p.Wants[i].Name = fmt.Sprint(p.Wants[i].ID % 4)
		}
		tb.Answer("x", p.Base, p.Wants, now, 0, 1400)
	})
}

// NextWant agrees with Wants: nothing is listed before the time it names,
// and something is at that time.
func TestNextWantAgreesWithWants(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cool := EncodeState(nil, metrics.Load{CPUPercent: 10})
	const wantAge, retry = 3 * time.Second, time.Second
	tb := NewTable("me")
	tb.Merge(Entry{Name: "a", Version: 10, Age: time.Second, Full: true, State: cool}, now)
	tb.Merge(Entry{Name: "b", Version: 10, Age: 2500 * time.Millisecond, Full: true, State: cool}, now)
	members := []string{"me", "a", "b"}
	if _, ok := tb.NextWant(now, []string{"me"}, wantAge, retry); ok {
		t.Error("NextWant with no one but this node: ok")
	}
	// b falls due when it is older than wantAge: 0.5 s on, and a bit.
	due, ok := tb.NextWant(now, members, wantAge, retry)
	if !ok || due.Sub(now) <= 500*time.Millisecond || due.Sub(now) > 501*time.Millisecond {
		t.Fatalf("NextWant = %v, %v: want 0.5 s on", due.Sub(now), ok)
	}
	if ws := tb.Wants(due.Add(-time.Millisecond), members, wantAge, retry, 64); len(ws) != 0 {
		t.Fatalf("Wants just before NextWant's time: %+v", ws)
	}
	if ws := tb.Wants(due, members, wantAge, retry, 64); len(ws) != 1 || ws[0].Name != "b" {
		t.Fatalf("Wants at NextWant's time: %+v, want b", ws)
	}
	// b was just asked for: the next is a, unless b's retry comes first.
	// a falls due 2 s on; b's retry 1 s after it was asked.
	next, _ := tb.NextWant(due, members, wantAge, retry)
	if got := next.Sub(due); got != retry {
		t.Errorf("after asking for b, NextWant is %v on, want its retry %v", got, retry)
	}
	// A member never heard of is due at once.
	if d, ok := tb.NextWant(now, append(members, "new"), wantAge, retry); !ok || !d.Equal(now) {
		t.Errorf("NextWant with a member not held: %v, %v, want now", d.Sub(now), ok)
	}
}
