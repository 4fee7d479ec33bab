package mesh

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/mesh/memnet"
	"github.com/shoalmesh/shoal/metrics"
)

// startMem starts n nodes m1…mn at 10.9.0.1… on nw and joins them.
func startMem(t *testing.T, nw *memnet.Network, n int) []*Mesh {
	t.Helper()
	var ms []*Mesh
	for i := 1; i <= n; i++ {
		cpu := float64(10 * i)
		m, err := New(Config{
			NodeName:  fmt.Sprintf("m%d", i),
			BindAddr:  fmt.Sprintf("10.9.0.%d", i),
			Profile:   ProfileLocal,
			Transport: MemoryTransport(nw),
			Keys:      [][]byte{[]byte("0123456789abcdef")},
			Label:     "mem",
			Load:      func() (metrics.Load, bool) { return metrics.Load{CPUPercent: cpu, Cores: 1}, true },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		ms = append(ms, m)
	}
	for _, m := range ms[1:] {
		if _, err := m.Join([]string{"10.9.0.1"}); err != nil { // the default port
			t.Fatal(err)
		}
	}
	return ms
}

// sees checks that each of ms sees the named members with the given status.
func sees(ms []*Mesh, status string, names ...string) error {
	for _, m := range ms {
		for _, name := range names {
			if s := statusOf(m, name); s != status {
				return fmt.Errorf("%s sees %s %s, want %s", m.LocalName(), name, s, status)
			}
		}
	}
	return nil
}

func TestMeshOnMemoryNetwork(t *testing.T) {
	nw := memnet.New(1)
	if err := nw.SetDefault(memnet.Link{Latency: time.Millisecond, Jitter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ms := startMem(t, nw, 5)
	all := []string{"m1", "m2", "m3", "m4", "m5"}
	waitFor(t, 30*time.Second, "every node sees every node's load", func() error {
		if err := sees(ms, StatusAlive, all...); err != nil {
			return err
		}
		for _, m := range ms {
			for i, mem := range m.View().Members() {
				if mem.Load == nil || mem.Load.CPUPercent != float64(10*(i+1)) {
					return fmt.Errorf("%s sees %s load %v", m.LocalName(), mem.Name, mem.Load)
				}
			}
		}
		return nil
	})
	if ip, port := ms[2].LocalAddr(); ip != "10.9.0.3" || port == 0 {
		t.Errorf("m3 advertises %s:%d", ip, port)
	}
	st := ms[0].Stats()
	if st.ShoalPacketsIn.Load() == 0 || st.ShoalPacketsOut.Load() == 0 || st.PacketsIn.Load() <= st.ShoalPacketsIn.Load() || st.BytesIn.Load() == 0 {
		t.Errorf("m1 counted no traffic: %d/%d Shoal packets in/out, %d packets in", st.ShoalPacketsIn.Load(), st.ShoalPacketsOut.Load(), st.PacketsIn.Load())
	}
	if d := st.Dropped.Load(); d != 0 {
		t.Errorf("m1 dropped %d packets of its own mesh", d)
	}

	// 2 | 3: each side sees the other fail; healed, all come back.
	nw.Partition([]string{"10.9.0.1", "10.9.0.2"}, []string{"10.9.0.3", "10.9.0.4", "10.9.0.5"})
	waitFor(t, 30*time.Second, "each side sees the other failed", func() error {
		if err := sees(ms[:2], StatusFailed, "m3", "m4", "m5"); err != nil {
			return err
		}
		if err := sees(ms[2:], StatusFailed, "m1", "m2"); err != nil {
			return err
		}
		if err := sees(ms[:2], StatusAlive, "m1", "m2"); err != nil {
			return err
		}
		return sees(ms[2:], StatusAlive, "m3", "m4", "m5")
	})
	nw.Heal()
	waitFor(t, 30*time.Second, "healed: all alive again", func() error { return sees(ms, StatusAlive, all...) })
}

func TestTransportConfig(t *testing.T) {
	nw := memnet.New(1)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{NodeName: "a", Profile: ProfileP2P, BindAddr: "127.0.0.1"}, "P2PTransport"},
		{Config{NodeName: "a", Profile: ProfileLocal, Transport: MemoryTransport(nw)}, "0.0.0.0"},
		{Config{NodeName: "a", Profile: ProfileLocal, Transport: MemoryTransport(nil), BindAddr: "10.0.0.1"}, "without a network"},
	} {
		m, err := New(tc.cfg)
		if err == nil {
			m.Shutdown()
			t.Errorf("%+v: started", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want it to name %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(Config{NodeName: "a", Profile: ProfileWAN, Transport: P2PTransport(P2PConfig{})}); !errors.Is(err, ErrConfig) {
		t.Errorf("wan with libp2p: %v", err)
	}
}
