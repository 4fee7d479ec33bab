package scale

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is the tests' fake clock: the policy takes time as an argument, so
// advancing is adding.
type clock struct{ now time.Time }

func (c *clock) advance(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

func newPolicy(t *testing.T, mod func(*Config)) *Policy {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run evaluates once a second for d at a constant value, recording actions
// as the agent does, and returns the decisions that acted.
func run(p *Policy, c *clock, d time.Duration, cur *int, value float64) []Decision {
	var acted []Decision
	for end := c.now.Add(d); c.now.Before(end); {
		now := c.advance(time.Second)
		dec := p.Evaluate(now, Input{Current: *cur, Value: value, Valid: true})
		if dec.Action != ActionNone {
			p.Record(Action{Time: now, From: *cur, To: dec.Desired})
			*cur = dec.Desired
			acted = append(acted, dec)
		}
	}
	return acted
}

func TestToleranceAndFormula(t *testing.T) {
	p := newPolicy(t, func(c *Config) { c.UpWindow = 0 })
	d := p.Evaluate(t0, Input{Current: 4, Value: 75, Valid: true}) // ratio 1.07: within 10%
	if d.Action != ActionNone || d.Recommendation != 4 || !strings.Contains(d.Reason(), "within 10%") {
		t.Fatalf("inside tolerance: %+v", d)
	}
	d = p.Evaluate(t0.Add(time.Second), Input{Current: 4, Value: 91, Valid: true}) // ceil(4×1.3)=6
	if d.Action != ActionUp || d.Desired != 6 || d.Recommendation != 6 {
		t.Fatalf("formula: %+v", d)
	}
	if !strings.Contains(d.Reason(), "ceil(4 × 1.300) = 6") {
		t.Fatalf("reason: %q", d.Reason())
	}
}

func TestDownStabilization(t *testing.T) {
	p := newPolicy(t, func(c *Config) { c.DownCooldown = 0 })
	c := &clock{t0}
	cur := 6
	// 300 s at a load that recommends 5 (6×56/70=4.8→5), with one 10 s dip
	// that recommends 3 (6×30/70 = 2.6 → 3), 100 s before the end.
	run(p, c, 190*time.Second, &cur, 56)
	if cur != 6 {
		t.Fatalf("scaled down before the window was covered: %d", cur)
	}
	run(p, c, 10*time.Second, &cur, 30)
	if cur != 6 {
		t.Fatalf("scaled down inside the first window: %d", cur)
	}
	acted := run(p, c, 120*time.Second, &cur, 56)
	if len(acted) != 1 || acted[0].Desired != 5 {
		t.Fatalf("want one step down to 5 (highest recommendation over 300 s), got %+v", acted)
	}
	if !strings.Contains(acted[0].Reason(), "ceil(6 × 0.800) = 5") {
		t.Fatalf("reason %q", acted[0].Reason())
	}
}

func TestCooldownsSurviveRecord(t *testing.T) {
	cfg := func(c *Config) {
		c.UpWindow = 0
		c.DownWindow = 0
		c.UpCooldown = 30 * time.Second
		c.DownCooldown = 120 * time.Second
	}
	// A new policy (a restart, a new coordinator) told of the last action.
	p := newPolicy(t, cfg)
	p.Record(Action{Time: t0, From: 3, To: 5})
	c := &clock{t0}
	cur := 5
	if acted := run(p, c, 29*time.Second, &cur, 100); len(acted) != 0 {
		t.Fatalf("repeated inside the up cooldown: %+v", acted)
	}
	d := p.Evaluate(c.now, Input{Current: 5, Value: 100, Valid: true})
	if !strings.Contains(d.Reason(), "scale-up cooldown") {
		t.Fatalf("reason %q", d.Reason())
	}
	if acted := run(p, c, 2*time.Second, &cur, 100); len(acted) != 1 {
		t.Fatalf("no action after the up cooldown: %+v", acted)
	}
	// Reversing waits for the down cooldown.
	p2 := newPolicy(t, cfg)
	p2.Record(Action{Time: t0, From: 3, To: 5})
	c2 := &clock{t0}
	cur2 := 5
	if acted := run(p2, c2, 119*time.Second, &cur2, 20); len(acted) != 0 {
		t.Fatalf("reversed inside the down cooldown: %+v", acted)
	}
	if acted := run(p2, c2, 2*time.Second, &cur2, 20); len(acted) != 1 || acted[0].Action != ActionDown {
		t.Fatalf("no reversal after the down cooldown: %+v", acted)
	}
}

func TestStepLimitsAndBounds(t *testing.T) {
	p := newPolicy(t, func(c *Config) {
		c.UpWindow, c.UpCooldown, c.Max = 0, 0, 100
		c.UpStep, c.UpStepPercent, c.StepPeriod = 2, 50, time.Minute
	})
	c := &clock{t0}
	d := p.Evaluate(c.advance(time.Second), Input{Current: 10, Value: 350, Valid: true}) // wants 50
	if d.Desired != 15 || !strings.Contains(d.Reason(), "step limit") {
		t.Fatalf("percent limit: %+v", d)
	}
	p.Record(Action{Time: c.now, From: 10, To: 15})
	d = p.Evaluate(c.advance(time.Second), Input{Current: 15, Value: 350, Valid: true})
	if d.Action != ActionNone {
		t.Fatalf("second step inside the period: %+v", d)
	}
	d = p.Evaluate(c.advance(time.Minute), Input{Current: 15, Value: 350, Valid: true})
	if d.Desired != 23 { // 15 + ceil(7.5)
		t.Fatalf("after the period: %+v", d)
	}
	// Count limit wins for small counts.
	d = newPolicy(t, func(c *Config) { c.UpWindow, c.Max, c.UpStep, c.UpStepPercent = 0, 100, 2, 50 }).
		Evaluate(t0, Input{Current: 1, Value: 700, Valid: true})
	if d.Desired != 3 {
		t.Fatalf("count limit: %+v", d)
	}
	// Bounds.
	d = newPolicy(t, func(c *Config) { c.UpWindow, c.Max = 0, 4 }).Evaluate(t0, Input{Current: 3, Value: 140, Valid: true})
	if d.Desired != 4 || !strings.Contains(d.Reason(), "scale-max 4") {
		t.Fatalf("max: %+v", d)
	}
	d = newPolicy(t, func(c *Config) { c.Min = 2 }).Evaluate(t0, Input{Current: 0, Valid: false})
	if d.Desired != 2 || d.Action != ActionUp {
		t.Fatalf("below min, no data: %+v", d)
	}
	d = newPolicy(t, nil).Evaluate(t0, Input{Current: 3, Valid: false})
	if d.Action != ActionNone || !strings.Contains(d.Reason(), "no load figures") {
		t.Fatalf("no data: %+v", d)
	}
}

func TestDryRunMarks(t *testing.T) {
	d := newPolicy(t, func(c *Config) { c.UpWindow, c.DryRun = 0, true }).Evaluate(t0, Input{Current: 2, Value: 140, Valid: true})
	if !d.DryRun || d.Action != ActionUp || !strings.Contains(d.Reason(), "dry-run") {
		t.Fatalf("%+v", d)
	}
}

func TestThresholdsMode(t *testing.T) {
	up, err := ParseThreshold("above 75% for 30s → +1")
	if err != nil {
		t.Fatal(err)
	}
	down, err := ParseThreshold("below 20 for 1m -> -2")
	if err != nil {
		t.Fatal(err)
	}
	p := newPolicy(t, func(c *Config) {
		c.Mode, c.Thresholds, c.UpCooldown, c.DownCooldown = ModeThresholds, []Threshold{up, down}, 10*time.Second, 0
	})
	c := &clock{t0}
	cur := 3
	// The condition holds from the first sample (1 s in): it acts 30 s later.
	if acted := run(p, c, 30*time.Second, &cur, 80); len(acted) != 0 {
		t.Fatalf("acted before 30s: %+v", acted)
	}
	acted := run(p, c, time.Second, &cur, 80)
	if len(acted) != 1 || cur != 4 || !strings.Contains(acted[0].Reason(), "above 75 for 30s -> +1") {
		t.Fatalf("want +1 at 30 s: %+v", acted)
	}
	// Still above: the up cooldown spaces the next step.
	if acted := run(p, c, 9*time.Second, &cur, 80); len(acted) != 0 {
		t.Fatalf("inside cooldown: %+v", acted)
	}
	if acted := run(p, c, time.Second, &cur, 80); len(acted) != 1 || cur != 5 {
		t.Fatalf("after cooldown: %+v cur %d", acted, cur)
	}
	if acted := run(p, c, 61*time.Second, &cur, 10); len(acted) != 1 || cur != 3 {
		t.Fatalf("below 20 for 1m: %+v cur %d", acted, cur)
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"min above max", func(c *Config) { c.Min, c.Max = 5, 3 }, "scale-min 5 is above scale-max 3"},
		{"negative min", func(c *Config) { c.Min = -1 }, "scale-min -1"},
		{"unknown metric", func(c *Config) { c.Metric = "disk" }, `scale-metric "disk"`},
		{"bad percentile", func(c *Config) { c.Metric = "cpu:p101" }, `percentile "p101"`},
		{"zero target", func(c *Config) { c.Target = 0 }, "scale-target 0"},
		{"tolerance", func(c *Config) { c.Tolerance = 1.5 }, "scale-tolerance 1.5"},
		{"thresholds without mode", func(c *Config) { c.Thresholds = []Threshold{{Above: true, Value: 1, Delta: 1}} }, "need mode"},
		{"mode without thresholds", func(c *Config) { c.Mode = ModeThresholds }, "at least one threshold"},
		{"unknown mode", func(c *Config) { c.Mode = "pid" }, `scale mode "pid"`},
		{"negative window", func(c *Config) { c.UpWindow = -time.Second }, "scale-up-window -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrConfig naming %q", err, tc.want)
			}
		})
	}
	for _, s := range []string{"over 75 for 30s -> +1", "above x for 30s -> +1", "above 75 for soon -> +1",
		"above 75 for 30s -> -1", "below 20 for 1m -> +1", "above 75 for 30s -> 0", "above 75 30s +1", "above 75 for 30s -> 1.5"} {
		if _, err := ParseThreshold(s); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), s) {
			t.Errorf("ParseThreshold(%q) = %v, want ErrConfig naming it", s, err)
		}
	}
}

func TestAggregate(t *testing.T) {
	ms := []MemberLoad{{CPU: 10, Mem: 50, Net: 100, Named: map[string]float64{"q": 4}}, {CPU: 20, Mem: 60, Net: 300}, {CPU: 90, Mem: 70, Net: 200, Named: map[string]float64{"q": 8}}}
	for _, tc := range []struct {
		metric string
		want   float64
	}{{"cpu", 40}, {"cpu:max", 90}, {"cpu:min", 10}, {"cpu:p50", 20}, {"cpu:p90", 76}, {"mem:mean", 60}, {"net", 200}, {"tag:q", 6}, {"tag:q:max", 8}} {
		v, ok, err := Aggregate(tc.metric, ms)
		if err != nil || !ok || v < tc.want-1e-9 || v > tc.want+1e-9 {
			t.Errorf("%s = %v, %v, %v; want %v", tc.metric, v, ok, err, tc.want)
		}
	}
	if _, ok, _ := Aggregate("tag:none", ms); ok {
		t.Error("a metric nobody has is not ok")
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), HistoryFile)
	h, err := OpenHistory(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	d := Decision{Time: t0, Current: 3, Desired: 5, Action: ActionUp}
	for _, oc := range []string{OutcomeApplied, OutcomeRefused, OutcomeFailed} {
		if err := h.Append(Record{Time: t0, Outcome: oc, Decision: d}); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	// A torn last line is skipped.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-`)
	f.Close()
	h2, err := OpenHistory(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if got := h2.Recent(0); len(got) != 3 {
		t.Fatalf("read back %d records", len(got))
	}
	last, ok := h2.LastAction()
	if !ok || last.Outcome != OutcomeApplied {
		t.Fatalf("last action %+v %v: refused and failed records are not actions", last, ok)
	}
}
