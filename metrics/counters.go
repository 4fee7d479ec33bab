package metrics

import "context"

// Counters are this host's raw figures at one instant: monotonic counters
// (CPU time, network bytes, cgroup CPU usage) that only mean something as a
// difference between two readings, and levels (memory, load average, cores)
// that mean something on their own. Rates turns two Counters into a Load.
//
// A Counters value and the map and pointer it holds are treated as read-only
// once a Reader has returned them.
type Counters struct {
	// CPUBusy is the host's busy CPU time in seconds, summed over all CPUs
	// since boot: CPUTotal minus idle and iowait.
	CPUBusy float64
	// CPUTotal is the host's total CPU time in seconds, summed over all CPUs
	// since boot. Guest time is not counted twice (Linux already counts it in
	// user and nice).
	CPUTotal float64

	// MemTotal is the host's physical memory in bytes.
	MemTotal uint64
	// MemAvailable is memory the kernel estimates can be given to new work
	// without swapping (MemAvailable in /proc/meminfo), in bytes.
	MemAvailable uint64
	// MemUsed is MemTotal minus MemAvailable, in bytes.
	MemUsed uint64

	// Net holds byte counters per network interface, keyed by interface name.
	// Loopback interfaces are left out.
	Net map[string]NetCounters

	// Load1 is the 1-minute load average.
	Load1 float64
	// LogicalCores is the host's logical CPU count.
	LogicalCores int

	// Cgroup holds the process's cgroup v2 figures, or nil when there is no
	// cgroup v2 hierarchy to read (bare host, cgroup v1).
	Cgroup *CgroupCounters
}

// NetCounters are one interface's cumulative byte counters.
type NetCounters struct {
	// RxBytes is bytes received since the counter started.
	RxBytes uint64
	// TxBytes is bytes sent since the counter started.
	TxBytes uint64
}

// CgroupCounters are the cgroup v2 figures of the process's cgroup. A limit of
// zero means no limit ("max" in the cgroup file, or the file is absent).
//
// A limit may sit on the process's cgroup or on an ancestor (a Kubernetes
// pod, a systemd slice). The CPU figures are those of the level with the
// smallest quota; the memory figures are those of the level whose working set
// is the largest fraction of its memory.max. Usage and limit always come from
// the same level. Without a limit, usage is the process's cgroup's own.
type CgroupCounters struct {
	// CPUQuotaCores is the CPU quota in cores: quota over period from cpu.max.
	// Zero means no quota.
	CPUQuotaCores float64
	// CPUUsage is the CPU time used by the cgroup in seconds (usage_usec in
	// cpu.stat). Valid only when HasCPUUsage is set.
	CPUUsage float64
	// HasCPUUsage says whether cpu.stat could be read.
	HasCPUUsage bool
	// MemMax is the memory limit in bytes (memory.max). Zero means no limit.
	MemMax uint64
	// MemCurrent is the memory charged to the cgroup in bytes
	// (memory.current), page cache included.
	MemCurrent uint64
	// MemInactiveFile is inactive_file from memory.stat in bytes: page cache
	// the kernel reclaims first under pressure.
	MemInactiveFile uint64
}

// WorkingSet is the cgroup's memory working set in bytes: memory.current less
// inactive_file, floored at zero, as kubelet and cAdvisor compute it. This is
// the figure that memory.max is compared with before the OOM killer acts.
func (c CgroupCounters) WorkingSet() uint64 {
	if c.MemInactiveFile >= c.MemCurrent {
		return 0
	}
	return c.MemCurrent - c.MemInactiveFile
}

// Reader takes one reading of this host's Counters.
//
// Read may block on file or system-call I/O and should honour ctx where it
// can. Implementations must be safe for use by one goroutine at a time;
// SystemReader is safe for concurrent use. A Read that returns an error
// returns no usable Counters.
type Reader interface {
	Read(ctx context.Context) (Counters, error)
}
