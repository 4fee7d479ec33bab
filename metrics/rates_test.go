package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestRates(t *testing.T) {
	const gib = 1 << 30
	host := func(busy, total float64) Counters {
		return Counters{CPUBusy: busy, CPUTotal: total, MemTotal: 1000, MemAvailable: 250, LogicalCores: 4, Load1: 1.5}
	}
	withNet := func(c Counters, net map[string]NetCounters) Counters { c.Net = net; return c }
	withCg := func(c Counters, cg CgroupCounters) Counters { c.Cgroup = &cg; return c }

	tests := []struct {
		name       string
		prev, cur  Counters
		dt         time.Duration
		want       Load
		ignoreMem  bool
		ignoreCPU  bool
		ignoreCore bool
	}{
		{
			name: "host cpu and memory",
			prev: host(10, 100), cur: host(15, 110), dt: time.Second,
			want: Load{CPUPercent: 50, MemPercent: 75, MemAvailable: 250, Load1: 1.5, Cores: 4},
		},
		{
			name: "host cpu busy went backwards",
			prev: host(20, 100), cur: host(15, 110), dt: time.Second,
			want: Load{CPUPercent: 0, MemPercent: 75, MemAvailable: 250, Load1: 1.5, Cores: 4},
		},
		{
			name: "host cpu total did not move",
			prev: host(10, 100), cur: host(15, 100), dt: time.Second,
			want: Load{CPUPercent: 0, MemPercent: 75, MemAvailable: 250, Load1: 1.5, Cores: 4},
		},
		{
			name: "host cpu clamped at 100",
			prev: host(10, 100), cur: host(30, 110), dt: time.Second,
			want: Load{CPUPercent: 100, MemPercent: 75, MemAvailable: 250, Load1: 1.5, Cores: 4},
		},
		{
			name: "dt zero: levels only",
			prev: withNet(host(10, 100), map[string]NetCounters{"eth0": {0, 0}}),
			cur:  withNet(host(15, 110), map[string]NetCounters{"eth0": {1000, 1000}}),
			dt:   0,
			want: Load{MemPercent: 75, MemAvailable: 250, Load1: 1.5, Cores: 4},
		},
		{
			name: "dt negative: levels only",
			prev: withNet(host(10, 100), map[string]NetCounters{"eth0": {0, 0}}),
			cur:  withNet(host(15, 110), map[string]NetCounters{"eth0": {1000, 1000}}),
			dt:   -time.Second,
			want: Load{MemPercent: 75, MemAvailable: 250, Load1: 1.5, Cores: 4},
		},
		{
			name:      "net summed over interfaces",
			prev:      withNet(host(0, 0), map[string]NetCounters{"eth0": {1000, 2000}, "eth1": {0, 0}}),
			cur:       withNet(host(0, 0), map[string]NetCounters{"eth0": {2000, 4000}, "eth1": {1000, 0}}),
			dt:        2 * time.Second,
			want:      Load{NetRxBps: 1000, NetTxBps: 1000},
			ignoreMem: true, ignoreCore: true,
		},
		{
			name:      "net interface appears: no spike",
			prev:      withNet(host(0, 0), map[string]NetCounters{"eth0": {1000, 1000}}),
			cur:       withNet(host(0, 0), map[string]NetCounters{"eth0": {2000, 2000}, "veth9": {50 * gib, 50 * gib}}),
			dt:        time.Second,
			want:      Load{NetRxBps: 1000, NetTxBps: 1000},
			ignoreMem: true, ignoreCore: true,
		},
		{
			name:      "net interface vanishes",
			prev:      withNet(host(0, 0), map[string]NetCounters{"eth0": {1000, 1000}, "veth9": {50 * gib, 50 * gib}}),
			cur:       withNet(host(0, 0), map[string]NetCounters{"eth0": {2000, 2000}}),
			dt:        time.Second,
			want:      Load{NetRxBps: 1000, NetTxBps: 1000},
			ignoreMem: true, ignoreCore: true,
		},
		{
			name:      "net reset to zero counts nothing",
			prev:      withNet(host(0, 0), map[string]NetCounters{"eth0": {5 * gib, 5 * gib}, "eth1": {0, 0}}),
			cur:       withNet(host(0, 0), map[string]NetCounters{"eth0": {100, 100}, "eth1": {10, 20}}),
			dt:        time.Second,
			want:      Load{NetRxBps: 10, NetTxBps: 20},
			ignoreMem: true, ignoreCore: true,
		},
		{
			name:      "net 32-bit wrap counts nothing",
			prev:      withNet(host(0, 0), map[string]NetCounters{"eth0": {math.MaxUint32 - 10, math.MaxUint32 - 10}}),
			cur:       withNet(host(0, 0), map[string]NetCounters{"eth0": {20, 20}}),
			dt:        time.Second,
			want:      Load{},
			ignoreMem: true, ignoreCore: true,
		},
		{
			name:      "net bond lost a member: large drop counts nothing",
			prev:      withNet(host(0, 0), map[string]NetCounters{"bond0": {math.MaxUint64 - 5, 80 * gib}}),
			cur:       withNet(host(0, 0), map[string]NetCounters{"bond0": {30 * gib, 30 * gib}}),
			dt:        time.Second,
			want:      Load{},
			ignoreMem: true, ignoreCore: true,
		},
		{
			name:      "cgroup quota: cpu over quota",
			prev:      withCg(host(0, 100), CgroupCounters{CPUQuotaCores: 0.5, CPUUsage: 10, HasCPUUsage: true}),
			cur:       withCg(host(1, 110), CgroupCounters{CPUQuotaCores: 0.5, CPUUsage: 10.25, HasCPUUsage: true}),
			dt:        time.Second,
			want:      Load{CPUPercent: 50, Cores: 0.5, Load1: 1.5},
			ignoreMem: true,
		},
		{
			name:      "cgroup quota above host cores: capped at host",
			prev:      withCg(host(0, 100), CgroupCounters{CPUQuotaCores: 16, CPUUsage: 10, HasCPUUsage: true}),
			cur:       withCg(host(1, 110), CgroupCounters{CPUQuotaCores: 16, CPUUsage: 12, HasCPUUsage: true}),
			dt:        time.Second,
			want:      Load{CPUPercent: 50, Cores: 4, Load1: 1.5},
			ignoreMem: true,
		},
		{
			name:      "cgroup usage went backwards",
			prev:      withCg(host(0, 100), CgroupCounters{CPUQuotaCores: 1, CPUUsage: 10, HasCPUUsage: true}),
			cur:       withCg(host(5, 110), CgroupCounters{CPUQuotaCores: 1, CPUUsage: 1, HasCPUUsage: true}),
			dt:        time.Second,
			want:      Load{CPUPercent: 0, Cores: 1, Load1: 1.5},
			ignoreMem: true,
		},
		{
			name:      "cgroup usage over quota clamped",
			prev:      withCg(host(0, 100), CgroupCounters{CPUQuotaCores: 1, CPUUsage: 10, HasCPUUsage: true}),
			cur:       withCg(host(5, 110), CgroupCounters{CPUQuotaCores: 1, CPUUsage: 13, HasCPUUsage: true}),
			dt:        time.Second,
			want:      Load{CPUPercent: 100, Cores: 1, Load1: 1.5},
			ignoreMem: true,
		},
		{
			name:      "cgroup appeared: host cpu this round",
			prev:      host(10, 100),
			cur:       withCg(host(15, 110), CgroupCounters{CPUQuotaCores: 2, CPUUsage: 10, HasCPUUsage: true}),
			dt:        time.Second,
			want:      Load{CPUPercent: 50, Cores: 2, Load1: 1.5},
			ignoreMem: true,
		},
		{
			name: "cgroup without quota: host cpu and cores",
			prev: withCg(host(10, 100), CgroupCounters{CPUUsage: 1, HasCPUUsage: true}),
			cur:  withCg(host(15, 110), CgroupCounters{CPUUsage: 9, HasCPUUsage: true}),
			dt:   time.Second,
			want: Load{CPUPercent: 50, MemPercent: 75, MemAvailable: 250, Load1: 1.5, Cores: 4},
		},
		{
			name:      "cgroup memory: working set over max",
			prev:      host(0, 0),
			cur:       withCg(host(0, 0), CgroupCounters{MemMax: 800, MemCurrent: 600, MemInactiveFile: 200}),
			dt:        time.Second,
			want:      Load{MemPercent: 50, MemAvailable: 400},
			ignoreCPU: true, ignoreCore: true,
		},
		{
			name:      "cgroup memory max above host total: capped",
			prev:      host(0, 0),
			cur:       withCg(host(0, 0), CgroupCounters{MemMax: 1 << 40, MemCurrent: 500}),
			dt:        time.Second,
			want:      Load{MemPercent: 50, MemAvailable: 500},
			ignoreCPU: true, ignoreCore: true,
		},
		{
			name:      "cgroup memory working set above max",
			prev:      host(0, 0),
			cur:       withCg(host(0, 0), CgroupCounters{MemMax: 500, MemCurrent: 900, MemInactiveFile: 100}),
			dt:        time.Second,
			want:      Load{MemPercent: 100, MemAvailable: 0},
			ignoreCPU: true, ignoreCore: true,
		},
		{
			name:      "cgroup inactive_file above current",
			prev:      host(0, 0),
			cur:       withCg(host(0, 0), CgroupCounters{MemMax: 500, MemCurrent: 100, MemInactiveFile: 300}),
			dt:        time.Second,
			want:      Load{MemPercent: 0, MemAvailable: 500},
			ignoreCPU: true, ignoreCore: true,
		},
		{
			name: "empty counters",
			dt:   time.Second,
			want: Load{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Rates(tt.prev, tt.cur, tt.dt)
			if tt.ignoreMem {
				got.MemPercent, got.MemAvailable = tt.want.MemPercent, tt.want.MemAvailable
			}
			if tt.ignoreCPU {
				got.CPUPercent = tt.want.CPUPercent
			}
			if tt.ignoreCore {
				got.Cores, got.Load1 = tt.want.Cores, tt.want.Load1
			}
			if !loadNear(got, tt.want, 1e-9) {
				t.Errorf("Rates() =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// TestRatesNeverSpikes checks Rates against a naive reference on random
// counters with resets, churn and wraps: the bytes it reports for an interval
// never exceed what the interfaces present in both readings moved forward.
func TestRatesNeverSpikes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"eth0", "eth1", "wlan0", "veth1", "bond0"}
	random := func() map[string]NetCounters {
		m := map[string]NetCounters{}
		for _, n := range names {
			if rng.IntN(4) == 0 {
				continue // churn
			}
			var c NetCounters
			switch rng.IntN(3) {
			case 0:
				c = NetCounters{rng.Uint64(), rng.Uint64()}
			case 1:
				c = NetCounters{uint64(rng.Uint32()), uint64(rng.Uint32())}
			default:
				c = NetCounters{uint64(rng.IntN(1000)), uint64(rng.IntN(1000))}
			}
			m[n] = c
		}
		return m
	}
	for i := range 10000 {
		prev, cur := Counters{Net: random()}, Counters{Net: random()}
		dt := time.Duration(1+rng.IntN(5000)) * time.Millisecond
		var maxRx, maxTx float64
		for n, c := range cur.Net {
			p, ok := prev.Net[n]
			if !ok {
				continue
			}
			if c.RxBytes >= p.RxBytes {
				maxRx += float64(c.RxBytes - p.RxBytes)
			}
			if c.TxBytes >= p.TxBytes {
				maxTx += float64(c.TxBytes - p.TxBytes)
			}
		}
		l := Rates(prev, cur, dt)
		if l.NetRxBps < 0 || l.NetTxBps < 0 ||
			l.NetRxBps*dt.Seconds() > maxRx*(1+1e-9) || l.NetTxBps*dt.Seconds() > maxTx*(1+1e-9) {
			t.Fatalf("case %d: Rates(%v, %v, %v) = rx %g tx %g B/s; forward movement was rx %g tx %g bytes",
				i, prev.Net, cur.Net, dt, l.NetRxBps, l.NetTxBps, maxRx, maxTx)
		}
	}
}

// loadNear compares every field of a and b, floats within tol.
func loadNear(a, b Load, tol float64) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) <= tol*math.Max(1, math.Abs(y)) }
	return near(a.CPUPercent, b.CPUPercent) && near(a.MemPercent, b.MemPercent) &&
		a.MemAvailable == b.MemAvailable && near(a.NetRxBps, b.NetRxBps) &&
		near(a.NetTxBps, b.NetTxBps) && near(a.Load1, b.Load1) && near(a.Cores, b.Cores) &&
		a.Taken.Equal(b.Taken)
}
