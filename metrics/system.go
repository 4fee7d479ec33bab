package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	psnet "github.com/shirou/gopsutil/v4/net"
)

// SystemReader reads this host's Counters through gopsutil and, where the
// process sits in a cgroup v2 hierarchy, the cgroup's limits and usage.
//
// What does not change while the process runs is read once and cached: the
// logical CPU count (gopsutil parses all of /proc/cpuinfo for it) and which
// interfaces are loopback (asked of the kernel only when a name not seen
// before appears). Everything else is read on every call.
//
// The zero value is ready to use, with the default paths. A SystemReader is
// safe for concurrent use.
type SystemReader struct {
	// CgroupRoot is where the cgroup v2 hierarchy is mounted; empty means
	// DefaultCgroupRoot. Tests point it at a directory of fake files.
	CgroupRoot string
	// ProcSelfCgroup is the file naming this process's cgroup ("0::/path");
	// empty means DefaultProcSelfCgroup.
	ProcSelfCgroup string
	// DisableCgroup skips cgroup files altogether: figures are the host's.
	DisableCgroup bool

	mu       sync.Mutex
	cores    int             // cached logical CPU count; 0 until first read
	loopback map[string]bool // interface name → is loopback
}

var _ Reader = (*SystemReader)(nil)

// NewSystemReader returns a SystemReader with the default paths.
func NewSystemReader() *SystemReader { return &SystemReader{} }

// Read implements Reader. It fails when CPU times, memory, the load average
// or network counters cannot be read. Cgroup figures are left out when there
// is no cgroup v2 hierarchy; a cgroup file that exists but cannot be parsed
// is an error wrapping ErrCgroupFormat.
func (r *SystemReader) Read(ctx context.Context) (Counters, error) {
	var c Counters

	times, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return Counters{}, fmt.Errorf("metrics: reading CPU times: %w", err)
	}
	if len(times) == 0 {
		return Counters{}, errors.New("metrics: reading CPU times: the system reported none")
	}
	for _, t := range times {
		total := t.Total() - t.Guest - t.GuestNice // guest time is already in user and nice
		c.CPUTotal += total
		c.CPUBusy += total - t.Idle - t.Iowait
	}

	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return Counters{}, fmt.Errorf("metrics: reading memory: %w", err)
	}
	c.MemTotal, c.MemAvailable = vm.Total, vm.Available
	if vm.Available <= vm.Total {
		c.MemUsed = vm.Total - vm.Available
	}

	avg, err := load.AvgWithContext(ctx)
	if err != nil {
		return Counters{}, fmt.Errorf("metrics: reading load average: %w", err)
	}
	c.Load1 = avg.Load1

	nics, err := psnet.IOCountersWithContext(ctx, true)
	if err != nil {
		return Counters{}, fmt.Errorf("metrics: reading network counters: %w", err)
	}
	c.Net = make(map[string]NetCounters, len(nics))
	loop := r.loopbackSet(nics)
	for _, n := range nics {
		if loop[n.Name] {
			continue
		}
		c.Net[n.Name] = NetCounters{RxBytes: n.BytesRecv, TxBytes: n.BytesSent}
	}

	cores, err := r.logicalCores(ctx)
	if err != nil {
		return Counters{}, err
	}
	c.LogicalCores = cores

	if !r.DisableCgroup {
		cg, err := r.readCgroup()
		if err != nil {
			return Counters{}, err
		}
		c.Cgroup = cg
	}
	return c, nil
}

// logicalCores returns the logical CPU count, read once.
func (r *SystemReader) logicalCores(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cores > 0 {
		return r.cores, nil
	}
	n, err := cpu.CountsWithContext(ctx, true)
	if err != nil {
		return 0, fmt.Errorf("metrics: counting logical CPUs: %w", err)
	}
	if n < 1 {
		return 0, fmt.Errorf("metrics: counting logical CPUs: the system reported %d", n)
	}
	r.cores = n
	return n, nil
}

// loopbackSet returns which of nics are loopback interfaces: named "lo", or
// flagged loopback by the kernel. Flags are asked for only when a name not
// seen before appears, and the cache is rebuilt from the current interfaces
// then, so it does not grow with interface churn.
func (r *SystemReader) loopbackSet(nics []psnet.IOCountersStat) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	stale := r.loopback == nil
	for _, n := range nics {
		if _, ok := r.loopback[n.Name]; !ok {
			stale = true
			break
		}
	}
	if !stale {
		return r.loopback
	}
	flags := map[string]bool{}
	if ifs, err := net.Interfaces(); err == nil {
		for _, ifi := range ifs {
			flags[ifi.Name] = ifi.Flags&net.FlagLoopback != 0
		}
	}
	m := make(map[string]bool, len(nics))
	for _, n := range nics {
		m[n.Name] = n.Name == "lo" || flags[n.Name]
	}
	r.loopback = m
	return m
}

// readCgroup reads the cgroup v2 figures of this process, or nil when there
// are none. The process's cgroup is looked up on every call, so a process
// moved between cgroups is followed.
func (r *SystemReader) readCgroup() (*CgroupCounters, error) {
	self := r.ProcSelfCgroup
	if self == "" {
		self = DefaultProcSelfCgroup
	}
	root := r.CgroupRoot
	if root == "" {
		root = DefaultCgroupRoot
	}
	data, err := os.ReadFile(self)
	if err != nil {
		// No /proc (or not Linux): no cgroup figures, not a failure.
		return nil, nil
	}
	rel, ok := cgroupV2Path(data)
	if !ok {
		return nil, nil
	}
	return readCgroupV2(root, rel)
}
