package mesh

import (
	"testing"

	"github.com/shoalmesh/shoal/metrics"
)

// A load past a bucket is a new state (Moved); only a large move sends it
// at once (Urgent), the rest ride the next wave.
func TestMovedAndUrgent(t *testing.T) {
	base := metrics.Load{CPUPercent: 40, MemPercent: 50, Load1: 2, Cores: 4, NetRxBps: 1 << 20, NetTxBps: 1 << 20, MemAvailable: 4 << 30}
	for _, c := range []struct {
		name          string
		change        func(l *metrics.Load)
		moved, urgent bool
	}{
		{"same", func(l *metrics.Load) {}, false, false},
		{"cpu +0.5", func(l *metrics.Load) { l.CPUPercent += 0.5 }, false, false},
		{"cpu +1", func(l *metrics.Load) { l.CPUPercent++ }, true, false},
		{"cpu -4.9", func(l *metrics.Load) { l.CPUPercent -= 4.9 }, true, false},
		{"cpu +5", func(l *metrics.Load) { l.CPUPercent += 5 }, true, true},
		{"memory -6", func(l *metrics.Load) { l.MemPercent -= 6 }, true, true},
		{"load1 +0.2", func(l *metrics.Load) { l.Load1 += 0.2 }, true, false},
		{"load1 +0.6 (of 2.6)", func(l *metrics.Load) { l.Load1 += 0.6 }, true, false},
		{"load1 +1", func(l *metrics.Load) { l.Load1++ }, true, true},
		{"cores", func(l *metrics.Load) { l.Cores = 2 }, true, true},
		{"rx x1.2", func(l *metrics.Load) { l.NetRxBps *= 1.2 }, true, false},
		{"rx x3", func(l *metrics.Load) { l.NetRxBps *= 3 }, true, true},
		{"memory available -60%", func(l *metrics.Load) { l.MemAvailable = l.MemAvailable * 4 / 10 }, true, true},
	} {
		cur := base
		c.change(&cur)
		if got := Moved(base, cur); got != c.moved {
			t.Errorf("%s: Moved %v, want %v", c.name, got, c.moved)
		}
		if got := Urgent(base, cur); got != c.urgent {
			t.Errorf("%s: Urgent %v, want %v", c.name, got, c.urgent)
		}
	}
	// Load average near zero: a quarter of 0.2 is not half a point.
	if Urgent(metrics.Load{Load1: 0.2}, metrics.Load{Load1: 0.6}) {
		t.Error("load average 0.2 -> 0.6 urgent")
	}
}
