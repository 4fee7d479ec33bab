package metrics

import (
	"math"
	"testing"
	"time"
)

func TestAlpha(t *testing.T) {
	tests := []struct {
		dt, halfLife time.Duration
		want         float64
	}{
		{time.Second, 0, 1},
		{time.Second, -time.Second, 1},
		{0, time.Second, 0},
		{-time.Second, time.Second, 0},
		{time.Second, time.Second, 0.5},
		{2 * time.Second, time.Second, 0.75},
		{5 * time.Second, 5 * time.Second, 0.5},
	}
	for _, tt := range tests {
		if got := Alpha(tt.dt, tt.halfLife); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Alpha(%v, %v) = %g, want %g", tt.dt, tt.halfLife, got, tt.want)
		}
	}
}

func TestEWMAFirstSampleAsIs(t *testing.T) {
	e := NewEWMA(5 * time.Second)
	if _, ok := e.Value(); ok {
		t.Fatal("Value() ok before any Update")
	}
	in := Load{CPUPercent: 40, MemPercent: 30, MemAvailable: 1234, NetRxBps: 5, NetTxBps: 6, Load1: 2, Cores: 4, Taken: time.Unix(10, 0)}
	if got := e.Update(in, time.Second); !loadNear(got, in, 0) {
		t.Fatalf("first Update = %+v, want %+v", got, in)
	}
	e.Reset()
	if _, ok := e.Value(); ok {
		t.Fatal("Value() ok after Reset")
	}
}

// TestEWMAHalfLife: after a step, the average is half way there after one
// half-life, three quarters after two, whatever the sampling interval.
func TestEWMAHalfLife(t *testing.T) {
	const halfLife = 5 * time.Second
	for _, step := range []time.Duration{100 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second} {
		e := NewEWMA(halfLife)
		e.Update(Load{}, 0)
		target := Load{CPUPercent: 100, MemPercent: 80, MemAvailable: 1 << 30, NetRxBps: 1e6, NetTxBps: 2e6, Load1: 8, Cores: 2}
		var got Load
		var elapsed time.Duration
		for elapsed < halfLife {
			got = e.Update(target, step)
			elapsed += step
		}
		want := Load{CPUPercent: 50, MemPercent: 40, MemAvailable: 1 << 29, NetRxBps: 5e5, NetTxBps: 1e6, Load1: 4, Cores: 1}
		if !loadNear(got, want, 1e-9) {
			t.Errorf("step %v: after one half-life got %+v, want %+v", step, got, want)
		}
		for elapsed < 2*halfLife {
			got = e.Update(target, step)
			elapsed += step
		}
		if math.Abs(got.CPUPercent-75) > 1e-9 {
			t.Errorf("step %v: after two half-lives CPUPercent = %g, want 75", step, got.CPUPercent)
		}
	}
}

// TestEWMAConverges: fed a constant, the average reaches it.
func TestEWMAConverges(t *testing.T) {
	e := NewEWMA(5 * time.Second)
	e.Update(Load{CPUPercent: 90, MemAvailable: 100}, 0)
	target := Load{CPUPercent: 10, MemAvailable: 5000, Cores: 3}
	var got Load
	for range 200 { // 200 s = 40 half-lives
		got = e.Update(target, time.Second)
	}
	if !loadNear(got, target, 1e-9) {
		t.Fatalf("after 40 half-lives got %+v, want %+v", got, target)
	}
}

func TestEWMAIrregularSampling(t *testing.T) {
	a, b := NewEWMA(3*time.Second), NewEWMA(3*time.Second)
	a.Update(Load{}, 0)
	b.Update(Load{}, 0)
	in := Load{CPUPercent: 60}
	a.Update(in, time.Second)
	ga := a.Update(in, time.Second)
	gb := b.Update(in, 2*time.Second)
	if math.Abs(ga.CPUPercent-gb.CPUPercent) > 1e-12 {
		t.Fatalf("two 1s steps gave %g, one 2s step gave %g; want equal", ga.CPUPercent, gb.CPUPercent)
	}
	// A sample with no time elapsed changes nothing.
	if got := b.Update(Load{CPUPercent: 100}, 0); got.CPUPercent != gb.CPUPercent {
		t.Fatalf("dt=0 Update moved CPUPercent from %g to %g", gb.CPUPercent, got.CPUPercent)
	}
}

func TestEWMAZeroHalfLifePassesThrough(t *testing.T) {
	var e EWMA
	for i, in := range []Load{{CPUPercent: 10}, {CPUPercent: 90, Load1: 3}, {NetRxBps: 7}} {
		if got := e.Update(in, time.Second); !loadNear(got, in, 0) {
			t.Fatalf("sample %d: got %+v, want %+v", i, got, in)
		}
	}
}
