package metrics

import "time"

// Rates turns two readings of Counters, taken dt apart, into a Load. It is a
// pure function: no clock, no I/O. Taken is left zero for the caller to set.
//
// CPU. Without a cgroup CPU quota, CPUPercent is the host's busy time over
// its total CPU time between the readings. With a quota (and cpu.stat in
// both readings), it is the cgroup's CPU usage over what the quota allows in
// dt: usage / (dt × Cores). Either way it is clamped to 0..100.
//
// Memory. Without a cgroup memory limit, MemPercent is (total − available) /
// total and MemAvailable is the host's available memory. With memory.max,
// the limit (capped at the host's total) takes the place of total and the
// working set (memory.current − inactive_file) is what is in use:
// MemAvailable is limit − working set, floored at zero.
//
// Cores is the logical CPU count, or the cgroup quota in cores when that is
// smaller. Load1 is taken from cur as it is.
//
// Network. NetRxBps and NetTxBps sum, over the interfaces present in both
// readings, the byte deltas divided by dt. An interface that appears or
// vanishes between the readings contributes nothing that round. A counter
// that went backwards contributes nothing either: it may be a 32-bit wrap, a
// driver reset, an interface deleted and re-created under the same name, or
// an aggregate (a bond, a bridge) that lost a member, and the traffic in that
// interval cannot be told apart from those. Dropping one interval's bytes
// from one interface under-reports briefly; any guess (cur as the delta, or
// 2^32 − prev + cur) can be off by gigabytes and would show as a spike in
// every peer's view of this node.
//
// A backwards CPU counter (host or cgroup) likewise yields 0% for the round.
//
// When dt <= 0 the rate figures (CPUPercent, NetRxBps, NetTxBps) are zero and
// only the levels (memory, Load1, Cores) are filled in.
func Rates(prev, cur Counters, dt time.Duration) Load {
	var l Load
	l.Load1 = cur.Load1

	// Cores and memory: levels from cur.
	l.Cores = float64(cur.LogicalCores)
	cg := cur.Cgroup
	quota := 0.0
	if cg != nil && cg.CPUQuotaCores > 0 {
		quota = cg.CPUQuotaCores
		if l.Cores <= 0 || quota < l.Cores {
			l.Cores = quota
		}
	}

	if cg != nil && cg.MemMax > 0 {
		limit := cg.MemMax
		if cur.MemTotal > 0 && cur.MemTotal < limit {
			limit = cur.MemTotal
		}
		ws := min(cg.WorkingSet(), limit)
		l.MemPercent = clampPercent(float64(ws) / float64(limit) * 100)
		l.MemAvailable = limit - ws
	} else if cur.MemTotal > 0 {
		avail := min(cur.MemAvailable, cur.MemTotal)
		l.MemPercent = clampPercent(float64(cur.MemTotal-avail) / float64(cur.MemTotal) * 100)
		l.MemAvailable = avail
	}

	if dt <= 0 {
		return l
	}
	secs := dt.Seconds()

	// CPU.
	pcg := prev.Cgroup
	if quota > 0 && l.Cores > 0 && cg.HasCPUUsage && pcg != nil && pcg.HasCPUUsage {
		if used := cg.CPUUsage - pcg.CPUUsage; used > 0 {
			l.CPUPercent = clampPercent(used / (secs * l.Cores) * 100)
		}
	} else {
		busy := cur.CPUBusy - prev.CPUBusy
		total := cur.CPUTotal - prev.CPUTotal
		if busy > 0 && total > 0 {
			l.CPUPercent = clampPercent(busy / total * 100)
		}
	}

	// Network.
	var rx, tx uint64
	for name, c := range cur.Net {
		p, ok := prev.Net[name]
		if !ok {
			continue
		}
		rx += counterDelta(p.RxBytes, c.RxBytes)
		tx += counterDelta(p.TxBytes, c.TxBytes)
	}
	l.NetRxBps = float64(rx) / secs
	l.NetTxBps = float64(tx) / secs
	return l
}

// counterDelta is cur − prev for a monotonic counter, or 0 when it went
// backwards (see Rates for why).
func counterDelta(prev, cur uint64) uint64 {
	if cur < prev {
		return 0
	}
	return cur - prev
}

// clampPercent clamps p to 0..100; NaN becomes 0.
func clampPercent(p float64) float64 {
	switch {
	case p > 100:
		return 100
	case p > 0:
		return p
	default:
		return 0
	}
}
