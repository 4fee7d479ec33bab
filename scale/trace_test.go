package scale

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTraceFile(t *testing.T, path, name string) Trace {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := ReadTrace(name, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Demand) != 3600 {
		t.Fatalf("%s: %d seconds", name, len(tr.Demand))
	}
	return tr
}

// shapeTraces returns the generated traces of shape (three seeds each,
// tools/cmd/shoal-scalebench/shapes.go).
func shapeTraces(t *testing.T, shape string) []Trace {
	var out []Trace
	for seed := 1; seed <= 3; seed++ {
		n := fmt.Sprintf("%s-%d", shape, seed)
		out = append(out, readTraceFile(t, filepath.Join("testdata", "traces", "shapes", n+".csv"), n))
	}
	return out
}

func defaultScaler(t *testing.T, mod func(*Config)) Scaler {
	cfg := DefaultConfig()
	cfg.Max = 20
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &PolicyScaler{Label: "shoal", P: p, Every: time.Second}
}

func simOpts(boot time.Duration) SimOptions {
	return SimOptions{Start: 3, Target: 70, Tolerance: 0.1, Min: 1, Boot: boot, ReadyKnown: true}
}

// TestTraceShapes runs the default policy and the HPA reference over the
// generated traces, at boot 0 and 30 s, and checks behaviour (the figures
// are tools/cmd/shoal-scalebench's): no more actions than the HPA on the
// oscillation, the plateau and the dropouts; no reversal at all there; no
// count outside the bounds; every episode on the ramps and flash crowds
// answered no later than the HPA answers it at the 99th percentile.
func TestTraceShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 36 trace-hours")
	}
	seeds := 3
	if raceEnabled {
		seeds = 1 // the race detector makes the 36 trace-hours take minutes
	}
	for _, boot := range []time.Duration{0, 30 * time.Second} {
		for _, shape := range []string{"osc40", "plateau", "dropout", "flash", "ramp-slow", "diurnal"} {
			var sa, ha, srev int
			var sr, hr []float64
			for _, tr := range shapeTraces(t, shape)[:seeds] {
				s := Simulate(tr, defaultScaler(t, nil), simOpts(boot))
				h := Simulate(tr, NewHPA(70, 1, 20), simOpts(boot))
				sa, ha, srev = sa+s.Actions, ha+h.Actions, srev+s.Reversals
				sr, hr = append(sr, s.Reactions...), append(hr, h.Reactions...)
				for i, n := range s.Counts {
					if n < 1 || n > 20 {
						t.Fatalf("%s boot %v: count %d at %d s", tr.Name, boot, n, i)
					}
				}
			}
			switch shape {
			case "osc40", "plateau", "dropout":
				if sa > ha+1 || srev > 0 {
					t.Errorf("%s boot %v: %d actions (%d reversals); the HPA %d", shape, boot, sa, srev, ha)
				}
			default:
				if p, hp := Percentile(sr, 99), Percentile(hr, 99); p > hp {
					t.Errorf("%s boot %v: reaction p99 %v s, the HPA's %v s", shape, boot, p, hp)
				}
			}
		}
	}
}

// TestOlderTraces: the four older traces still get every count within the
// bounds and no more actions on the oscillation than the HPA.
func TestOlderTraces(t *testing.T) {
	for _, n := range []string{"step", "ramp", "spike", "oscillation"} {
		tr := readTraceFile(t, filepath.Join("testdata", "traces", n+".csv"), n)
		s := Simulate(tr, defaultScaler(t, nil), simOpts(0))
		for i, c := range s.Counts {
			if c < 1 || c > 20 {
				t.Fatalf("%s: count %d at %d s", n, c, i)
			}
		}
		if n == "oscillation" {
			naive := Simulate(tr, &Naive{Up: 70, Down: 50, Every: time.Second, Min: 1, Max: 20}, simOpts(0))
			hpa := Simulate(tr, NewHPA(70, 1, 20), simOpts(0))
			if s.Actions >= naive.Actions || s.Actions > hpa.Actions {
				t.Errorf("oscillation: %d actions; naive %d, HPA %d", s.Actions, naive.Actions, hpa.Actions)
			}
		}
	}
}

// obs builds an observation: cur instances, the first ready of them
// serving since long ago, the others started at start (booting until
// readyAt, if ever).
func obs(cur, serving int, util float64, extra ...Instance) Observation {
	o := Observation{Current: cur, Ready: serving, Util: util, Valid: true}
	for range serving {
		o.Instances = append(o.Instances, Instance{Start: -time.Hour, ReadyAt: -time.Hour, Serving: true})
	}
	o.Instances = append(o.Instances, extra...)
	for len(o.Instances) < cur {
		o.Instances = append(o.Instances, Instance{Start: 0, ReadyAt: time.Hour})
	}
	return o
}

// TestHPAReference checks the reference HPA on hand-made cases, against
// pkg/controller/podautoscaler's rules.
func TestHPAReference(t *testing.T) {
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	h := NewHPA(70, 1, 100)
	if got := h.Step(sec(0), obs(10, 10, 75)); got != 10 {
		t.Fatalf("inside tolerance: %d", got)
	}
	if got := h.Step(sec(15), obs(10, 10, 140)); got != 20 { // ceil(10×2)
		t.Fatalf("up: %d", got)
	}
	if got := h.Step(sec(30), obs(20, 20, 35)); got != 20 { // 10 recommended, but 20 within 300 s
		t.Fatalf("down stabilization: %d", got)
	}
	if got := h.Step(sec(330), obs(20, 20, 35)); got != 10 {
		t.Fatalf("after stabilization: %d", got)
	}
	if got := NewHPA(70, 1, 100).Step(sec(0), obs(2, 2, 700)); got != 6 { // max(2+4, 2×2) = 6, not 20
		t.Fatalf("up rate limit: %d", got)
	}
	// Started as a running controller: no scale-down at t=0 without
	// history, nor before DownWindow has passed.
	h = NewHPA(70, 1, 100)
	for s := 0; s < 300; s += 15 {
		if got := h.Step(sec(s), obs(10, 10, 20)); got != 10 {
			t.Fatalf("scaled down to %d at %d s, before 300 s of recommendations", got, s)
		}
	}
	if got := h.Step(sec(300), obs(10, 10, 20)); got != 3 { // ceil(10 × 20/70)
		t.Fatalf("after 300 s: %d, want 3", got)
	}
	// No metrics: no scaling.
	o := obs(3, 3, 200)
	o.Valid = false
	if got := NewHPA(70, 1, 100).Step(sec(0), o); got != 3 {
		t.Fatalf("scaled without metrics: %d", got)
	}
	// The HPA truncates the utilization to whole percent: 77.9% is 77,
	// inside the tolerance (77/70 = 1.1).
	if n, _ := NewHPA(70, 1, 100).Replicas(0, obs(10, 10, 77.9)); n != 10 {
		t.Fatalf("77.9%% on 10: %d, want 10", n)
	}
}

// TestHPAUnreadyPods: pods not ready count at 0% on a scale-up; a pod
// ready within the CPU initialization period is ignored until one metric
// window has passed since it became ready.
func TestHPAUnreadyPods(t *testing.T) {
	h := NewHPA(70, 1, 100)
	// 4 serving at 140%, 4 booting: ratio 2 over the serving, then
	// recomputed with the booting at 0%: 140×4/8 = 70% → within the
	// tolerance: keep 8 (the booting pods will absorb it).
	if n, _ := h.Replicas(10*time.Second, obs(8, 4, 140)); n != 8 {
		t.Fatalf("4 serving at 140%%, 4 booting: %d, want 8", n)
	}
	// 4 serving at 200%, 2 booting: 200×4/6 = 133% → ceil(1.9 × 6) = 12.
	if n, _ := h.Replicas(10*time.Second, obs(6, 4, 200)); n != 12 {
		t.Fatalf("4 serving at 200%%, 2 booting: %d, want 12", n)
	}
	// A pod started at 0 s, ready at 30 s: at 40 s its metric (window
	// 15 s) is not yet counted, at 50 s it is.
	fresh := Instance{Start: 0, ReadyAt: 30 * time.Second, Serving: true}
	o := obs(4, 3, 100, fresh)
	o.Ready = 4
	if c, u := h.counted(40*time.Second, o); c != 3 || u != 1 {
		t.Fatalf("at 40 s: %d counted, %d unready; want 3, 1", c, u)
	}
	if c, u := h.counted(50*time.Second, o); c != 4 || u != 0 {
		t.Fatalf("at 50 s: %d counted, %d unready; want 4, 0", c, u)
	}
	// With the metrics 30 s behind, the window counts from the metric's
	// time: still unready at 50 s.
	o.MetricAge = 30 * time.Second
	if c, _ := h.counted(50*time.Second, o); c != 3 {
		t.Fatalf("metrics 30 s old at 50 s: %d counted, want 3", c)
	}
}

// TestEpisodes checks the per-episode metric on a hand-made trace: noise
// re-crossing the band does not restart an episode, an episode ends only
// at or below the target, a call made since then answers it at once, and
// an unanswered one is counted apart.
func TestEpisodes(t *testing.T) {
	// One instance; demand in % of it. 0-9: 60%; 10-29: 80/76 alternating
	// (above the band, 77, and back into it, never at or below 70); 30-39:
	// 65%; 40-49: 90%; 50-: 60%.
	var d []float64
	for i := range 80 {
		v := 60.0
		switch {
		case i >= 10 && i < 30:
			v = 80
			if i%2 == 1 {
				v = 76
			}
		case i >= 30 && i < 40:
			v = 65
		case i >= 40 && i < 50:
			v = 90
		}
		d = append(d, v)
	}
	tr := Trace{Name: "hand", Demand: d}
	o := SimOptions{Start: 1, Target: 70, Tolerance: 0.1, Min: 1}
	// A scaler that calls at second 15 only, and then never.
	s := &scripted{at: map[int]int{15: 2}}
	r := Simulate(tr, s, o)
	if r.Episodes != 1 || r.Answered != 1 || len(r.Reactions) != 1 || r.Reactions[0] != 5 {
		t.Fatalf("episodes %d answered %d reactions %v: want one episode (10-29, not restarted at every re-crossing), answered after 5 s; log %+v",
			r.Episodes, r.Answered, r.Reactions, r.Log)
	}
	// The call at 15 made 2 instances: 90% of one instance is 45% of two,
	// so the second rise (40-49) is no episode. With one instance kept, it
	// is, and it is unanswered.
	r = Simulate(tr, &scripted{}, o)
	if r.Episodes != 2 || r.Answered != 0 || r.UnansweredOver != 20 {
		t.Fatalf("no calls: %d episodes, %d answered, %d s above the band unanswered; want 2, 0, 20 (10 + 10): %+v",
			r.Episodes, r.Answered, r.UnansweredOver, r.Log)
	}
	// A call made after the utilization was last at or below the target
	// and before it rose above the band anticipates the episode: reaction
	// 0. (60% until 9, 75% until 14, 90% after; the call at 12 adds an
	// instance that boots for 30 s.)
	var d2 []float64
	for i := range 60 {
		d2 = append(d2, map[bool]float64{true: 60, false: map[bool]float64{true: 75, false: 90}[i < 15]}[i < 10])
	}
	o2 := o
	o2.Boot = 30 * time.Second
	r = Simulate(Trace{Name: "anticipated", Demand: d2}, &scripted{at: map[int]int{12: 2}}, o2)
	if r.Episodes != 1 || len(r.Reactions) != 1 || r.Reactions[0] != 0 {
		t.Fatalf("anticipated: %d episodes, reactions %v, log %+v", r.Episodes, r.Reactions, r.Log)
	}
	// Up, down, up, down within 10 minutes: three reversals.
	r = Simulate(tr, &scripted{at: map[int]int{5: 2, 20: 1, 25: 2, 30: 1}}, o)
	if r.Actions != 4 || r.Reversals != 3 {
		t.Fatalf("%d actions, %d reversals; want 4 and 3", r.Actions, r.Reversals)
	}
}

// scripted asks for the counts it is given at the seconds it is given.
type scripted struct{ at map[int]int }

func (s *scripted) Name() string          { return "scripted" }
func (s *scripted) Period() time.Duration { return time.Second }
func (s *scripted) Step(now time.Time, o Observation) int {
	i := int(now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) / time.Second)
	if n, ok := s.at[i]; ok {
		return n
	}
	return o.Current
}

// TestSimBoot: a scale-up serves Boot later; until then the utilization
// stays with the serving instances, and a scale-down removes the booting
// ones first.
func TestSimBoot(t *testing.T) {
	tr := Trace{Name: "flat", Demand: constant(300, 60)}
	o := SimOptions{Start: 3, Target: 70, Tolerance: 0.1, Min: 1, Boot: 30 * time.Second}
	r := Simulate(tr, &scripted{at: map[int]int{0: 5}}, o)
	// 300 on 3 is 100% (above 77) for seconds 0-29, 60% from 30.
	if r.UnderSeconds != 30 || r.OverloadSeconds != 0 {
		t.Fatalf("under %d overload %d, want 30 and 0", r.UnderSeconds, r.OverloadSeconds)
	}
	var seen []Observation
	rec := &recorder{at: map[int]int{0: 5, 10: 4}, seen: &seen}
	Simulate(tr, rec, o)
	if o := seen[11]; o.Current != 4 || o.Ready != 3 {
		t.Fatalf("after 3→5→4 at 11 s: current %d ready %d, want 4 and 3 (a booting one removed first)", o.Current, o.Ready)
	}
	if o := seen[31]; o.Ready != 4 {
		t.Fatalf("at 31 s: ready %d, want 4", o.Ready)
	}
}

type recorder struct {
	at   map[int]int
	seen *[]Observation
}

func (s *recorder) Name() string          { return "recorder" }
func (s *recorder) Period() time.Duration { return time.Second }
func (s *recorder) Step(now time.Time, o Observation) int {
	*s.seen = append(*s.seen, o)
	i := len(*s.seen) - 1
	if n, ok := s.at[i]; ok {
		return n
	}
	return o.Current
}

// TestTraceCSV: the metrics column round-trips; bad input names the line.
func TestTraceCSV(t *testing.T) {
	tr := Trace{Name: "x", Demand: []float64{1, 2.5, 3}, NoMetrics: []bool{false, true, false}}
	var b bytes.Buffer
	if err := WriteTrace(&b, tr); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTrace("x", &b)
	if err != nil || len(got.Demand) != 3 || got.Demand[1] != 2.5 || !got.NoMetrics[1] || got.NoMetrics[0] {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"second,demand\n0,1\n2,1\n", "second,demand,metrics\n0,1,2\n", "second,demand\n0,-1\n", "a,b,c,d\n"} {
		if _, err := ReadTrace("bad", strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
