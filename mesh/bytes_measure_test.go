package mesh

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// TestMeasureLoadBytes measures what Shoal's own load gossip costs: ten
// in-process nodes on 127.0.0.131-140 with a key, lan's gossip interval
// (300 ms) and a load that moves past a bucket now and then, counted at
// the gossip port. It runs when SHOAL_MEASURE_WINDOW is set (a duration):
//
//	SHOAL_MEASURE_WINDOW=30s go test -run TestMeasureLoadBytes -v ./mesh/
//
// It reports the Shoal bytes and packets each node sent per second over
// the window, and the mean packet size; docs/benchmarks.md has the figures
// before and after versions were added to entries.
func TestMeasureLoadBytes(t *testing.T) {
	ws := os.Getenv("SHOAL_MEASURE_WINDOW")
	if ws == "" {
		t.Skip("set SHOAL_MEASURE_WINDOW (e.g. 30s) to measure")
	}
	window, err := time.ParseDuration(ws)
	if err != nil {
		t.Fatalf("SHOAL_MEASURE_WINDOW %q: %v", ws, err)
	}
	const n = 10
	key := make([]byte, 32)
	var ms []*Mesh
	for i := 0; i < n; i++ {
		var cpu atomic.Int64
		cpu.Store(int64(10 + 5*i))
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		m, err := New(Config{
			NodeName:       fmt.Sprintf("b%d", i),
			BindAddr:       fmt.Sprintf("127.0.0.%d", 131+i),
			Profile:        ProfileLocal,
			GossipInterval: 300 * time.Millisecond,
			DataDir:        t.TempDir(),
			Keys:           [][]byte{key},
			Label:          "measure",
			Load: func() (metrics.Load, bool) {
				// About one move past a bucket per node every 10 s.
				if rng.IntN(33) == 0 {
					cpu.Store(int64(rng.IntN(90)))
				}
				return metrics.Load{CPUPercent: float64(cpu.Load()), MemPercent: 50, Cores: 2, MemAvailable: 4 << 30}, true
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		if i > 0 {
			if _, err := m.Join([]string{addrOf(ms[0])}); err != nil {
				t.Fatal(err)
			}
		}
		ms = append(ms, m)
	}
	waitFor(t, 60*time.Second, "every node holds every load", func() error {
		for _, m := range ms {
			for _, mem := range m.View().Members() {
				if mem.Status != StatusAlive || mem.Load == nil {
					return fmt.Errorf("%s: %s %s load %v", m.LocalName(), mem.Name, mem.Status, mem.Load)
				}
			}
			if m.View().Len() != n {
				return fmt.Errorf("%s sees %d members", m.LocalName(), m.View().Len())
			}
		}
		return nil
	})
	type snap struct{ b, p uint64 }
	take := func() []snap {
		out := make([]snap, n)
		for i, m := range ms {
			out[i] = snap{m.Stats().ShoalBytesOut.Load(), m.Stats().ShoalPacketsOut.Load()}
		}
		return out
	}
	s0, t0 := take(), time.Now()
	time.Sleep(window) // the measurement window itself
	s1, el := take(), time.Since(t0).Seconds()
	var bytes, pkts uint64
	for i := range s0 {
		bytes += s1[i].b - s0[i].b
		pkts += s1[i].p - s0[i].p
	}
	if pkts == 0 {
		t.Fatal("no Shoal packets sent in the window")
	}
	perPkt := float64(bytes) / float64(pkts)
	// The nominal rate: fanout 2 packets per 300 ms round.
	t.Logf("N=%d, %v window: %.0f Shoal bytes/node/s measured (%.1f packets/node/s), %.1f bytes per packet; at the nominal 2 packets per 300 ms: %.0f bytes/node/s",
		n, window, float64(bytes)/el/n, float64(pkts)/el/n, perPkt, perPkt*2/0.3)
	if perPkt > 1400+64 {
		t.Fatalf("mean packet %.0f bytes above the 1,400-byte budget and framing", perPkt)
	}
}
