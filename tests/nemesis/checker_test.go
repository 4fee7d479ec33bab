package nemesis

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func act(holder string, term uint64, from, to, ms int) Action {
	return Action{Holder: holder, Node: holder, Term: term, From: from, To: to, AtNS: at(ms).UnixNano(), Via: "exec"}
}

// sample is one /v1/leader answer taking 5 ms.
func sample(node string, ms int, acting bool, term uint64) Sample {
	return Sample{Node: node, Sent: at(ms), At: at(ms + 5), Acting: acting, Term: term, Coordinator: node}
}

// clean is a run with no violation: n1 acts under term 1, is killed,
// n2 acts under term 2 after n1's lease ran out; one heal followed by n2
// acting; n3 leaves without acting.
func clean() Input {
	return Input{
		Actions: []Action{act("n1", 1, 5, 6, 100), act("n1", 1, 6, 7, 1200), act("n2", 2, 7, 8, 4000), act("n2", 2, 8, 7, 6000)},
		Acting: []ActingRecord{
			{Node: "n1", Term: 1, At: at(0), Until: at(1500)},
			{Node: "n1", Term: 1, At: at(1000), Until: at(2500)}, // renewal
			{Node: "n2", Term: 2, At: at(3000), Until: at(4500)},
			{Node: "n2", Term: 2, At: at(4000), Until: at(5500)},
			{Node: "n2", Term: 2, At: at(5000), Until: at(6500)},
			{Node: "n2", Term: 2, At: at(6200), End: true},
		},
		Samples: []Sample{
			sample("n1", 0, true, 1), sample("n1", 900, true, 1), sample("n2", 900, false, 1),
			sample("n2", 3100, true, 2), sample("n2", 4100, true, 2), sample("n1", 4100, false, 2),
		},
		Leaves:   []Window{{Node: "n3", From: at(4000), To: at(5000)}},
		Heals:    []Heal{{At: at(2900), What: "restart of n1", Quiet: true}},
		Cuts:     []Cut{{Side: []string{"n1"}, At: at(100), Healed: at(900), What: "n1 alone"}},
		Initial:  5,
		Liveness: 2 * time.Second,
		Minority: 2 * time.Second,
	}
}

func props(r Report) string {
	var s []string
	for _, v := range r.Violations {
		s = append(s, v.Prop)
	}
	return strings.Join(s, ",")
}

func TestCheckCleanRun(t *testing.T) {
	r := Check(clean())
	if len(r.Violations) != 0 {
		t.Fatalf("violations in a clean run: %v", r.Violations)
	}
	want := []Interval{
		{Node: "n1", Term: 1, From: at(0), To: at(2500), Source: "acting log"},
		{Node: "n2", Term: 2, From: at(3000), To: at(6200), Source: "acting log"},
	}
	if !reflect.DeepEqual(r.Intervals, want) {
		t.Fatalf("intervals %v, want %v", r.Intervals, want)
	}
	if r.Terms != 2 || len(r.HealDelays) != 1 || r.HealDelays[0] != 205*time.Millisecond {
		t.Fatalf("terms %d, heal delays %v", r.Terms, r.HealDelays)
	}
	if r.MaxNoCoordinator != 2200*time.Millisecond {
		t.Fatalf("max without coordinator %v", r.MaxNoCoordinator)
	}
}

func TestCheckEachPropertyCanFail(t *testing.T) {
	for _, c := range []struct {
		name  string
		mod   func(*Input)
		want  string
		words string
	}{
		{"a: n2 starts acting inside n1's lease", func(in *Input) {
			in.Acting[2].At = at(2000)
		}, "a", "overlaps"},
		{"a: renewal after expiry is a new interval, n1 killed without end record overlaps n2", func(in *Input) {
			in.Acting = append(in.Acting, ActingRecord{Node: "n1", Term: 3, At: at(5800), Until: at(7000)})
		}, "a", "n1 term 3"},
		{"a: a stale renewal after a resume, past the lease, is acting again", func(in *Input) {
			// n1 stopped at 1000 (lease to 2500), resumed at 4100: it
			// renewed under its old term before it noticed n2.
			in.Acting = append(in.Acting, ActingRecord{Node: "n1", Term: 1, At: at(4100), Until: at(5600)},
				ActingRecord{Node: "n1", Term: 1, At: at(4490), End: true})
		}, "a", "n1 term 1 15:00:04.100..15:00:04.490"},
		{"a from samples when there are no acting logs", func(in *Input) {
			in.Acting = nil
			in.Samples = append(in.Samples, sample("n1", 3500, true, 1), sample("n1", 3600, true, 1))
		}, "a", "/v1/leader samples"},
		{"b: from is not the previous to (a repeated run of actions)", func(in *Input) {
			in.Actions = append(in.Actions, act("n3", 3, 6, 7, 7000))
		}, "b", "starts from 6, the resource was at 7"},
		{"b: the first action does not start from the resource's count", func(in *Input) {
			in.Initial = 4
		}, "b", "starts from 5, the resource was at 4"},
		{"b: the same step twice", func(in *Input) {
			in.Actions[3] = act("n2", 2, 8, 9, 6000)
			in.Actions = append(in.Actions, act("n2", 2, 8, 9, 6100))
		}, "b", "repeats"},
		{"b: term decreases", func(in *Input) {
			in.Actions = append(in.Actions, act("n1", 1, 7, 8, 7000))
		}, "b", "term 1 after term 2"},
		{"b: an action that changes nothing", func(in *Input) {
			in.Actions = append(in.Actions, act("n2", 2, 7, 7, 7000))
		}, "b", "changes nothing"},
		{"c: no coordinator within the bound after a heal", func(in *Input) {
			in.Heals = append(in.Heals, Heal{At: at(7000), What: "SIGCONT of n1", Quiet: true})
		}, "c", "SIGCONT of n1"},
		{"c: the first acting sample comes too late", func(in *Input) {
			in.Liveness = 100 * time.Millisecond
		}, "c", "acted first 205ms later"},
		{"d: an action while leaving", func(in *Input) {
			in.Leaves = append(in.Leaves, Window{Node: "n2", From: at(5900), To: at(6500)})
		}, "d", "while n2 was leaving"},
		{"d: a refused webhook call while leaving counts too", func(in *Input) {
			in.Refused = append(in.Refused, act("n3", 1, 7, 8, 4500))
		}, "d", "n3 was leaving"},
		{"e: a minority keeps acting past the bound", func(in *Input) {
			in.Cuts[0].Healed = at(5000)
			in.Samples = append(in.Samples, sample("n1", 2500, true, 1))
		}, "e", "still acting"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := clean()
			c.mod(&in)
			r := Check(in)
			if len(r.Violations) == 0 {
				t.Fatal("no violation")
			}
			for _, v := range r.Violations {
				if v.Prop != c.want {
					t.Errorf("also (%s): %v", v.Prop, v)
				}
			}
			said := false
			for _, v := range r.Violations {
				said = said || strings.Contains(v.Msg, c.words)
			}
			if !said {
				t.Errorf("no violation says %q: %v", c.words, r.Violations)
			}
		})
	}
}

func TestCheckEndAfterExpiryDoesNotExtend(t *testing.T) {
	in := clean()
	// n1's end record comes at 4100, after a pause: it acted only until
	// its lease ran out at 2500, before n2 started at 3000.
	in.Acting = append(in.Acting, ActingRecord{Node: "n1", Term: 1, At: at(4100), End: true})
	r := Check(in)
	if len(r.Violations) != 0 || !r.Intervals[0].To.Equal(at(2500)) {
		t.Fatalf("%v %v", r.Intervals, r.Violations)
	}
}

func TestCheckQuietOnlyHealsNeedACoordinator(t *testing.T) {
	in := clean()
	in.Heals = append(in.Heals, Heal{At: at(9000), What: "SIGCONT of n4, another fault followed", Quiet: false})
	if r := Check(in); len(r.Violations) != 0 {
		t.Fatal(r.Violations)
	}
}

func TestDecodeLines(t *testing.T) {
	got, err := decodeLines[ActingRecord](strings.NewReader(
		`{"node":"n1","term":3,"at":"2026-12-04T15:00:00Z","until":"2026-12-04T15:00:01.5Z"}`+"\n\n"+
			`{"node":"n1","term":3,"at":"2026-12-04T15:00:01Z","end":true}`+"\n"), "acting.jsonl")
	if err != nil || len(got) != 2 || !got[1].End || got[0].Until.Sub(got[0].At) != 1500*time.Millisecond {
		t.Fatalf("%+v %v", got, err)
	}
	_, err = decodeLines[Action](strings.NewReader(`{"holder":"n1","term":"x"}`+"\n"), "shared.log")
	if err == nil || !strings.Contains(err.Error(), "shared.log line 1") {
		t.Fatalf("bad line: %v", err)
	}
}

func TestScheduleIsTheSeeds(t *testing.T) {
	a := Generate(42, 5, 10*time.Minute, 5*time.Second)
	b := Generate(42, 5, 10*time.Minute, 5*time.Second)
	c := Generate(43, 5, 10*time.Minute, 5*time.Second)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("one seed, two schedules")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 42 and 43 give one schedule")
	}
	var sum time.Duration
	kinds := map[Kind]int{}
	for _, f := range a {
		sum += f.Hold + f.Gap
		kinds[f.Kind]++
		if f.Gap < 6*time.Second || f.Gap > 8*time.Second {
			t.Errorf("%v: gap out of range", f)
		}
		switch f.Kind {
		case KillRestart:
			if f.Hold < time.Second || f.Hold > 3*time.Second {
				t.Errorf("%v: a quick restart within 1-3 s", f)
			}
		case StopMajority:
			if len(f.Nodes) != 3 {
				t.Errorf("%v: a majority of 5 is 3", f)
			}
		case Partition, OneWay:
			if len(f.Nodes) < 1 || len(f.Nodes) > 2 {
				t.Errorf("%v: one side is a minority", f)
			}
		}
	}
	if sum < 10*time.Minute || len(kinds) != len(Kinds) {
		t.Fatalf("%v of faults, kinds %v", sum, kinds)
	}
	if s := FormatSchedule(42, a[:2]); !strings.HasPrefix(s, "seed 42, 2 faults:\n  #1 ") {
		t.Fatalf("%q", s)
	}
}
