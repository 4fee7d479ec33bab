package scale

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func loadTraces(t *testing.T) map[string]Trace {
	t.Helper()
	out := map[string]Trace{}
	for _, n := range []string{"step", "ramp", "spike", "oscillation"} {
		f, err := os.Open(filepath.Join("testdata", "traces", n+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := ReadTrace(n, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Demand) != 3600 {
			t.Fatalf("%s: %d seconds", n, len(tr.Demand))
		}
		out[n] = tr
	}
	return out
}

func defaultScaler(t *testing.T) Scaler {
	cfg := DefaultConfig()
	cfg.Max = 20
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &PolicyScaler{Label: "shoal", P: p, Every: time.Second}
}

// TestTraces runs the default policy over the recorded traces on simulated
// time and checks the targets (the figures are printed by
// cmd/shoal-scalebench): from the load crossing the target band to the
// scale-up call p50 ≤ 5 s and p99 ≤ 15 s; on the step and spike traces, the
// same from the load crossing the target itself; on the oscillating trace,
// fewer actions than the naive threshold and no more than the HPA.
func TestTraces(t *testing.T) {
	traces := loadTraces(t)
	o := SimOptions{Start: 3, Target: 70, Tolerance: 0.1}
	var band []float64
	res := map[string]SimResult{}
	for name, tr := range traces {
		r := Simulate(tr, defaultScaler(t), o)
		res[name] = r
		band = append(band, r.BandLatencies...)
		if len(r.BandLatencies) == 0 {
			t.Errorf("%s: no scale-up answered a crossing", name)
		}
	}
	if p50, p99 := Percentile(band, 50), Percentile(band, 99); p50 > 5 || p99 > 15 {
		t.Errorf("band crossing → call: p50 %v s, p99 %v s; want ≤ 5 and ≤ 15", p50, p99)
	}
	for _, n := range []string{"step", "spike"} {
		if p50, p99 := Percentile(res[n].Latencies, 50), Percentile(res[n].Latencies, 99); p50 > 5 || p99 > 15 {
			t.Errorf("%s: target crossing → call: p50 %v s, p99 %v s", n, p50, p99)
		}
	}
	osc := traces["oscillation"]
	naive := Simulate(osc, &Naive{Up: 70, Down: 50, Every: time.Second, Min: 1, Max: 20}, o)
	hpa := Simulate(osc, NewHPA(70, 1, 20), o)
	if got := res["oscillation"].Actions; got >= naive.Actions || got > hpa.Actions {
		t.Errorf("oscillation: %d actions; naive %d, HPA %d", got, naive.Actions, hpa.Actions)
	}
	// The counts never leave the bounds.
	for name, r := range res {
		for i, n := range r.Counts {
			if n < 1 || n > 20 {
				t.Fatalf("%s: count %d at %d s", name, n, i)
			}
		}
	}
}

// TestHPAReference checks the reference HPA on hand-made cases.
func TestHPAReference(t *testing.T) {
	h := NewHPA(70, 1, 100)
	now := t0
	if got := h.Step(now, 10, 75); got != 10 {
		t.Fatalf("inside tolerance: %d", got)
	}
	if got := h.Step(now.Add(15*time.Second), 10, 140); got != 20 { // ceil(10×2)
		t.Fatalf("up: %d", got)
	}
	if got := h.Step(now.Add(30*time.Second), 20, 35); got != 20 { // 10 recommended, but 20 within 300 s
		t.Fatalf("down stabilization: %d", got)
	}
	if got := h.Step(now.Add(330*time.Second), 20, 35); got != 10 {
		t.Fatalf("after stabilization: %d", got)
	}
	if got := NewHPA(70, 1, 100).Step(now, 2, 700); got != 6 { // max(2+4, 2×2) = 6, not 20
		t.Fatalf("up rate limit: %d", got)
	}
}
