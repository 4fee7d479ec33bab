package metrics

import (
	"context"
	"testing"
	"time"
)

// TestSystemReaderReal reads this machine for real: two readings, some CPU
// time apart, must give sane figures.
func TestSystemReaderReal(t *testing.T) {
	ctx := context.Background()
	r := NewSystemReader()
	first, err := r.Read(ctx)
	if err != nil {
		t.Fatalf("first Read: %v", err)
	}
	start := time.Now()

	// Poll until the kernel's CPU counters move (they tick every few ms),
	// keeping a CPU busy meanwhile; never sleep.
	var second Counters
	deadline := start.Add(10 * time.Second)
	for spin := 0; ; spin++ {
		second, err = r.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if second.CPUTotal > first.CPUTotal || time.Now().After(deadline) {
			break
		}
	}
	dt := time.Since(start)

	if second.CPUTotal <= first.CPUTotal {
		t.Errorf("CPUTotal did not move in %v: %g then %g", dt, first.CPUTotal, second.CPUTotal)
	}
	if second.CPUBusy < 0 || second.CPUBusy > second.CPUTotal {
		t.Errorf("CPUBusy %g outside 0..CPUTotal %g", second.CPUBusy, second.CPUTotal)
	}
	if second.MemTotal == 0 || second.MemAvailable > second.MemTotal {
		t.Errorf("memory: total %d, available %d", second.MemTotal, second.MemAvailable)
	}
	if second.LogicalCores < 1 {
		t.Errorf("LogicalCores = %d, want at least 1", second.LogicalCores)
	}
	if _, ok := second.Net["lo"]; ok {
		t.Errorf("loopback interface lo is in Net: %v", second.Net)
	}

	l := Rates(first, second, dt)
	t.Logf("dt %v: %+v (cgroup %+v)", dt, l, second.Cgroup)
	if l.CPUPercent < 0 || l.CPUPercent > 100 {
		t.Errorf("CPUPercent = %g, want 0..100", l.CPUPercent)
	}
	if l.MemPercent <= 0 || l.MemPercent > 100 {
		t.Errorf("MemPercent = %g, want in (0, 100]", l.MemPercent)
	}
	quota := second.Cgroup != nil && second.Cgroup.CPUQuotaCores > 0
	if !quota && l.Cores < 1 || quota && l.Cores <= 0 {
		t.Errorf("Cores = %g, want at least 1 (or a positive cgroup quota)", l.Cores)
	}
	if l.NetRxBps < 0 || l.NetTxBps < 0 || l.Load1 < 0 {
		t.Errorf("negative figures: %+v", l)
	}
}

// BenchmarkSystemReaderRead measures one sample's cost. The Monitor takes one
// a second, so ns/op divided by 1e9 is the fraction of a core spent sampling.
func BenchmarkSystemReaderRead(b *testing.B) {
	ctx := context.Background()
	r := NewSystemReader()
	if _, err := r.Read(ctx); err != nil { // warm the caches, as the Monitor's first read does
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSample measures Read plus Rates plus EWMA, the whole of one tick.
func BenchmarkSample(b *testing.B) {
	ctx := context.Background()
	r := NewSystemReader()
	prev, err := r.Read(ctx)
	if err != nil {
		b.Fatal(err)
	}
	e := NewEWMA(DefaultHalfLife)
	b.ReportAllocs()
	for b.Loop() {
		cur, err := r.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		e.Update(Rates(prev, cur, time.Second), time.Second)
		prev = cur
	}
}
