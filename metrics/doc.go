// Package metrics samples this host's CPU, memory, network and load average
// (on Linux from /proc files it keeps open, elsewhere through gopsutil v4),
// turns counters into rates, smooths them, and hands the agent one Load at a
// time.
//
// Counters come from a Reader (SystemReader in production, a scripted one in
// tests); Rates is a pure function from two counter readings to instantaneous
// figures, handling counter wrap and interfaces that appear or vanish; an EWMA
// smooths them; Monitor runs the loop on an injected clock.
//
// # The way of one sample
//
//	Reader.Read ──► Counters ──► Rates(prev, cur, dt) ──► EWMA.Update ──► Monitor.Latest
//	 (I/O)          (raw)          (pure)                  (pure)          (+ OnSample)
//
// Only Reader and Monitor.Run touch the outside world; Rates and EWMA are
// plain functions of their inputs and are tested with tables.
//
// # Containers
//
// Where the process sits in a cgroup v2 hierarchy (found from the "0::" line
// of /proc/self/cgroup, under /sys/fs/cgroup by default) SystemReader also
// reads cpu.max, cpu.stat, memory.max, memory.current and memory.stat. Where
// a limit is set ("max" means none; limits on ancestors count too, and the one
// that binds first is used, see CgroupCounters), the Load is relative to it:
//
//   - Cores is quota / period (capped at the host's logical CPU count), and
//     CPUPercent is the cgroup's usage_usec delta over dt × Cores.
//   - MemPercent is the working set (memory.current − inactive_file, as
//     kubelet and cAdvisor compute it) over memory.max (capped at the host's
//     memory), and MemAvailable is memory.max − working set.
//
// Without limits the figures are the host's. cgroup v1 is not read: on a
// v1-only or hybrid host the figures are the host's. Neither is cpuset:
// a container pinned to fewer CPUs than the host has, with no quota, reports
// the host's core count.
//
// # Counter resets
//
// A network or CPU counter that goes backwards between two readings (a
// 32-bit wrap, a driver reset, an interface re-created under the same name, a
// bond losing a member) contributes nothing for that interval; see Rates. An
// interface present in only one of the two readings contributes nothing
// either. A reset can make the figures low for one interval, never high.
//
// # Cost
//
// SystemReader reads /proc/stat (first line), /proc/meminfo, /proc/loadavg,
// /proc/net/dev, /proc/self/cgroup and a handful of cgroup files per call.
// The logical CPU count and the loopback classification of interfaces are
// cached. BenchmarkSystemReaderRead measures a call; at one sample a second
// the cost is that figure per second of one core.
//
// # Usage
//
//	cfg := metrics.DefaultConfig()
//	cfg.Logger = logger
//	mon, err := metrics.NewMonitor(cfg)
//	if err != nil {
//		return err
//	}
//	go mon.Run(ctx)
//	...
//	if load, ok := mon.Latest(); ok {
//		// gossip load
//	}
//
// Tests drive a Monitor with a FakeClock and a scripted Reader:
//
//	clk := metrics.NewFakeClock(time.Unix(0, 0))
//	cfg := metrics.Config{Interval: time.Second, Reader: scripted, Clock: clk,
//		OnSample: func(l metrics.Load) { samples <- l }}
//	mon, _ := metrics.NewMonitor(cfg)
//	go mon.Run(ctx)
//	clk.WaitForTickers(ctx, 1)
//	clk.Advance(time.Second) // one sample arrives on samples
//
// Scale and load-sharing tests that need a node to look busy use
// Monitor.Override.
package metrics
