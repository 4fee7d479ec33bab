//go:build !nolibp2p

package mesh

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// TestP2PFiguresBesideLAN prints join time, failure detection, gossip bytes
// per second and heap for N=10 on the local profile's timings, memberlist's
// own transport next to libp2p. Run with SHOAL_P2P_FIGURES=1.
func TestP2PFiguresBesideLAN(t *testing.T) {
	if os.Getenv("SHOAL_P2P_FIGURES") == "" {
		t.Skip("set SHOAL_P2P_FIGURES=1 to print the p2p figures beside lan")
	}
	const n = 10
	for _, prof := range []string{ProfileLocal, ProfileP2P} {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var ms []*Mesh
		for i := 1; i <= n; i++ {
			cfg := Config{
				NodeName: fmt.Sprintf("f%d", i), BindAddr: fmt.Sprintf("127.0.0.%d", 30+i), Profile: prof,
				DataDir: t.TempDir(), Keys: [][]byte{testKey(1)}, Label: "fig",
				Load: func() (metrics.Load, bool) { return metrics.Load{CPUPercent: 10, Cores: 1}, true },
			}
			if prof == ProfileP2P {
				cfg.Transport = P2PTransport(P2PConfig{FastTimings: true})
			}
			if prof == ProfileLocal {
				cfg.GossipInterval = 300 * time.Millisecond // p2p's default, for like bytes
			}
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		seed := []string{addrOf(ms[0])}
		if prof == ProfileP2P {
			seed = ms[0].P2PAddrs()
		}
		start := time.Now()
		for _, m := range ms[1:] {
			if _, err := m.Join(seed); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 20*time.Second, prof+" converge", func() error {
			for _, m := range ms {
				for _, mem := range m.View().Members() {
					if mem.Load == nil {
						return fmt.Errorf("no load for %s", mem.Name)
					}
				}
				if len(m.View().Members()) != n {
					return fmt.Errorf("%d members", len(m.View().Members()))
				}
			}
			return nil
		})
		join := time.Since(start)
		// Bytes per second per node, steady state, over 3 s.
		var b0 uint64
		for _, m := range ms {
			b0 += m.Stats().BytesOut.Load()
		}
		time.Sleep(3 * time.Second) // measuring a rate over a fixed window
		var b1 uint64
		for _, m := range ms {
			b1 += m.Stats().BytesOut.Load()
		}
		bps := float64(b1-b0) / 3 / n
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n / (1 << 20)
		victim := ms[n-1]
		vname := victim.LocalName()
		victim.Shutdown()
		fstart := time.Now()
		waitFor(t, 30*time.Second, prof+" failure detected", func() error {
			for _, m := range ms[:n-1] {
				if s := statusOf(m, vname); s != StatusFailed {
					return fmt.Errorf("%s sees %s", m.LocalName(), s)
				}
			}
			return nil
		})
		fd := time.Since(fstart)
		t.Logf("FIGURES profile=%s N=%d join=%v failure_detection=%v bytes_out_per_node_per_s=%.0f heap_per_node_MiB=%.2f",
			prof, n, join.Round(time.Millisecond), fd.Round(time.Millisecond), bps, heap)
		for _, m := range ms[:n-1] {
			m.Shutdown()
		}
	}
}
