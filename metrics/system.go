package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	psnet "github.com/shirou/gopsutil/v4/net"
)

// SystemReader reads this host's Counters and, where the process sits in a
// cgroup v2 hierarchy, the cgroup's limits and usage. On Linux it reads
// /proc and the cgroup files itself, keeping them open between calls
// (procfs.go); elsewhere it asks gopsutil.
//
// What does not change while the process runs is read once and cached: the
// logical CPU count (gopsutil parses all of /proc/cpuinfo for it) and which
// interfaces are loopback (asked of the kernel only when a name not seen
// before appears). Everything else is read again on every call.
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
	// NoKeptFiles reads through gopsutil, opening every file on every
	// call, instead of from /proc files kept open (tests compare the two).
	NoKeptFiles bool

	readMu   sync.Mutex // one Read at a time: files' buffer is shared
	files    openFiles  // /proc and cgroup files kept open (procfs.go)
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
	r.readMu.Lock()
	defer r.readMu.Unlock()
	var c Counters
	fast, err := r.readProc(ctx, &c)
	if err != nil {
		return Counters{}, err
	}
	if !fast {
		if err := r.readGopsutil(ctx, &c); err != nil {
			return Counters{}, err
		}
	}

	cores, err := r.logicalCores(ctx)
	if err != nil {
		return Counters{}, err
	}
	c.LogicalCores = cores

	if !r.DisableCgroup {
		cg, err := r.readCgroup(fast)
		if err != nil {
			return Counters{}, err
		}
		c.Cgroup = cg
	}
	return c, nil
}

// readProc fills c's CPU, memory, load and network figures from /proc,
// from files it keeps open (openFiles). fast is false, with no error, where
// there is no /proc/stat (not Linux): the caller asks gopsutil.
func (r *SystemReader) readProc(ctx context.Context, c *Counters) (fast bool, err error) {
	if r.NoKeptFiles {
		return false, nil
	}
	data, ok, err := r.files.read(hostProc("stat"))
	if err != nil || !ok {
		return false, nil
	}
	if c.CPUTotal, c.CPUBusy, err = parseProcStat(data); err != nil {
		return false, fmt.Errorf("metrics: reading CPU times: %w", err)
	}

	// need reads a file that must be there once /proc/stat was.
	need := func(name string) ([]byte, error) {
		path := hostProc(name)
		data, ok, err := r.files.read(path)
		if err == nil && !ok {
			err = fmt.Errorf("%s: missing", path)
		}
		return data, err
	}
	if data, err = need("meminfo"); err != nil {
		return false, fmt.Errorf("metrics: reading memory: %w", err)
	}
	total, avail, haveAvail, err := parseMeminfo(data)
	if err != nil {
		return false, fmt.Errorf("metrics: reading memory: %w", err)
	}
	if !haveAvail {
		// A kernel before 3.14: gopsutil estimates what is available.
		vm, err := mem.VirtualMemoryWithContext(ctx)
		if err != nil {
			return false, fmt.Errorf("metrics: reading memory: %w", err)
		}
		total, avail = vm.Total, vm.Available
	}
	c.MemTotal, c.MemAvailable = total, avail
	if avail <= total {
		c.MemUsed = total - avail
	}

	if data, err = need("loadavg"); err != nil {
		return false, fmt.Errorf("metrics: reading load average: %w", err)
	}
	if c.Load1, err = parseLoadavg(data); err != nil {
		return false, fmt.Errorf("metrics: reading load average: %w", err)
	}

	if data, err = need("net/dev"); err != nil {
		return false, fmt.Errorf("metrics: reading network counters: %w", err)
	}
	var nics []nicBytes
	if err := parseNetDev(data, func(name string, rx, tx uint64) { nics = append(nics, nicBytes{name, rx, tx}) }); err != nil {
		return false, fmt.Errorf("metrics: reading network counters: %w", err)
	}
	c.Net = r.netCounters(nics)
	return true, nil
}

// nicBytes is one interface's byte counters.
type nicBytes struct {
	name   string
	rx, tx uint64
}

// netCounters keys the interfaces' counters by name, leaving loopback out.
func (r *SystemReader) netCounters(nics []nicBytes) map[string]NetCounters {
	names := make([]string, len(nics))
	for i, n := range nics {
		names[i] = n.name
	}
	loop := r.loopbackSet(names)
	out := make(map[string]NetCounters, len(nics))
	for _, n := range nics {
		if !loop[n.name] {
			out[n.name] = NetCounters{RxBytes: n.rx, TxBytes: n.tx}
		}
	}
	return out
}

// hostProc is the path of a file of /proc, or of $HOST_PROC when set (as
// gopsutil reads it: a container watching its host through a mount).
func hostProc(name string) string {
	return filepath.Join(cmp.Or(os.Getenv("HOST_PROC"), "/proc"), name)
}

// readGopsutil fills c's CPU, memory, load and network figures through
// gopsutil (systems without /proc).
func (r *SystemReader) readGopsutil(ctx context.Context, c *Counters) error {
	times, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return fmt.Errorf("metrics: reading CPU times: %w", err)
	}
	if len(times) == 0 {
		return errors.New("metrics: reading CPU times: the system reported none")
	}
	for _, t := range times {
		total := t.Total() - t.Guest - t.GuestNice // guest time is already in user and nice
		c.CPUTotal += total
		c.CPUBusy += total - t.Idle - t.Iowait
	}

	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return fmt.Errorf("metrics: reading memory: %w", err)
	}
	c.MemTotal, c.MemAvailable = vm.Total, vm.Available
	if vm.Available <= vm.Total {
		c.MemUsed = vm.Total - vm.Available
	}

	avg, err := load.AvgWithContext(ctx)
	if err != nil {
		return fmt.Errorf("metrics: reading load average: %w", err)
	}
	c.Load1 = avg.Load1

	nics, err := psnet.IOCountersWithContext(ctx, true)
	if err != nil {
		return fmt.Errorf("metrics: reading network counters: %w", err)
	}
	bs := make([]nicBytes, len(nics))
	for i, n := range nics {
		bs[i] = nicBytes{n.Name, n.BytesRecv, n.BytesSent}
	}
	c.Net = r.netCounters(bs)
	return nil
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
func (r *SystemReader) loopbackSet(nics []string) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	stale := r.loopback == nil
	for _, n := range nics {
		if _, ok := r.loopback[n]; !ok {
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
		m[n] = n == "lo" || flags[n]
	}
	r.loopback = m
	return m
}

// readCgroup reads the cgroup v2 figures of this process, or nil when there
// are none. The process's cgroup is looked up on every call, so a process
// moved between cgroups is followed.
func (r *SystemReader) readCgroup(keep bool) (*CgroupCounters, error) {
	read := fileReader(osReadFile)
	if keep {
		read = r.files.read
	}
	self := r.ProcSelfCgroup
	if self == "" {
		self = DefaultProcSelfCgroup
	}
	root := r.CgroupRoot
	if root == "" {
		root = DefaultCgroupRoot
	}
	data, ok, err := read(self)
	if err != nil || !ok {
		// No /proc (or not Linux): no cgroup figures, not a failure.
		return nil, nil
	}
	rel, ok := cgroupV2Path(data)
	if !ok {
		return nil, nil
	}
	return readCgroupV2With(read, root, rel)
}
