package mesh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// mergeCase is one entry offered to a table holding rp1's 10% state at
// version 100, published 1 s before now.
type mergeCase struct {
	name    string
	e       Entry
	want    MergeResult
	wantCPU float64
	wantAge time.Duration // age the table shows afterwards
}

func mergeCases() []mergeCase {
	hot := EncodeState(nil, metrics.Load{CPUPercent: 90})
	cool := EncodeState(nil, metrics.Load{CPUPercent: 10})
	return []mergeCase{
		{"newer full state", Entry{Name: "rp1", Version: 101, Full: true, State: hot}, Taken, 90, 0},
		{"newer refresh of the state held", Entry{Name: "rp1", Version: 101, Age: 200 * time.Millisecond, Tag: StateTag(cool)}, Taken, 10, 200 * time.Millisecond},
		{"newer refresh of another state", Entry{Name: "rp1", Version: 101, Tag: StateTag(hot)}, Ignored, 10, time.Second},
		{"replayed older full state, age 0", Entry{Name: "rp1", Version: 99, Full: true, State: hot}, Older, 10, time.Second},
		{"replayed older refresh, age 0", Entry{Name: "rp1", Version: 42, Tag: StateTag(cool)}, Older, 10, time.Second},
		{"replayed current version, age 0", Entry{Name: "rp1", Version: 100, Full: true, State: cool}, Same, 10, time.Second},
		{"replayed current refresh, age 0", Entry{Name: "rp1", Version: 100, Tag: StateTag(cool)}, Same, 10, time.Second},
		{"current version by a quicker path", Entry{Name: "rp1", Version: 100, Age: 1500 * time.Millisecond, Tag: StateTag(cool)}, Same, 10, 1500 * time.Millisecond},
		{"current version with other bytes", Entry{Name: "rp1", Version: 100, Age: 2 * time.Second, Full: true, State: hot}, Same, 10, time.Second},
		{"about this node", Entry{Name: "self", Version: 1 << 40, Full: true, State: hot}, Ignored, 10, time.Second},
	}
}

func TestMergeRefusesOlderAndSameVersions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cool := EncodeState(nil, metrics.Load{CPUPercent: 10})
	for _, c := range mergeCases() {
		t.Run(c.name, func(t *testing.T) {
			tb := NewTable("self")
			if r := tb.Merge(Entry{Name: "rp1", Version: 100, Age: time.Second, Full: true, State: cool}, now); r != Taken {
				t.Fatalf("first entry: %v", r)
			}
			if got := tb.Merge(c.e, now); got != c.want {
				t.Fatalf("Merge = %v, want %v", got, c.want)
			}
			st, origin, _ := tb.Get("rp1")
			l, err := DecodeState(st)
			if err != nil || l.CPUPercent != c.wantCPU {
				t.Fatalf("table holds %+v (%v), want CPU %v", l, err, c.wantCPU)
			}
			if age := now.Sub(origin); age != c.wantAge {
				t.Fatalf("age %v, want %v", age, c.wantAge)
			}
		})
	}
}

// A replayed packet arrives late: whatever it says, the age of the version
// it carries does not go down, and an older version never comes back.
func TestReplayLaterDoesNotRefreshAge(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	hot := EncodeState(nil, metrics.Load{CPUPercent: 90})
	cool := EncodeState(nil, metrics.Load{CPUPercent: 10})
	tb := NewTable("rp2")
	captured := []Entry{{Name: "rp1", Version: 10, Full: true, State: hot}, {Name: "rp1", Version: 11, Tag: StateTag(hot)}}
	for i, e := range captured {
		tb.Merge(e, t0.Add(time.Duration(i)*300*time.Millisecond))
	}
	tb.Merge(Entry{Name: "rp1", Version: 12, Full: true, State: cool}, t0.Add(time.Second))
	later := t0.Add(5 * time.Second)
	for _, e := range captured {
		if r := tb.Merge(e, later); r != Older {
			t.Fatalf("replay of version %d: %v", e.Version, r)
		}
	}
	// The newest one replayed: same version, age not refreshed.
	if r := tb.Merge(Entry{Name: "rp1", Version: 12, Full: true, State: cool}, later); r != Same {
		t.Fatalf("replay of the newest: %v", r)
	}
	st, origin, _ := tb.Get("rp1")
	if l, _ := DecodeState(st); l.CPUPercent != 10 || !origin.Equal(t0.Add(time.Second)) {
		t.Fatalf("table holds %v%% published %v after t0", l.CPUPercent, origin.Sub(t0))
	}
	// Answers carry the version held, so a copy passed on is refused the
	// same way by a third node.
	es, _ := tb.Answer("rp3", 1, []Want{{Name: "rp1", Full: true, None: true}}, later, 0, 1400)
	if len(es) != 1 || es[0].Version != 12 || es[0].Age != 4*time.Second {
		t.Fatalf("answer: %+v", es)
	}
}

func TestAcceptElectionWindow(t *testing.T) {
	tb := NewTable("self")
	steps := []struct {
		v    uint64
		want ElectionResult
	}{
		{1000, ElectionFresh},
		{1000, ElectionReplayed},
		{1002, ElectionFresh},
		{1001, ElectionFresh}, // reordered, inside the window
		{1001, ElectionReplayed},
		{1002, ElectionReplayed},
		{1200, ElectionFresh},
		{1100, ElectionStale}, // 100 below the newest: outside the 64 window
		{1137, ElectionFresh},
	}
	for i, s := range steps {
		if got := tb.AcceptElection("a", s.v); got != s.want {
			t.Fatalf("step %d: version %d: %v, want %v", i, s.v, got, s.want)
		}
	}
	// Bound to the sender's newest load confirmation: an election message
	// more than ElectionWindow older is stale even to a fresh window.
	tb.Merge(Entry{Name: "b", Version: 50_000, Full: true, State: EncodeState(nil, metrics.Load{})}, time.Now())
	if got := tb.AcceptElection("b", 50_000-ElectionWindow-1); got != ElectionStale {
		t.Fatalf("election older than the load window: %v", got)
	}
	if got := tb.AcceptElection("b", 50_000-ElectionWindow); got != ElectionFresh {
		t.Fatalf("election at the window's edge: %v", got)
	}
	tb.Remove("a")
	if got := tb.AcceptElection("a", 1000); got != ElectionFresh {
		t.Fatalf("after Remove: %v", got)
	}
}

func TestVersionClock(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	clk := func() time.Time { return now }
	c, err := NewVersionClock(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := c.Next()
	if err != nil || v1 != VersionAt(now) {
		t.Fatalf("first version %d (%v), want the clock %d", v1, err, VersionAt(now))
	}
	v2, _ := c.Next() // same instant: still strictly above
	if v2 != v1+1 {
		t.Fatalf("second version %d after %d", v2, v1)
	}
	// The wall clock goes back an hour and the node restarts: the floor
	// in the data directory keeps versions rising.
	now = now.Add(-2 * time.Hour)
	c2, err := NewVersionClock(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	v3, _ := c2.Next()
	if v3 <= v2 {
		t.Fatalf("after a restart with the clock set back: %d, not above %d", v3, v2)
	}
	// Without a data directory the clock is the floor.
	now = now.Add(3 * time.Hour)
	c3, _ := NewVersionClock("", clk)
	if v, _ := c3.Next(); v <= v2 || v != VersionAt(now) {
		t.Fatalf("without a data dir: %d", v)
	}
	// A damaged floor file is an error naming the file.
	os.WriteFile(filepath.Join(dir, VersionFile), []byte("twelve\n"), 0o600)
	if _, err := NewVersionClock(dir, clk); err == nil || !strings.Contains(err.Error(), VersionFile) || !strings.Contains(err.Error(), "twelve") {
		t.Fatalf("damaged floor: %v", err)
	}
	// On the wire a version costs 1 byte when the origin's clock is within
	// ±630 ms of the sender's (5 for the packet's base), and still decodes
	// when it is not.
	base := VersionAt(now)
	for _, c := range []struct {
		v    uint64
		age  time.Duration
		size int
	}{
		{base, 0, 8},
		{base - 200, 2 * time.Second, 8},         // forwarded, clocks in step
		{base + 63, 0, 8},                        // origin 630 ms ahead
		{base + 64, 0, 9},                        // 640 ms ahead
		{base - 360_000, 0, 10},                  // an hour behind
		{VersionAt(now.AddDate(5, 0, 0)), 0, 12}, // five years ahead
	} {
		e := Entry{Name: "x", Version: c.v, Age: c.age, Tag: 1}
		if n := entrySize(e, base); n != c.size {
			t.Errorf("refresh of version base%+d at age %v: %d bytes, want %d", int64(c.v)-int64(base), c.age, n, c.size)
		}
		got, _, err := DecodeEntries(AppendEntries(nil, base, []Entry{e}))
		if err != nil || got[0].Version != c.v {
			t.Errorf("version base%+d decoded as %+v (%v)", int64(c.v)-int64(base), got, err)
		}
	}
}
